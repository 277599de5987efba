"""The Frappe study script: its plan, resumability check, statistics and report."""
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import reproduce  # noqa: E402
import study_common  # noqa: E402
import study_report  # noqa: E402


def test_welch_p_value_matches_hand_computation():
    # a = 1..4, b = 2, 4, 6, 8: t = −2.5 / sqrt(5/12 + 20/12) = −√3, Welch df = 75/17 ≈ 4.41,
    # two-tailed p = 2·P(T_4.41 > √3) = 0.15158.
    assert study_common.welch_p_value([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(0.1515805, abs=1e-6)
    assert study_common.welch_p_value([1.0], [2.0, 3.0]) is None


def test_mean_std_uses_sample_standard_deviation():
    assert study_common.mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, (5 / 3) ** 0.5))
    assert study_common.mean_std([0.5]) == (0.5, 0.0)


def test_plan_has_every_required_run_once():
    runs = reproduce.plan()
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    count = lambda **kw: sum(all(getattr(r, k) == v for k, v in kw.items()) for r in runs)  # noqa: E731
    assert count(group="main", variant="fsdnet") == 5 and count(group="main", variant="dcnv2") == 5
    assert count(group="tune", variant="fsdnet") == 8 and count(group="tune", variant="dcnv2") == 2
    assert count(group="tuned") == 0                 # chosen on valid once the tune runs exist
    for ablation in ("no_soft_labels", "no_hint", "no_fusion"):
        assert count(variant=ablation) == 3
    for level in (0.1, 0.2, 0.3):
        assert count(variant="fsdnet", noise=level) == 2 and count(variant="dcnv2", noise=level) == 2
    assert runs[0].group == "main"          # the headline comparison is trained first


def test_run_overrides_resolve_to_the_intended_configs():
    ablation = reproduce.Run("ablation", "no_fusion", 2024).expected_config()
    assert ablation["model"]["fusion"] == "none" and ablation["seed"] == 2024
    noisy = reproduce.Run("noise", "dcnv2", 2023, 0.2)
    assert noisy.name == "dcnv2_noise20_s2023"
    cfg = noisy.expected_config()
    assert cfg["model"]["type"] == "dcnv2" and cfg["train"]["label_noise"] == 0.2
    assert cfg["model"]["dropout"] == 0.7          # everything else stays the shipped frappe config


def fake_run(run: "reproduce.Run", auc: float, logloss: float, heads: int = 3) -> dict:
    epoch = {"epoch": 1, "valid_auc": auc, "valid_logloss": logloss,
             "valid_heads": [{"auc": auc, "logloss": logloss}] * heads}
    return {"model": "dcnv2" if run.variant == "dcnv2" else "fsdnet", "dataset": "frappe", "seed": run.seed,
            "test": {"auc": auc, "logloss": logloss, "heads": [{"auc": auc - 0.001 * (heads - 1 - i), "logloss": logloss}
                                                                for i in range(heads)]},
            "valid": {"auc": auc, "logloss": logloss, "heads": []}, "best_epoch": 1, "epochs": [epoch],
            "train_examples_per_second": 1000.0, "seconds": 10.0, "config": run.expected_config(),
            "study": {"run": run.name, "group": run.group, "variant": run.variant,
                      "label_noise": run.noise, "settings": dict(run.settings), "concurrent_runs": 2}}


def test_stored_result_is_reused_only_while_its_config_matches(tmp_path):
    run = reproduce.Run("main", "fsdnet", 2023)
    assert reproduce.stored_result(run, tmp_path) is None
    stored = fake_run(run, 0.98, 0.14)
    (tmp_path / f"{run.name}.json").write_text(json.dumps(stored))
    assert reproduce.stored_result(run, tmp_path)["test"]["auc"] == 0.98
    stored["config"]["model"]["alpha"] = 0.5        # trained before the shipped config changed
    (tmp_path / f"{run.name}.json").write_text(json.dumps(stored))
    assert reproduce.stored_result(run, tmp_path) is None


def test_partial_study_report(tmp_path):
    runs_dir, results = tmp_path / "runs", tmp_path / "results"
    runs_dir.mkdir()
    figures = {("fsdnet", 2023): (0.9840, 0.140), ("fsdnet", 2024): (0.9842, 0.141),
               ("dcnv2", 2023): (0.9841, 0.150), ("dcnv2", 2024): (0.9845, 0.152)}
    for (variant, seed), (auc, ll) in figures.items():
        run = reproduce.Run("main", variant, seed)
        (runs_dir / f"{run.name}.json").write_text(json.dumps(fake_run(run, auc, ll, 1 if variant == "dcnv2" else 3)))
    noisy = reproduce.Run("noise", "fsdnet", 2023, 0.2)
    (runs_dir / f"{noisy.name}.json").write_text(json.dumps(fake_run(noisy, 0.97, 0.2)))

    result = study_report.write_report(runs_dir, results, planned=reproduce.plan())
    assert result["variants"]["fsdnet"]["auc_mean"] == pytest.approx(0.9841)
    assert result["variants"]["fsdnet"]["seeds"] == [2023, 2024]
    assert result["p_value_auc"] == pytest.approx(study_common.welch_p_value([0.9840, 0.9842], [0.9841, 0.9845]))
    assert result["heads"]["fsdnet"][-1]["auc_mean"] == pytest.approx(0.9841)   # teacher last
    assert result["noise"]["0.2"]["fsdnet"]["auc"] == 0.97 and "dcnv2" not in result["noise"]["0.2"]
    assert result["noise"]["0.0"]["fsdnet"]["seeds"] == [2023]   # clean baseline: the noise study's seeds
    assert len(result["missing_runs"]) == len(reproduce.plan()) - 5
    met = {t["target"]: t["met"] for t in result["targets"]}
    assert met["FSDNet logloss lower than DCNv2's"] is True
    assert met["FSDNet AUC ≥ DCNv2 + 0.001 with p < 0.05"] is False
    assert result["ablations"] == {}          # no ablation runs among the fakes
    report = (results / "frappe.md").read_text()
    assert "**Incomplete:**" in report and "benchmarks/reproduce.py" in report
    assert "| 20% | 0.97000 | — | — | 2023 |" in report
    for png in ("frappe_heads.png", "frappe_valid_auc_per_epoch.png", "frappe_noise.png"):
        assert (results / png).stat().st_size > 0 and png in report


def test_tuning_chooses_on_valid_auc_once_every_candidate_is_stored(tmp_path):
    candidates = reproduce.tune_candidates("dcnv2")
    assert [c.name for c in candidates] == ["dcnv2_s2023", "dcnv2_dropout0.5_s2023", "dcnv2_dropout0.6_s2023"]
    valid = {"dcnv2_s2023": 0.980, "dcnv2_dropout0.5_s2023": 0.985, "dcnv2_dropout0.6_s2023": 0.982}
    for run in candidates[:2]:
        metrics = fake_run(run, 0.99, 0.1, heads=1)   # test AUC equal: only valid may decide
        metrics["valid"]["auc"] = valid[run.name]
        (tmp_path / f"{run.name}.json").write_text(json.dumps(metrics))
    assert reproduce.chosen_settings("dcnv2", tmp_path) is None      # one candidate missing
    metrics = fake_run(candidates[2], 0.999, 0.1, heads=1)
    metrics["valid"]["auc"] = valid[candidates[2].name]
    (tmp_path / f"{candidates[2].name}.json").write_text(json.dumps(metrics))
    assert reproduce.chosen_settings("dcnv2", tmp_path) == (("model.dropout", 0.5),)
    tuned = [r for r in reproduce.plan(("tuned",), tmp_path) if r.variant == "dcnv2"]
    assert [r.name for r in tuned] == [f"dcnv2_dropout0.5_s{s}" for s in (2024, 2025, 2026, 2027)]
    assert tuned[0].expected_config()["model"]["dropout"] == 0.5


def test_cli_rejects_bad_arguments_and_missing_data(tmp_path, capsys):
    for argv, message in ((["--groups", "main,bogus"], "unknown group 'bogus'"), (["--jobs", "0"], "--jobs must be >= 1")):
        with pytest.raises(SystemExit) as exit_info:
            reproduce.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert reproduce.main(["--data-dir", str(tmp_path / "absent"), "--work-dir", str(tmp_path / "work"),
                           "--results-dir", str(tmp_path / "results")]) == 2
    assert "Frappe not found at" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()          # nothing started

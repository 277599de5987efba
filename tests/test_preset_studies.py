"""The zoo and TF4CTR study scripts: plans, reuse of the main study's runs, statistics, targets."""
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import reproduce  # noqa: E402
import tf4ctr_study  # noqa: E402
import zoo  # noqa: E402
from test_study import fake_run  # noqa: E402
from fsdnet_tf.config import load_config  # noqa: E402


def store(runs_dir: pathlib.Path, run, auc: float, logloss: float, test_auc: float | None = None) -> None:
    """A stored run with valid AUC ``auc`` and test AUC ``test_auc`` (``auc`` unless given)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    metrics = fake_run(run, auc, logloss)
    if test_auc is not None:
        metrics["test"]["auc"] = test_auc
    (runs_dir / f"{run.name}.json").write_text(json.dumps(metrics))


def test_plans_name_every_run_once_and_resolve_their_settings():
    for runs in (zoo.plan(), tf4ctr_study.plan()):
        names = [r.name for r in runs]
        assert len(names) == len(set(names))
    assert len(zoo.plan()) == 18 and not {r.model for r in zoo.plan()} & set(zoo.REUSED)
    variant = next(r for r in tf4ctr_study.plan() if r.variant == "tf4ctr_fsd_dropout0.2")
    config = variant.expected_config()
    assert (config["model"]["type"], config["model"]["dropout"]) == ("tf4ctr_fsd", 0.2)
    assert variant.name.startswith("tf4ctr_fsd_dropout0.2_s")
    assert tf4ctr_study.plan()[0].expected_config()["model"]["tf4ctr"]["alpha"] == 0.25


def test_zoo_reuses_main_runs_and_tests_the_fsd_gain(tmp_path):
    results = tmp_path / "results"
    for seed, (base, fsd) in zip(zoo.SEEDS, [(0.980, 0.982), (0.981, 0.983), (0.9805, 0.9825)]):
        store(results / "frappe_runs", reproduce.Run("main", "dcnv2", seed), base, 0.15 + (seed - 2023) * 2e-3)
        store(results / "frappe_runs", reproduce.Run("main", "fsdnet", seed), fsd, 0.14 - (seed - 2023) * 1e-3)
        store(results / "frappe_zoo_runs", zoo.ZooRun("dcn", seed), base, 0.15 + (seed - 2023) * 1e-3)
        store(results / "frappe_zoo_runs", zoo.ZooRun("dcn_fsd", seed), base - 0.001, 0.14 - (seed - 2023) * 2e-3)
    result = zoo.write_report(results)
    gains = result["fsd_gains"]
    assert set(gains) == {"dcn", "dcnv2"}
    assert gains["dcnv2"]["auc_gain"] == pytest.approx(0.002) and gains["dcnv2"]["p_value_auc"] < 0.01
    assert gains["dcn"]["auc_gain"] == pytest.approx(-0.001)
    assert len(result["missing"]) == 12 and result["targets"][0]["met"] is None     # partial: not decided
    assert "**Partial**: 12 planned runs" in (results / "frappe_zoo.md").read_text()


def test_movielens1m_zoo_reuses_the_movielens1m_study_and_compares_with_the_papers_ml1m_table(tmp_path):
    import movielens1m_study
    import movielens1m_zoo
    data = movielens1m_zoo.ML1M
    planned = zoo.plan(data)
    assert len(planned) == 18 and {r.config for r in planned} == {"movielens1m_ctr"}
    assert planned[0].expected_config()["dataset"]["name"] == load_config("movielens1m_ctr").dataset.name
    results = tmp_path / "results"
    main = {r.name: r for r in movielens1m_study.plan()}
    for seed in zoo.SEEDS:
        store(results / movielens1m_study.RUNS_DIR, main[f"dcnv2_s{seed}"], 0.807 + (seed - 2023) * 1e-4, 0.527)
        store(results / movielens1m_study.RUNS_DIR, main[f"fsdnet_s{seed}"], 0.812 + (seed - 2023) * 1e-4, 0.519)
        store(results / data.runs_dir, data.run("dcn", seed), 0.806 + (seed - 2023) * 1e-4, 0.528)
    result = movielens1m_zoo.write_report(results)
    assert set(result["fsd_gains"]) == {"dcnv2"} and result["fsd_gains"]["dcnv2"]["auc_gain"] == pytest.approx(0.005)
    assert result["fsd_gains"]["dcnv2"]["paper_auc_gain"] == pytest.approx(0.8190 - 0.8145)
    assert result["models"]["dcn"]["paper_parameters"] is None and len(result["missing"]) == 15
    text = (results / "movielens1m_zoo.md").read_text()
    assert text.startswith("# MovieLens-1M: FSD on four base models (paper Table 3)") and "| dcn | 3 |" in text
    assert not (results / "frappe_zoo.md").exists()
    main_report = movielens1m_study.write_report(results)      # the ML-1M report carries the zoo's gains
    assert main_report["zoo"]["fsd_gains"]["dcnv2"]["auc_gain"] == pytest.approx(0.005)
    report = (results / "movielens1m.md").read_text()
    assert "| DCNv2 | +0.00500 (" in report
    assert "- FSDNet beats DCNv2 on AUC (paper 0.8190 vs 0.8145, +0.0045): **holds** — +0.00500" in report
    assert "- FSDNet beats DCNv2 on logloss (paper 0.5087 vs 0.5200, -0.0113): **holds** — -0.0080" in report
    assert "FSD raises DCN's AUC" not in report            # the zoo is partial: no per-base claims yet
    assert "**do not carry over** to these files — ours 0.8121 / 0.5190" in report


def test_a_claim_holds_only_the_papers_way_with_p_below_005():
    import movielens1m_study
    assert movielens1m_study.verdict(True, 0.01) == "**holds**"
    assert movielens1m_study.verdict(True, 0.2).endswith("**not shown** (p ≥ 0.05)")
    assert movielens1m_study.verdict(True, None).endswith("**not shown** (p ≥ 0.05)")
    assert movielens1m_study.verdict(False, 0.001) == "**does not hold**"


def test_tf4ctr_report_compares_with_the_official_seeds(tmp_path):
    results = tmp_path / "results"
    for run in tf4ctr_study.plan():
        store(results / "frappe_tf4ctr_runs", run, 0.9868 + (run.seed - 2023) * 1e-5, 0.133 + (run.seed - 2023) * 1e-3)
    for seed in zoo.SEEDS:
        for model in ("fsdnet", "dcnv2"):
            store(results / "frappe_runs", reproduce.Run("main", model, seed), 0.984 + (seed - 2023) * 1e-4, 0.14 + (seed - 2023) * 1e-3)
    result = tf4ctr_study.write_report(results)
    assert not result["missing"]
    matched, beaten = (t["met"] for t in result["targets"])
    assert matched is True and beaten is False            # equal to the official code is not beating it
    assert result["official"]["auc_mean"] == pytest.approx(0.98676, abs=1e-5)
    assert set(result["parents"]) == {"tf4ctr_fsd vs fsdnet", "tf4ctr_fsd vs tf4ctr_dcnv2",
                                      "tf4ctr_fsd_dropout0.2 vs fsdnet", "tf4ctr_fsd_dropout0.2 vs tf4ctr_dcnv2",
                                      "tf4ctr_mlp_fsd vs fsdnet", "tf4ctr_mlp_fsd vs tf4ctr"}


def test_kd_report_pairs_students_with_their_teachers(tmp_path):
    import kd_study
    results, work = tmp_path / "results", tmp_path / "work"
    for seed in zoo.SEEDS:
        store(results / "frappe_kd_runs", zoo.ZooRun("fsdnet", seed, group="kd", label=kd_study.TEACHER), 0.984, 0.14)
    for run in kd_study.student_runs(work):
        auc = {"kd_outer": 0.9835, "dagfm_scratch": 0.976 + (run.seed - 2023) * 1e-4}.get(run.variant, 0.97)
        store(results / "frappe_kd_runs", run, auc, 0.15)
    (results / "frappe_menu_serving.json").write_text(json.dumps({"auc_budget": 0.001, "choice": "kd_outer", "entries": [
        {"name": "kd_teacher", "grpc_sustained_examples_per_second": 100},
        {"name": "kd_outer", "grpc_sustained_examples_per_second": 250}]}))
    result = kd_study.write_report(results, work)
    kd = result["models"]["kd_outer"]
    assert kd["auc_gap_to_teacher"] == pytest.approx(-0.0005) and kd["flops_ratio"] == pytest.approx(11_240 / 462_480)
    assert [t["met"] for t in result["targets"]] == [True, True, True, True]
    assert set(result["missing"]) == {r.name for r in kd_study.tune_runs(work) + kd_study.tuned_runs(work)
                                      + kd_study.tuned_scratch_runs()}
    assert "**kd_outer**" in (results / "frappe_menu.md").read_text()
    # the tuned student: decided once it and its no-distillation baseline have every seed
    for run in kd_study.tune_runs(work, zoo.SEEDS, (kd_study.TUNED,)):
        store(results / "frappe_kd_runs", run, 0.9836, 0.15)
    assert kd_study.write_report(results, work)["targets"][-2]["met"] is None          # baseline not trained
    scratch = kd_study.tuned_scratch_runs()
    assert {dict(r.settings)["model.dagfm.depth"] for r in scratch} == {4}
    assert scratch[0].expected_config()["model"]["dagfm"]["teacher_type"] == "none"
    for run in scratch:
        store(results / "frappe_kd_runs", run, 0.9837 + (run.seed - 2023) * 1e-5, 0.15)   # beats the student
    (results / "frappe_menu_serving.json").write_text(json.dumps({"entries": [
        {"name": "kd_teacher", "grpc_sustained_examples_per_second": 100},
        {"name": kd_study.TUNED, "grpc_sustained_examples_per_second": 210}]}))
    tuned = kd_study.write_report(results, work)["targets"][-2]
    assert tuned["met"] is False and "without distillation 0.98371" in tuned["detail"] and "2.10×" in tuned["detail"]


def test_kd_report_has_a_movielens_section_from_stored_runs(tmp_path):
    import kd_study
    root, results = tmp_path / "ml1m", tmp_path / "results"
    for name, auc in (("kd_teacher_s2023", 0.8125), ("kd_outer_s2023", 0.8124), ("unrelated_s2023", 0.5)):
        (root / name).mkdir(parents=True)
        (root / name / "metrics.json").write_text(json.dumps({"test": {"auc": auc, "logloss": 0.52}}))
    assert kd_study.store_ml1m(root, results) == 2
    lines = "\n".join(kd_study.ml1m_lines(results))
    assert "| KD-DAGFM (outer) | 1 | 0.81240 ± 0.00000 | 0.5200 ± 0.0000 | -0.00010 |" in lines
    assert "Serving" not in lines                                   # no ML-1M menu measured yet
    (results / "movielens1m_menu_serving.json").write_text(json.dumps({"entries": [
        {"name": "kd_teacher", "grpc_sustained_examples_per_second": 100, "multiply_adds": 1000, "test_auc": 0.8126},
        {"name": "kd_outer", "grpc_sustained_examples_per_second": 190, "multiply_adds": 300, "test_auc": 0.8121}]}))
    lines = "\n".join(kd_study.ml1m_lines(results))
    assert "300 vs 1,000 (30.0%, target ≤ 25 %: not met)" in lines
    assert "190 vs 100 (1.90×, target ≥ 2×: not met)" in lines and "0.81210 vs 0.81260" in lines


def test_movielens1m_report_adopts_matching_kd_teachers_and_compares_the_models(tmp_path):
    import movielens1m_study as ml
    results = tmp_path / "results"
    plan = ml.plan()
    teacher = next(r for r in plan if (r.model, r.seed) == ("fsdnet", 2023))
    kd = results / "movielens1m_kd_runs"
    kd.mkdir(parents=True)
    (kd / "kd_teacher_s2023.json").write_text(json.dumps(fake_run(teacher, 0.8130, 0.517)))
    other = fake_run(next(r for r in plan if (r.model, r.seed) == ("fsdnet", 2024)), 0.5, 0.9)
    other["config"]["model"]["alpha"] = 0.5          # not this plan's config: not adopted
    (kd / "kd_teacher_s2024.json").write_text(json.dumps(other))
    partial = ml.write_report(results)
    assert partial["models"]["fsdnet"]["adopted"] == ["movielens1m_kd_runs/kd_teacher_s2023.json"]
    assert len(partial["missing"]) == 9 and all(t["met"] is None for t in partial["targets"])
    for run in plan:
        if not (results / ml.RUNS_DIR / f"{run.name}.json").exists():
            gap = (run.seed - 2023) * 1e-4
            store(results / ml.RUNS_DIR, run, (0.8135 if run.model == "fsdnet" else 0.8070) + gap,
                  (0.517 if run.model == "fsdnet" else 0.528) + gap / 10)
    result = ml.write_report(results)
    assert not result["missing"]
    assert result["models"]["fsdnet"]["auc_mean"] == pytest.approx((0.8130 + 0.8135 * 4 + 1e-4 * 10) / 5)
    versus = result["fsdnet_vs_dcnv2"]
    assert versus["auc"]["difference"] > 0 and versus["auc"]["p"] < 0.05 and versus["logloss"]["difference"] < 0
    assert [t["met"] for t in result["targets"]] == [True, True, True]
    text = (results / "movielens1m.md").read_text()
    assert "Adopted from the KD study" in text and "| dcnv2 | 5 |" in text


def test_movielens1m_report_with_one_dcnv2_run_builds_without_a_p_value(tmp_path):
    import movielens1m_study as ml
    results = tmp_path / "results"
    for run in ml.plan()[:3]:               # fsdnet and dcnv2 of 2023, fsdnet of 2024
        store(results / ml.RUNS_DIR, run, 0.81, 0.52)
    result = ml.write_report(results)
    assert "fsdnet_vs_dcnv2" not in result and len(result["models"]["dcnv2"]["seeds"]) == 1
    assert "Not stored yet (7)" in (results / "movielens1m.md").read_text()


def test_rq5_fusions_are_compared_with_sc_on_the_same_seeds(tmp_path):
    import study_report
    runs_dir = tmp_path / "frappe_runs"
    planned = [r for r in reproduce.plan(("fusion",))]
    assert {r.variant for r in planned} == set(reproduce.FUSION_VARIANTS) and len(planned) == 12
    shift = {"fusion_concat": 0.0, "fusion_hadamard": -0.002, "fusion_add": -0.001, "fusion_attention": 0.0005}
    for run in planned[:-1]:                                     # the last AD run is not stored yet
        store(runs_dir, run, 0.984 + shift[run.variant] + (run.seed - 2023) * 1e-4, 0.14)
    partial = study_report.write_report(runs_dir, tmp_path, planned)
    rq5 = next(t for t in partial["targets"] if t["target"].startswith("RQ5"))
    assert rq5["met"] is None                                    # undecided while a fusion run is missing
    store(runs_dir, planned[-1], 0.984 + shift[planned[-1].variant] + 2e-4, 0.14)
    result = study_report.write_report(runs_dir, tmp_path, planned)
    fusion = result["fusion"]
    assert fusion["fusion_hadamard"]["p_auc_vs_sc"] < 0.01 and "p_auc_vs_sc" not in fusion["fusion_concat"]
    rq5 = next(t for t in result["targets"] if t["target"].startswith("RQ5"))
    assert rq5["met"] is False and "AD 0.98460" in rq5["figures"]   # AD's mean is above SC's here
    assert "## RQ5" in (tmp_path / "frappe.md").read_text()


def test_rq3_curves_use_the_same_code_shipped_point_and_decide_once_complete(tmp_path):
    import study_report
    runs_dir = tmp_path / "frappe_runs"
    planned = reproduce.plan(("fusion", "sensitivity"))
    sensitivity = [r for r in planned if r.group == "sensitivity"]
    assert len(sensitivity) == 18 and {dict(r.settings)["model.alpha"] for r in sensitivity
                                       if "model.alpha" in dict(r.settings)} == {0.7, 0.8}
    assert sensitivity[0].expected_config()["model"]["alpha"] == 0.7
    for run in planned:
        value = dict(run.settings).get("model.alpha")
        # valid AUC peaks at the shipped α = 0.9 (the fusion_concat runs), falls with the others
        auc = 0.984 - (0.0 if value is None else (0.9 - value) * 0.01)
        store(runs_dir, run, auc + (run.seed - 2023) * 1e-5, 0.14)
    result = study_report.write_report(runs_dir, tmp_path, planned)
    alpha = result["sensitivity"]["model.alpha"]
    assert [p["value"] for p in alpha] == [0.7, 0.8, 0.9] and alpha[2]["shipped"]
    assert alpha[0]["test_auc"][0] == pytest.approx(0.982 + 1e-5)
    rows = {t["target"].split(" = ")[0]: t["met"] for t in result["targets"] if t["target"].startswith("RQ3")}
    assert rows["RQ3: the shipped α (BCE weight)"] is True
    assert (tmp_path / "frappe_sensitivity.png").is_file() and "## RQ3" in (tmp_path / "frappe.md").read_text()
    extra = reproduce.Run("sensitivity", "sensitivity", 2026, settings=(("model.beta", 0.1),))
    partial = study_report.write_report(runs_dir, tmp_path, planned + [extra])
    assert all(t["met"] is None for t in partial["targets"] if t["target"].startswith("RQ3"))


def test_tf4ctr_tuning_plan_grows_round_by_round_and_chooses_on_valid(tmp_path):
    import tf4ctr_tuning
    results = tmp_path / "results"
    for run in tf4ctr_study.plan():
        if run.variant == "tf4ctr":
            store(results / "frappe_tf4ctr_runs", run, 0.9870, 0.133)
    runs_dir = results / tf4ctr_tuning.RUNS_DIR
    first = tf4ctr_tuning.plan(results)
    assert [r.name for r in first] == ["emb32_s2023", "batch4096_s2023", "dropout0.1_s2023", "dropout0.3_s2023",
                                       "l2_0.05_s2023", "l2_0.2_s2023", "hard800_s2023", "easy3_s2023", "lr2e-3_s2023"]
    # valid = test here: emb32, dropout0.1 and lr2e-3 beat the untuned 0.9870, the rest do not
    gains = {"emb32": 0.9875, "dropout0.1": 0.9872, "lr2e-3": 0.9871}
    for run in first:
        store(runs_dir, run, gains.get(run.variant, 0.9860), 0.13)
    assert tf4ctr_tuning.write_report(results)["targets"][0]["met"] is None      # round 2 not stored yet
    second = [r.name for r in tf4ctr_tuning.plan(results)][len(first):]
    assert second == ["emb32_s2024", "emb32_s2025", "emb64_s2023", "emb32+dropout0.1_s2023", "emb32+lr2e-3_s2023"]
    combined = next(r for r in tf4ctr_tuning.plan(results) if r.variant == "emb32+dropout0.1")
    assert combined.expected_config()["model"]["embedding_dim"] == 32 and combined.expected_config()["model"]["dropout"] == 0.1
    # round 2: emb64 leads; of the combinations only emb32+lr2e-3 beats emb32 (0.9875)
    round_two = {"emb64": 0.9880, "emb32+dropout0.1": 0.9871, "emb32+lr2e-3": 0.9876}
    for run in tf4ctr_tuning.plan(results):
        if not (runs_dir / f"{run.name}.json").exists():
            store(runs_dir, run, round_two.get(run.variant, 0.9874), 0.13)
    third = [r.name for r in tf4ctr_tuning.plan(results)]
    assert third[-2:] == ["emb128_s2023", "emb64+lr2e-3_s2023"] and "emb64_s2024" not in third   # not final yet
    lr_run = next(r for r in tf4ctr_tuning.plan(results) if r.variant == "emb64+lr2e-3")
    assert lr_run.expected_config()["train"]["learning_rate"] == 0.002 and lr_run.expected_config()["model"]["embedding_dim"] == 64
    # round 3 finds nothing better than emb64 on valid (although emb128 is best on test): emb64 is selected
    store(runs_dir, next(r for r in tf4ctr_tuning.plan(results) if r.variant == "emb128"), 0.9879, 0.12, test_auc=0.9900)
    store(runs_dir, lr_run, 0.9880, 0.12)                   # a tie does not beat the leader
    final = tf4ctr_tuning.plan(results)
    names = {r.name for r in final}
    assert names >= {"emb64_s2024", "emb64_s2025", "emb64_s2026", "emb64_s2027"} and "emb128_s2024" not in names
    assert "emb32_s2026" not in names                      # the confirmation seeds are the selected variant's only
    for run in final:
        if run.seed in zoo.SEEDS and not (runs_dir / f"{run.name}.json").exists():
            store(runs_dir, run, 0.9880 + (run.seed - 2024) * 1e-4, 0.12)
    result = tf4ctr_tuning.write_report(results)
    assert result["selected"] == "emb64" and result["round_winners"] == ["emb32", "emb64"]
    assert result["targets"][0]["met"] is None and "extended" not in result    # the confirmation seeds are missing
    tuned = result["confirmed"]["emb64"]
    assert tuned["seeds"] == list(zoo.SEEDS) and tuned["auc_mean"] == pytest.approx((0.9880 + 0.9880 + 0.9881) / 3)
    # the target reads the five seeds: two weak confirmation seeds turn a three-seed p < 0.05 into a miss
    assert tuned["p_auc_vs_official"] < 0.05
    for run in final:
        if run.seed in tf4ctr_tuning.CONFIRMATION_SEEDS:
            store(runs_dir, run, 0.9866, 0.12)
    result = tf4ctr_tuning.write_report(results)
    extended = result["extended"]["emb64"]
    assert extended["seeds"] == list(zoo.SEEDS) + [2026, 2027] and not result["missing"]
    assert extended["auc_mean"] == pytest.approx((0.9880 * 2 + 0.9881 + 0.9866 * 2) / 5)
    assert result["targets"][0]["met"] is False and result["confirmed"]["emb64"]["seeds"] == list(zoo.SEEDS)
    assert sorted(r["seed"] for r in tf4ctr_tuning.selected_runs(results)) == [2023, 2024, 2025, 2026, 2027]
    text = (results / "frappe_tf4ctr_tuning.md").read_text()
    assert "tuned TF4CTR (emb64) | 3 |" in text and "tuned TF4CTR (emb64), with the confirmation seeds | 5 |" in text
    assert "**emb32** → **emb64**; selected: **emb64**" in text


def test_tf4ctr_tuning_stops_after_the_last_round_and_never_reuses_a_set_key():
    import tf4ctr_tuning
    leader = tf4ctr_tuning.Variant((("dropout-", 0),), "dropout-")
    assert leader.combined("dropout+") is None                   # both move model.dropout
    assert leader.further().name == "dropout0.0" and leader.further().further() is None
    assert leader.combined("emb").name == "dropout0.1+emb32"
    assert dict(leader.combined("emb").settings) == {"model.dropout": 0.1, "model.embedding_dim": 32}


def test_optfusion_plan_runs_each_schedule_per_seed_and_the_soft_run_reuses_its_hard_search(tmp_path):
    import optfusion_study as study
    plan = study.plan("frappe", tmp_path)
    names = [run.name for runs in plan for run in runs]
    assert len(names) == len(set(names))
    by_name = {run.name: run for runs in plan for run in runs}
    assert all(f"optfusion_soft{suffix}_s2023" in by_name for suffix, _ in study.SCHEDULES.values())
    assert {n for n in names if n.startswith("parallel")} == {
        f"parallel{study.SCHEDULES[k][0]}_s{s}" for k in study.CONTROLS for s in study.SEEDS}
    for runs in plan:       # hard first, then soft reading the hard run's search
        hard, soft = runs[:2]
        assert dict(soft.settings)["model.optfusion.search_run"] == str(tmp_path / "runs" / hard.name)
        assert {n: v for n, v in soft.settings if n != "model.optfusion.search_run"} == {
            **dict(hard.settings), "model.optfusion.mode": "soft"}
    # rd: the search at the constant rate, the re-train decayed; bn decays both
    rd = by_name["optfusion_hard_rd_s2024"].expected_config()["model"]["optfusion"]
    bn = by_name["optfusion_hard_bn_s2024"].expected_config()["model"]["optfusion"]
    assert (rd["lr_decay"], rd["retrain_lr_decay"], rd["batch_norm"]) == (1.0, 0.1, True)
    assert (bn["lr_decay"], bn["retrain_lr_decay"], bn["batch_norm"]) == (0.1, None, True)
    assert by_name["parallel_bn_s2025"].expected_config()["model"]["optfusion"]["architecture"] == "parallel"

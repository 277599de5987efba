"""OptFusion runs: search → derive → retrain on the synthetic transform, resume, a re-train of
another run's search, the held-out architecture step, and the export of the derived network."""
import json

import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf.config import ConfigError, load_config
from fsdnet_tf.models.architecture import Architecture

OPTFUSION = ["dataset.synthetic.rows=20000", "model.type=optfusion", "model.optfusion.batch_size=2048",
             "model.optfusion.max_epochs=2", "model.embedding_dim=8"]


def optfusion_run(transform, run_dir, *overrides):
    from fsdnet_tf.training.optfusion import OptFusionTrainer
    cfg = load_config("synthetic", OPTFUSION + list(overrides))
    return OptFusionTrainer(cfg, str(transform), str(run_dir), progress_bar=False).run()


@pytest.fixture(scope="module")
def hard_run(synthetic_transform, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("optfusion") / "hard"
    return run_dir, optfusion_run(synthetic_transform, run_dir)


def test_phases_architecture_and_result(hard_run):
    run_dir, metrics = hard_run
    assert set(metrics["phases"]) == {"search", "retrain"}
    assert metrics["test"] == metrics["phases"]["retrain"]["test"] and metrics["head_names"] == ["final"]
    assert metrics["best_checkpoint"].startswith("checkpoints/retrain/best/")
    assert metrics["phases"]["search"]["best_checkpoint"].startswith("checkpoints/search/best/")
    # The inherited start competes as epoch 0 of the re-train.
    assert metrics["phases"]["retrain"]["best_epoch"] in (0, 1, 2)
    search_epochs = [e for e in metrics["epochs"] if e["phase"] == "search"]
    assert all({"open_gates", "operations"} <= set(e) for e in search_epochs)
    arch = Architecture.read(run_dir / "architecture.json")
    assert arch.to_json() == metrics["architecture"] and arch.mode == "hard"
    assert (run_dir / "architecture.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["test"]["auc"] > 0.55
    assert json.loads((run_dir / "progress.json").read_text())["finished"]


def test_a_run_killed_in_the_retrain_resumes_to_the_same_result(synthetic_transform, hard_run, tmp_path,
                                                                 monkeypatch):
    from fsdnet_tf.training import optfusion

    class Killed(Exception):
        pass

    original = optfusion.OptFusionTrainer._retrain

    def killed(self, *args):
        raise Killed
    monkeypatch.setattr(optfusion.OptFusionTrainer, "_retrain", killed)
    with pytest.raises(Killed):
        optfusion_run(synthetic_transform, tmp_path / "run")
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert "result" in progress["phases"]["search"] and "retrain" not in progress["phases"]
    monkeypatch.setattr(optfusion.OptFusionTrainer, "_retrain", original)
    resumed = optfusion_run(synthetic_transform, tmp_path / "run")
    expected = hard_run[1]
    assert resumed["test"] == expected["test"] and resumed["architecture"] == expected["architecture"]


def test_a_soft_retrain_of_another_runs_search(synthetic_transform, hard_run, tmp_path):
    run_dir, hard = hard_run
    soft = optfusion_run(synthetic_transform, tmp_path / "soft", "model.optfusion.mode=soft",
                         f"model.optfusion.search_run={run_dir}")
    assert soft["phases"]["search"]["run_dir"] == str(run_dir.resolve())
    assert soft["phases"]["search"]["valid"] == hard["phases"]["search"]["valid"]
    assert not any(e["phase"] == "search" for e in soft["epochs"])
    ops = soft["architecture"]["operations"]
    assert all(abs(sum(w.values()) - 1.0) < 1e-6 for w in ops.values())
    assert soft["architecture"]["gates"] == hard["architecture"]["gates"]
    # Soft re-train starts from exactly the supernet it was derived from.
    assert soft["phases"]["retrain"]["best_epoch"] is not None
    with pytest.raises(ConfigError, match="model.embedding_dim: 4, but the search"):
        optfusion_run(synthetic_transform, tmp_path / "bad", "model.embedding_dim=4",
                      f"model.optfusion.search_run={run_dir}")


def test_the_held_out_architecture_step_never_trains_the_network_on_its_rows(synthetic_transform, tmp_path):
    from fsdnet_tf.data.input import TrainInput
    from fsdnet_tf.data.transform_output import TransformDir
    train = TrainInput(TransformDir(str(synthetic_transform)), 2048, 2023, True, 1000)
    total = train.num_examples
    held = train.hold_out(0.1)
    covered = np.concatenate([train.epoch_order(e) for e in (1, 2)])
    assert len(held) + train.num_examples == total and not set(held) & set(covered)
    assert set(train.epoch_order(1)) == set(train.epoch_order(2)) == set(range(total)) - set(held)
    metrics = optfusion_run(synthetic_transform, tmp_path / "held", "model.optfusion.arch_step=held_out",
                            "model.optfusion.max_epochs=1")
    assert "second_bce" in metrics["epochs"][0]["train"]
    with pytest.raises(ConfigError, match="arch_step: held_out needs train.in_memory"):
        optfusion_run(synthetic_transform, tmp_path / "stream", "model.optfusion.arch_step=held_out",
                      "train.in_memory=false")


def test_the_export_serves_the_derived_network_without_architecture_variables(hard_run, tmp_path):
    from fsdnet_tf.export import export_run
    from fsdnet_tf.training import restore_model
    run_dir, metrics = hard_run
    summary = export_run(str(run_dir), str(tmp_path / "models"))
    assert summary["verification"]["examples_vs_in_memory"] <= 1e-5
    assert summary["model"] == "optfusion" and summary["test"]["auc"] == metrics["test"]["auc"]
    served = tf.saved_model.load(summary["path"]).model.variables
    assert not any("connection_logits" in v.name or "operation_logits" in v.name for v in served)
    model = restore_model(run_dir)[0]
    assert sorted(v.name for v in served) == sorted(v.name for v in model.variables)
    assert sum(int(np.prod(v.shape)) for v in served) == summary["parameters"] == metrics["parameters"]


def test_a_fresh_retrain_starts_from_new_weights_and_has_no_epoch_zero(synthetic_transform, hard_run, tmp_path):
    run_dir, hard = hard_run
    fresh = optfusion_run(synthetic_transform, tmp_path / "fresh", "model.optfusion.retrain_init=reinit",
                          "model.optfusion.max_epochs=1", f"model.optfusion.search_run={run_dir}")
    progress = json.loads((tmp_path / "fresh" / "progress.json").read_text())
    assert "start_valid_auc" not in progress["phases"]["retrain"] and fresh["best_epoch"] == 1
    assert "start_valid_auc" in json.loads((run_dir / "progress.json").read_text())["phases"]["retrain"]
    assert fresh["architecture"] == hard["architecture"] and fresh["test"] != hard["test"]


def test_fsdnet_train_runs_the_optfusion_phases(synthetic_transform, tmp_path, capsys):
    from fsdnet_tf.training.cli import main
    code = main(["--config", "synthetic", "--transform-dir", str(synthetic_transform), "--run-dir",
                 str(tmp_path / "cli"), "--no-progress"] + [f"--set={o}" for o in OPTFUSION] +
                ["--set=model.optfusion.max_epochs=1"])
    out = capsys.readouterr().out
    assert code == 0 and "phase search" in out and "phase retrain" in out
    assert (tmp_path / "cli" / "architecture.json").is_file()


def test_a_given_architecture_is_trained_from_scratch_without_a_search(synthetic_transform, tmp_path):
    from fsdnet_tf.models.architecture import given_architecture
    # min_delta 1.0: only the first epoch counts as an improvement, so the rate decays after each later one.
    metrics = optfusion_run(synthetic_transform, tmp_path / "parallel", "model.optfusion.architecture=parallel",
                            "model.optfusion.retrain_lr_decay=0.5", "model.optfusion.learning_rate=0.002",
                            "model.optfusion.max_epochs=4", "model.optfusion.patience=3", "train.min_delta=1.0",
                            "train.min_lr=0.0008")
    assert set(metrics["phases"]) == {"retrain"} and {e["phase"] for e in metrics["epochs"]} == {"retrain"}
    written = Architecture.read(tmp_path / "parallel" / "architecture.json")
    assert written == given_architecture("parallel", 3, written.width) and metrics["architecture"] == written.to_json()
    progress = json.loads((tmp_path / "parallel" / "progress.json").read_text())
    assert "start_valid_auc" not in progress["phases"]["retrain"] and metrics["best_epoch"] == 1
    assert [e["learning_rate"] for e in metrics["epochs"]] == pytest.approx([0.002, 0.002, 0.001, 0.0008])
    again = optfusion_run(synthetic_transform, tmp_path / "file", f"model.optfusion.architecture="
                          f"{tmp_path / 'parallel' / 'architecture.json'}", "model.optfusion.max_epochs=1")
    assert again["architecture"] == metrics["architecture"]
    with pytest.raises(ConfigError, match="model.optfusion.mode / product: soft / filtered, but the architecture"):
        optfusion_run(synthetic_transform, tmp_path / "soft", "model.optfusion.architecture=parallel",
                      "model.optfusion.mode=soft")


def test_the_search_decays_by_lr_decay_and_the_retrain_by_retrain_lr_decay(synthetic_transform, tmp_path):
    # min_delta 1.0: every epoch after a phase's first counts as no improvement.
    metrics = optfusion_run(synthetic_transform, tmp_path / "decay", "model.optfusion.lr_decay=0.5",
                            "model.optfusion.retrain_lr_decay=1.0", "model.optfusion.retrain_init=reinit",
                            "model.optfusion.patience=3", "model.optfusion.max_epochs=3", "train.min_delta=1.0")
    rates = {phase: [e["learning_rate"] for e in metrics["epochs"] if e["phase"] == phase]
             for phase in ("search", "retrain")}
    assert rates == {"search": pytest.approx([1e-3, 1e-3, 5e-4]), "retrain": pytest.approx([1e-3] * 3)}

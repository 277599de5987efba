"""KD-DAGFM runs: teacher → distill → finetune, frozen parts, resume in each phase, export of the student."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ConfigError, load_config

KD = ["dataset.synthetic.rows=20000", "model.type=kd_dagfm", "model.dagfm.batch_size=2048",
      "model.dagfm.max_epochs=3", "model.dagfm.patience=2", "train.max_epochs=1"]


@pytest.fixture(scope="module")
def kd_run(trained_run, synthetic_transform, tmp_path_factory):
    """A KD-DAGFM run distilling the session's FSDNet run."""
    from fsdnet_tf.training.distillation import KDTrainer
    teacher_dir, _, teacher_cfg = trained_run
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={teacher_dir}", "model.deep_units=[64,64,64]"])
    run_dir = tmp_path_factory.mktemp("kd") / "run"
    metrics = KDTrainer(cfg, str(synthetic_transform), str(run_dir), progress_bar=False).run()
    return run_dir, metrics, cfg


def test_phases_are_recorded_and_the_student_is_the_result(kd_run, trained_run):
    run_dir, metrics, _ = kd_run
    assert set(metrics["phases"]) == {"teacher", "distill", "finetune"}
    assert metrics["phases"]["teacher"]["test"] == trained_run[1]["test"]
    assert metrics["test"] == metrics["phases"]["finetune"]["test"]
    # The finetune phase starts from distill's best, which competes as its epoch 0.
    assert metrics["phases"]["finetune"]["valid"]["auc"] >= metrics["phases"]["distill"]["valid"]["auc"] - 1e-9
    assert metrics["test"]["auc"] > 0.55 and metrics["head_names"] == ["student"]
    assert {e["phase"] for e in metrics["epochs"]} == {"distill", "finetune"}
    assert "kd_mse" in metrics["epochs"][0]["train"]
    for phase in ("distill", "finetune"):
        assert metrics["phases"][phase]["best_checkpoint"].startswith(f"checkpoints/{phase}/best/")
    assert len(metrics["phases"]["distill"]["layer_mean_abs_r"]) == 4
    assert json.loads((run_dir / "progress.json").read_text())["finished"]


def test_a_distill_step_trains_the_student_only(trained_run, synthetic_transform):
    from fsdnet_tf.data.input import TrainInput
    from fsdnet_tf.data.transform_output import TransformDir
    from fsdnet_tf.models.student import build_student
    from fsdnet_tf.training import restore_model
    from fsdnet_tf.training.distillation import KDTrainer
    from fsdnet_tf.training.epoch_loop import make_step
    teacher_dir = trained_run[0]
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={teacher_dir}", "model.deep_units=[64,64,64]"])
    transform = TransformDir(str(synthetic_transform))
    teacher = restore_model(teacher_dir, transform=transform)[0]
    student = build_student(cfg.model, transform.contract.fields, transform.vocab_sizes(), embedding=teacher.embedding)
    trainer = KDTrainer(cfg, str(synthetic_transform), "/nonexistent", progress_bar=False)
    loss_fn = trainer._loss_fn("distill", student, teacher, student.student_variables)
    before = [v.numpy().copy() for v in teacher.variables]
    batch = TrainInput(transform, 512, 1, True, 1000, 0.0).gather(tf.range(512, dtype=tf.int64))
    values, total = loss_fn(batch, 1)
    d = cfg.model.dagfm
    np.testing.assert_allclose(total.numpy(), d.alpha * values["bce"] + d.beta * values["kd_mse"]
                               + values["regulariser"], rtol=1e-6)
    dagfm_before = [v.numpy().copy() for v in student.student_variables]
    make_step(loss_fn, student.student_variables, tf_keras.optimizers.Adam(1e-2), tf.distribute.get_strategy())(batch)
    for old, var in zip(before, teacher.variables):
        np.testing.assert_array_equal(old, var.numpy(), err_msg=var.name)
    assert any(np.any(old != v.numpy()) for old, v in zip(dagfm_before, student.student_variables))


def test_kd_term_is_zero_when_the_student_matches_the_teacher(trained_run, synthetic_transform):
    from fsdnet_tf.training.distillation import teacher_logit
    from fsdnet_tf.training import restore_model
    teacher = restore_model(trained_run[0])[0]
    features = {f: tf.zeros([4], tf.int64) for f in teacher.fields}
    z = teacher_logit(teacher, features, "served")
    p = teacher.named_outputs(features, training=False).prediction
    np.testing.assert_allclose(tf.sigmoid(z).numpy(), p.numpy(), rtol=1e-5)
    deepest = teacher_logit(teacher, features, "deepest_head")
    np.testing.assert_allclose(deepest.numpy(), teacher.named_outputs(features, training=False).logits["head_2"])


@pytest.mark.parametrize("stop_after", ["distill", "finetune"])
def test_a_killed_run_resumes_in_its_phase_with_the_same_result(kd_run, stop_after, synthetic_transform, tmp_path,
                                                                monkeypatch):
    from fsdnet_tf.training import distillation
    run_dir, metrics, cfg = kd_run
    calls = {"n": 0}
    original = distillation.PhaseLoop.run

    def killed(loop, state):       # let one epoch of the phase finish, then die
        if loop.checkpoint_dir == f"checkpoints/{stop_after}":
            original_log = loop.log_epoch

            def log_then_die(record):
                original_log(record)
                calls["n"] += 1
                raise KeyboardInterrupt
            loop.log_epoch = log_then_die
        return original(loop, state)
    monkeypatch.setattr(distillation.PhaseLoop, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        distillation.KDTrainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()
    assert calls["n"] == 1
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert len(progress["phases"][stop_after]["epochs"]) == 1
    monkeypatch.setattr(distillation.PhaseLoop, "run", original)
    resumed = distillation.KDTrainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()
    assert resumed["test"] == metrics["test"]
    assert resumed["phases"]["distill"]["valid"] == metrics["phases"]["distill"]["valid"]


def test_the_student_exports_without_teacher_variables(kd_run, tmp_path):
    from fsdnet_tf.export import export_run
    run_dir, metrics, _ = kd_run
    out = export_run(str(run_dir), str(tmp_path / "student"), "student")
    assert out["verification"]["examples_vs_in_memory"] <= 1e-6
    assert out["model"] == "kd_dagfm" and out["parameters"] == metrics["parameters"]
    served = tf.saved_model.load(out["path"]).model.variables
    assert all(v.name.startswith(("kd_dagfm/embedding/", "kd_dagfm/dagfm/")) for v in served), [v.name for v in served]
    assert sum(int(np.prod(v.shape)) for v in served) == metrics["parameters"]


def test_a_teacher_of_another_width_is_refused(trained_run, synthetic_transform, tmp_path):
    from fsdnet_tf.training.distillation import KDTrainer
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={trained_run[0]}", "model.embedding_dim=8"])
    with pytest.raises(ConfigError, match="model.embedding_dim: 8, but the teacher .* embeds at 16"):
        KDTrainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()


def test_an_unfinished_teacher_is_refused(synthetic_transform, tmp_path):
    from fsdnet_tf.training.distillation import KDTrainer
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={tmp_path / 'nothing'}"])
    with pytest.raises(ConfigError, match="is not a finished training run"):
        KDTrainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()


def test_the_teacher_phase_trains_a_teacher_in_the_run_directory(synthetic_transform, tmp_path):
    from fsdnet_tf.training.cli import main as train
    code = train(["--config", "synthetic", "--transform-dir", str(synthetic_transform), "--run-dir",
                  str(tmp_path / "run"), "--no-progress", "--set", "model.deep_units=[32,32,32]",
                  "--set", "train.max_steps_per_epoch=3", "--set", "model.dagfm.teacher_type=dcnv2",
                  "--set", "model.dagfm.deep=true"] + [a for kv in KD for a in ("--set", kv)])
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["phases"]["teacher"]["model"] == "dcnv2"
    assert (tmp_path / "run" / "teacher" / "metrics.json").is_file()
    from fsdnet_tf.export import export_run           # KD-DAGFM+ serves through the same export
    out = export_run(str(tmp_path / "run"), str(tmp_path / "models"), "kd_plus")
    assert out["verification"]["examples_vs_in_memory"] <= 1e-6 and out["parameters"] == metrics["parameters"]


def test_without_a_teacher_the_student_trains_from_scratch(synthetic_transform, tmp_path):
    from fsdnet_tf.training.distillation import KDTrainer
    cfg = load_config("synthetic", KD + ["model.dagfm.teacher_type=none"])
    metrics = KDTrainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()
    assert list(metrics["phases"]) == ["train"] and not (tmp_path / "run" / "teacher").exists()
    assert metrics["best_checkpoint"].startswith("checkpoints/train/best/") and metrics["test"]["auc"] > 0.5
    with pytest.raises(ConfigError, match="model.dagfm.teacher_run: set, but model.dagfm.teacher_type is none"):
        load_config("synthetic", KD + ["model.dagfm.teacher_type=none", "model.dagfm.teacher_run=/x"])


def test_teacher_logits_computed_once_equal_the_per_batch_teacher(trained_run, synthetic_transform):
    from fsdnet_tf.data.input import TrainInput
    from fsdnet_tf.data.transform_output import TransformDir
    from fsdnet_tf.training import restore_model
    from fsdnet_tf.training.distillation import KDTrainer, teacher_logit
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={trained_run[0]}"])
    transform = TransformDir(str(synthetic_transform))
    teacher = restore_model(trained_run[0], transform=transform)[0]
    train_input = TrainInput(transform, 1024, 1, True, 1000, 0.0)
    trainer = KDTrainer(cfg, str(synthetic_transform), "/nonexistent", progress_bar=False)
    once = trainer._teacher_logits(teacher, train_input)
    rows = tf.constant([5, 17, 4000, train_input.num_examples - 1], tf.int64)
    per_batch = teacher_logit(teacher, train_input.gather(rows), "served").numpy()
    np.testing.assert_allclose(once[rows.numpy()], per_batch, rtol=1e-5, atol=1e-6)
    assert once.shape == (train_input.num_examples,)


def test_distillation_on_two_workers(trained_run, synthetic_transform, tmp_path):
    """The multi-replica path (tf.data input with the teacher-logit column, all-reduced steps)."""
    import sys

    from helpers import run_on_loopback_workers
    command = [sys.executable, "-m", "fsdnet_tf.training.cli", "--config", "synthetic", "--transform-dir",
               str(synthetic_transform), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    for item in KD + [f"model.dagfm.teacher_run={trained_run[0]}", "model.dagfm.max_epochs=2"]:
        command += ["--set", item]
    results = run_on_loopback_workers(command)
    assert [code for code, _ in results] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["phases"]["distill"]["epochs"] == 2
    assert metrics["test"]["auc"] > 0.5


def test_print_config_shows_the_phases(capsys):
    from fsdnet_tf.training.cli import main as train
    assert train(["--config", "frappe", "--set", "model.type=kd_dagfm", "--print-config"]) == 0
    out = capsys.readouterr().out
    for line in ("- teacher\n  - distill\n  - finetune", "student: DAGFM outer, depth 3, per-layer sum readout",
                 "0.1·bce(student) + 921.6·mean (sg(z_T) − z_S)²", "explicit_tower: cross_v2"):
        assert line in out, line
    assert train(["--config", "frappe", "--set", "model.type=kd_dagfm", "--set", "model.dagfm.teacher_type=none",
                  "--print-config"]) == 0
    assert "train: bce(student); trains the student and a fresh embedding" in capsys.readouterr().out


def test_rescaled_mixing_gives_h0_unit_scale(kd_run, trained_run, synthetic_transform, tmp_path):
    from fsdnet_tf.training.distillation import KDTrainer
    identity = kd_run[1]["phases"]["distill"]
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={trained_run[0]}", "model.deep_units=[64,64,64]",
                                         "model.dagfm.mixing_init=rescaled", "model.dagfm.max_epochs=1"])
    rescaled = KDTrainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()
    distill = rescaled["phases"]["distill"]
    k = distill["mixing_scale"]
    assert k > 1 and identity["mixing_scale"] is None
    # C = k·I scales layer t by k^(t+1) (same seed, same initial P, Q).
    for t, (a, b) in enumerate(zip(identity["layer_mean_abs_r"], distill["layer_mean_abs_r"])):
        assert b == pytest.approx(a * k ** (t + 1), rel=1e-3), t


def test_the_kd_term_is_zero_when_the_student_matches_the_teacher_logit(trained_run, synthetic_transform):
    from fsdnet_tf.data.input import TrainInput
    from fsdnet_tf.data.transform_output import TransformDir
    from fsdnet_tf.models.student import build_student
    from fsdnet_tf.training.distillation import TEACHER_LOGIT, KDTrainer
    cfg = load_config("synthetic", KD + [f"model.dagfm.teacher_run={trained_run[0]}"])
    transform = TransformDir(str(synthetic_transform))
    student = build_student(cfg.model, transform.contract.fields, transform.vocab_sizes())
    batch = TrainInput(transform, 256, 1, True, 1000, 0.0).gather(tf.range(256, dtype=tf.int64))
    batch[TEACHER_LOGIT] = student.named_outputs(batch, training=True).logits["student"]
    trainer = KDTrainer(cfg, str(synthetic_transform), "/nonexistent", progress_bar=False)
    values, total = trainer._loss_fn("distill", student, None, student.student_variables)(batch, 1)
    assert float(values["kd_mse"]) == 0.0
    np.testing.assert_allclose(total.numpy(), cfg.model.dagfm.alpha * values["bce"] + values["regulariser"], rtol=1e-6)

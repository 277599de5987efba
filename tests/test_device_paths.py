"""The code paths a GPU takes, exercised on the CPU, each in its own process: MirroredStrategy over
two logical CPU devices (as over two GPUs), XLA (``train.jit_compile``) and mixed precision.

Each trains the synthetic dataset for three epochs and must end within the stated tolerance of
the float32 single-device run: epoch-1 mean train BCE within 5 % (a replica or loss-scale
error would be off by a factor of two) and test AUC / logloss within 0.01 / 0.02 (mirrored
batch-norm statistics and dropout masks are per replica, half precision rounds). XLA only
reorders float arithmetic: its BCE is held to 0.1 %.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

TOLERANCE = {"mirrored": (0.05, 0.01, 0.02), "xla": (0.001, 0.01, 0.02), "mixed": (0.05, 0.01, 0.02)}
PATHS = {"base": ([], {}), "mirrored": ([], {"FSDNET_CPU_REPLICAS": "2"}),
         "xla": (["train.jit_compile=true"], {}), "mixed": (["train.mixed_precision=true"], {})}


def train(transform, run_dir, overrides, env) -> dict:
    command = [sys.executable, "-m", "fsdnet_tf.training.cli", "--config", "synthetic", "--transform-dir",
               str(transform), "--run-dir", str(run_dir), "--no-progress"]
    for item in ["dataset.synthetic.rows=20000", "train.max_epochs=3", "train.patience=3",
                 "model.deep_units=[64,64,64]", "train.batch_size=2048"] + overrides:
        command += ["--set", item]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(synthetic_transform, tmp_path_factory):
    root = tmp_path_factory.mktemp("device_paths")
    return {name: train(synthetic_transform, root / name, overrides, env) for name, (overrides, env) in PATHS.items()}


@pytest.mark.parametrize("path", ["mirrored", "xla", "mixed"])
def test_the_path_trains_within_tolerance_of_float32_on_one_device(runs, path):
    base, run = runs["base"], runs[path]
    bce_tolerance, auc_tolerance, logloss_tolerance = TOLERANCE[path]
    first, expected = run["epochs"][0]["train"]["bce"], base["epochs"][0]["train"]["bce"]
    assert abs(first - expected) <= bce_tolerance * expected, (first, expected)
    assert abs(run["test"]["auc"] - base["test"]["auc"]) <= auc_tolerance
    assert abs(run["test"]["logloss"] - base["test"]["logloss"]) <= logloss_tolerance
    assert len(run["epochs"]) == 3 and run["test"]["auc"] > 0.55


def test_the_mirrored_run_had_two_replicas_and_the_others_one(runs):
    assert runs["mirrored"]["replicas"] == 2
    assert {runs[name]["replicas"] for name in ("base", "xla", "mixed")} == {1}
    assert runs["mixed"]["config"]["train"]["mixed_precision"] and runs["xla"]["config"]["train"]["jit_compile"]


def test_a_bad_cpu_replica_count_is_a_clear_error(monkeypatch):
    from fsdnet_tf.training import devices
    monkeypatch.setenv(devices.CPU_REPLICAS_ENV, "two")
    with pytest.raises(ValueError, match="FSDNET_CPU_REPLICAS='two': expected a whole number"):
        devices.cpu_replicas()

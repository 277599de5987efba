"""The Kubeflow pipeline: its compiled YAML (images, arguments, caching, the gate), a local run on
synthetic data that pushes a first version, and the gate refusing a model worse than the served one."""
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

from fsdnet_tf.preflight import newest_version
from pipelines import model_validation
from pipelines.pipeline_cli import main as pipeline

TINY = ["--set", "dataset.synthetic.rows=3000", "--set", "train.max_epochs=2", "--set", "model.deep_units=[32,32,32]"]


def test_compiled_yaml_runs_every_step_in_the_image_with_the_pipelines_arguments(tmp_path):
    path = tmp_path / "pipeline.yaml"
    assert pipeline(["compile", "--output", str(path), "--image", "registry.example/fsdnet-pipeline:7"]) == 0
    spec = yaml.safe_load(path.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{s}-step" for s in ("transform", "train", "export", "validate", "push")}
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "registry.example/fsdnet-pipeline:7"
        assert "pip install" not in " ".join(container["command"])     # kfp comes with the image
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in inputs.items()} == {
        "config": "STRING", "serving_base_path": "STRING", "data_dir": "STRING", "model_name": "STRING",
        "overrides": "LIST", "max_auc_drop": "NUMBER_DOUBLE"}
    assert inputs["max_auc_drop"]["defaultValue"] == 0.001 and "defaultValue" not in inputs["config"]
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["train-step"]["dependentTasks"] == ["transform-step"]
    assert sorted(tasks["validate-step"]["dependentTasks"]) == ["export-step", "transform-step"]
    assert {k: tasks[k].get("cachingOptions", {}).get("enableCache", False) for k in
            ("transform-step", "train-step", "export-step", "validate-step")} == {
        "transform-step": True, "train-step": True, "export-step": True, "validate-step": False}
    gate = tasks["condition-1"]
    assert gate["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--validate-step-Output'] == true"
    push = spec["components"]["comp-condition-1"]["dag"]["tasks"]["push-step"]
    assert not push.get("cachingOptions", {}).get("enableCache", False)
    # Both steps that read the config get the same overrides (training checks the transform's dataset keys).
    for step in ("transform-step", "train-step"):
        assert tasks[step]["inputs"]["parameters"]["overrides"] == {"componentInputParameter": "overrides"}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """fsdnet-pipeline run --local as a user runs it: its own process, what it prints captured."""
    work = tmp_path_factory.mktemp("pipeline")
    serving = work / "serving" / "fsdnet"
    proc = subprocess.run([sys.executable, "-m", "pipelines.pipeline_cli", "run", "--local", "--config", "synthetic",
                           "--work-dir", str(work / "work"), "--serving-base-path", str(serving)] + TINY,
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    return proc, work, serving


def test_local_run_pushes_the_first_version_and_keeps_kfps_log_in_a_file(local_run):
    proc, work, serving = local_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in serving.iterdir()) == ["1"] and (serving / "1" / "saved_model.pb").is_file()
    printed = proc.stdout.strip().splitlines()
    assert len(printed) == 3 and printed[1].startswith("validate: approved (nothing is served under"), printed
    assert proc.stderr == ""
    assert "Executing task" in (work / "work" / "pipeline.log").read_text()


def test_the_gate_refuses_a_model_below_the_served_one_and_push_is_atomic(local_run, monkeypatch):
    _, work, serving = local_run
    (candidate,) = (work / "work" / "pipeline_root").glob("*/export-step/model")
    (transform,) = (work / "work" / "pipeline_root").glob("*/transform-step/transform")
    rows = model_validation.labelled_rows(transform)
    same = model_validation.validate(candidate, serving, rows, max_auc_drop=0.001)
    assert same["approved"] and same["candidate_auc"] == pytest.approx(same["served_auc"])
    # A candidate must now beat the served model by 0.5 AUC: the same model cannot.
    refused = model_validation.validate(candidate, serving, rows, max_auc_drop=-0.5)
    assert not refused["approved"] and "vs served version 1" in refused["reason"]

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(shutil, "copytree", crash)
    with pytest.raises(OSError):
        model_validation.push(candidate, serving)
    assert newest_version(serving) == 1                     # a crashed push publishes nothing
    monkeypatch.undo()
    assert model_validation.push(candidate, serving) == 2
    assert sorted(p.name for p in serving.iterdir() if not p.name.startswith(".")) == ["1", "2"]


def test_nothing_served_yet_is_approved_and_a_missing_candidate_is_an_error(local_run, tmp_path):
    _, work, _ = local_run
    (candidate,) = (work / "work" / "pipeline_root").glob("*/export-step/model")
    (transform,) = (work / "work" / "pipeline_root").glob("*/transform-step/transform")
    first = model_validation.validate(candidate, tmp_path / "empty", model_validation.labelled_rows(transform), 0.001)
    assert first["approved"] and first["served_auc"] is None
    with pytest.raises(FileNotFoundError, match="no SavedModel version"):
        model_validation.validate(tmp_path, tmp_path / "empty", [], 0.001)


def test_a_bad_override_fails_before_the_pipeline_starts(tmp_path, capsys):
    code = pipeline(["run", "--local", "--config", "synthetic", "--work-dir", str(tmp_path),
                     "--serving-base-path", str(tmp_path / "s"), "--set", "model.nope=1"])
    assert code == 2 and "unknown key 'model.nope'" in capsys.readouterr().err
    assert not any(pathlib.Path(tmp_path).iterdir())

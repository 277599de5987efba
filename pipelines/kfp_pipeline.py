"""The batch pipeline for Kubeflow Pipelines (kfp 2.x): transform → train → export → validate → push.

Each step is a lightweight Python component run in the project's pipeline image
(``docker/pipeline.Dockerfile``, which installs fsdnet_tf and kfp): it calls the same
command-line tool or function a person would. ``validate`` scores the transform's held-out
test sample with the new model and with the model being served and refuses a new model
whose AUC is more than ``max_auc_drop`` below; ``push`` then copies an approved model into
the serving base path as its next version, atomically. ``validate`` and ``push`` are never
cached (one reads, the other changes what is served); transform, train and export are, so a
re-run with the same inputs reuses them: give each batch of logs its own ``data_dir``.
"""
# No `from __future__ import annotations`: kfp reads the components' annotations as types.

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

DEFAULT_IMAGE = "fsdnet-pipeline:latest"
PIPELINE_NAME = "fsdnet-train-and-push"


def transform_step(config: str, data_dir: str, overrides: list, transform: Output[Artifact]):
    import subprocess
    import sys
    command = [sys.executable, "-m", "pipelines.transform_cli", "--config", config, "--output", transform.path]
    command += ["--data-dir", data_dir] if data_dir else []
    for item in overrides:
        command += ["--set", item]
    subprocess.run(command, check=True)


def train_step(config: str, overrides: list, transform: Input[Artifact], run: Output[Artifact]):
    import subprocess
    import sys
    command = [sys.executable, "-m", "fsdnet_tf.training.cli", "--config", config, "--transform-dir",
               transform.path, "--run-dir", run.path, "--no-progress"]
    for item in overrides:
        command += ["--set", item]
    subprocess.run(command, check=True)


def export_step(model_name: str, run: Input[Artifact], model: Output[Model]):
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "serving.export_cli", "--run-dir", run.path, "--model-base-path",
                    model.path, "--model-name", model_name], check=True)


def validate_step(serving_base_path: str, max_auc_drop: float, transform: Input[Artifact], model: Input[Model],
                  metrics: Output[Metrics]) -> bool:
    """Whether to push; the AUCs compared and the reason are in ``metrics``."""
    from pipelines.model_validation import labelled_rows, validate
    result = validate(model.path, serving_base_path, labelled_rows(transform.path), max_auc_drop)
    metrics.log_metric("candidate_auc", result["candidate_auc"])
    if result["served_auc"] is not None:
        metrics.log_metric("served_auc", result["served_auc"])
    metrics.metadata["reason"] = result["reason"]
    print(("approved: " if result["approved"] else "refused: ") + result["reason"])
    return result["approved"]


def push_step(serving_base_path: str, model: Input[Model]) -> int:
    from pipelines.model_validation import push
    return push(model.path, serving_base_path)


def build(image: str = DEFAULT_IMAGE):
    """The pipeline function with every step in ``image`` (kfp is installed there, not at run time)."""
    def component(func):
        return dsl.component(func, base_image=image, install_kfp_package=False)
    transform_op, train_op, export_op, validate_op, push_op = map(
        component, (transform_step, train_step, export_step, validate_step, push_step))

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__.split("\n")[0])
    def fsdnet_pipeline(config: str, serving_base_path: str, data_dir: str = "", model_name: str = "fsdnet",
                        overrides: list = [], max_auc_drop: float = 0.001):  # noqa: B006 (a kfp default, not shared)
        # One list of --set overrides for both steps: training checks the transform's dataset keys.
        transform = transform_op(config=config, data_dir=data_dir, overrides=overrides)
        run = train_op(config=config, overrides=overrides, transform=transform.outputs["transform"])
        exported = export_op(model_name=model_name, run=run.outputs["run"])
        # The gate reads what is served now, so neither it nor the push may come from the cache.
        validation = validate_op(serving_base_path=serving_base_path, max_auc_drop=max_auc_drop,
                                 transform=transform.outputs["transform"], model=exported.outputs["model"])
        validation.set_caching_options(False)
        with dsl.If(validation.outputs["Output"] == True):  # noqa: E712 (a pipeline condition, not Python)
            push_op(serving_base_path=serving_base_path, model=exported.outputs["model"]).set_caching_options(False)
    return fsdnet_pipeline

"""Test session set-up: Keras 2 before TensorFlow, shared small transform/training outputs."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BEAM_ARGS = ["--runner=FnApiRunner"]


@pytest.fixture(scope="session")
def synthetic_transform(tmp_path_factory):
    """The synthetic dataset (20k rows) through the real pipeline, once per session."""
    from fsdnet_tf.config import load_config
    from pipelines.transform import run_transform
    cfg = load_config("synthetic", ["dataset.synthetic.rows=20000"])
    out = tmp_path_factory.mktemp("synthetic") / "transform"
    run_transform(cfg.dataset, None, str(out), BEAM_ARGS)
    return out


@pytest.fixture(scope="session")
def trained_run(synthetic_transform, tmp_path_factory):
    """A short FSDNet run on the synthetic transform output, once per session."""
    from fsdnet_tf.config import load_config
    from fsdnet_tf.training import Trainer
    cfg = load_config("synthetic", ["dataset.synthetic.rows=20000", "train.max_epochs=4",
                                    "model.deep_units=[64,64,64]"])
    run_dir = tmp_path_factory.mktemp("runs") / "fsdnet"
    metrics = Trainer(cfg, str(synthetic_transform), str(run_dir), progress_bar=False).run()
    return run_dir, metrics, cfg

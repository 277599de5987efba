"""Before TensorFlow: the checks of arguments and input paths, and a readable terminal.

Every tool parses its arguments and checks its config and input paths with this module and
the standard library only, so a mistake fails in a fraction of a second with one line on
stderr, before TensorFlow (3–5 s to import) is loaded. Then :func:`start` imports
TensorFlow with its C++ start-up lines (absl's pre-init warning, oneDNN and CUDA probes)
kept off the terminal and quiets the Python loggers that repeat framework internals;
``--verbose`` shows all of it.
"""
from __future__ import annotations

import logging
import os
import pathlib
import sys

from fsdnet_tf import _env  # noqa: F401  (TF_CPP_MIN_LOG_LEVEL, Keras 2, before TensorFlow)
from fsdnet_tf.config_error import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FRAMEWORK_LOGGERS = ("absl", "tensorflow", "tensorflow_transform", "apache_beam")
# Set by :func:`start` for the processes a tool starts (Beam's local workers), which import
# TensorFlow quietly unless it is set.
VERBOSE_ENV = "FSDNET_VERBOSE"


class UsageError(ConfigError):
    """A bad argument or input path, found before any heavy import (a ConfigError, so that the
    library's own callers, which meet the same checks, handle it as they always have)."""


def fail(prog: str, message: str, code: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


OWN_LOGGERS = ("fsdnet_tf", "pipelines", "serving", "__main__")


def own_or_warning(record: logging.LogRecord) -> bool:
    """The tools' own progress lines, and anyone's warnings: Beam's portable runner, for one,
    logs its job-service chatter at INFO on the root logger."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in OWN_LOGGERS


def start(verbose: bool, level: int = logging.INFO) -> None:
    """Logging at ``level`` for a tool's own progress, then TensorFlow imported (quietly unless ``verbose``)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    os.environ[VERBOSE_ENV] = "1" if verbose else ""
    if verbose:
        import tensorflow  # noqa: F401
        return
    quiet_framework_loggers()
    for handler in logging.getLogger().handlers:
        handler.addFilter(own_or_warning)
    import_tensorflow_quietly()


def quiet_framework_loggers() -> None:
    for name in FRAMEWORK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with the process's stderr (fd 2) sent to /dev/null.

    The lines TF's C++ runtime prints while loading ignore TF_CPP_MIN_LOG_LEVEL (absl logs
    them before its own initialisation). Python exceptions are raised after stderr is
    restored, so a failed import still reports itself.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()      # the CUDA probe, which logs when no driver is present
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def require_file(path: str | pathlib.Path, what: str) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    return path


def is_finished_run(run_dir: str | pathlib.Path) -> bool:
    return (pathlib.Path(run_dir) / "metrics.json").is_file()


def require_finished_run(run_dir: str | pathlib.Path) -> pathlib.Path:
    if not is_finished_run(run_dir):
        raise UsageError(f"{run_dir} is not a finished training run (no metrics.json)")
    return pathlib.Path(run_dir)


def require_finished_teacher(teacher_run: str | pathlib.Path) -> None:
    if not is_finished_run(teacher_run):
        raise UsageError(f"model.dagfm.teacher_run: {teacher_run} is not a finished training run (no metrics.json)")


def require_transform_output(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not (path / "stats.json").is_file():
        raise UsageError(f"{path} is not a finished transform output (no stats.json); run fsdnet-transform first")
    return path


def newest_version(base_path: str | pathlib.Path):
    """The highest integer version under a TF Serving model base path that holds a SavedModel, or None."""
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return None
    versions = [int(p.name) for p in base.iterdir()
                if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()]
    return max(versions, default=None)


def require_servable(base_path: str | pathlib.Path) -> None:
    if newest_version(base_path) is None:
        raise UsageError(f"no servable version under {base_path} (expected <base>/<integer version>/saved_model.pb)")


def require_port(flag: str, port: int, zero_means: str) -> None:
    if not 0 <= port <= 65535:
        raise UsageError(f"{flag} must be 0 ({zero_means}) or a port number, got {port}")

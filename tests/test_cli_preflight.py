"""The command-line tools check their input before TensorFlow or Beam is imported (one line on
stderr, exit 2), and keep TensorFlow's C++ start-up lines off the terminal unless --verbose."""
import json
import subprocess
import sys

import pytest

from conftest import REPO

# module, arguments, the message; each run in a fresh interpreter that then reports which
# heavy packages the failed command had imported.
CASES = [
    ("fsdnet_tf.training.cli", ["--config", "frappe", "--transform-dir", "{tmp}/none", "--run-dir", "{tmp}/r"],
     "{tmp}/none is not a finished transform output (no stats.json)"),
    ("fsdnet_tf.training.cli", ["--config", "frappe", "--transform-dir", "{tmp}", "--run-dir", "{tmp}/r",
                                "--set", "model.dagfm.dropout=1"], "unknown key 'model.dagfm.dropout'"),
    ("fsdnet_tf.training.cli", ["--config", "frappe", "--transform-dir", "{transform}", "--run-dir", "{tmp}/r",
                                "--set", "model.type=kd_dagfm", "--set", "model.dagfm.teacher_run={tmp}/t"],
     "model.dagfm.teacher_run: {tmp}/t is not a finished training run"),
    ("pipelines.transform_cli", ["--config", "frappe", "--data-dir", "{tmp}/none", "--output", "{tmp}/o"],
     "input file {tmp}/none/train.csv does not exist"),
    ("pipelines.transform_cli", ["--config", "movielens1m", "--output", "{tmp}/o"], "needs --data-dir"),
    ("pipelines.transform_cli", ["--config", "synthetic", "--output", "{tmp}"], "already exists"),
    ("serving.export_cli", ["--run-dir", "{tmp}/none", "--model-base-path", "{tmp}/m"],
     "{tmp}/none is not a finished training run (no metrics.json)"),
    ("serving.serve_cli", ["--model-base-path", "{tmp}/none", "--model-name", "m"], "no servable version under"),
    ("serving.serve_cli", ["--model-base-path", "{tmp}", "--model-name", "m", "--rest-api-port", "70000"],
     "--rest-api-port must be 0 (REST off) or a port number, got 70000"),
    ("serving.score_cli", ["--target", "127.0.0.1:1", "--model-name", "m", "--input", "{tmp}/none.csv",
                           "--output", "{tmp}/o.csv"], "input file {tmp}/none.csv does not exist"),
    ("serving.score_cli", ["--target", "127.0.0.1:1", "--model-name", "m", "--input", "{tmp}/bad.jsonl",
                           "--output", "{tmp}/o.csv"], "is not readable rows"),
    ("serving.menu", ["--out-dir", "{tmp}/menu", "--entry", "a={tmp}/none"],
     "--entry a: {tmp}/none is not a finished training run"),
]

PROGRAMS = {"fsdnet_tf.training.cli": "fsdnet-train", "pipelines.transform_cli": "fsdnet-transform",
            "serving.export_cli": "fsdnet-export", "serving.serve_cli": "fsdnet-serve",
            "serving.score_cli": "fsdnet-score", "serving.menu": "fsdnet-menu"}

PROBE = """
import json, sys
from {module} import main
code = main({argv!r})
print(json.dumps({{"code": code, "heavy": sorted(m for m in ("tensorflow", "apache_beam") if m in sys.modules)}}))
"""


@pytest.mark.parametrize("module, argv, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_fails_in_one_line_before_heavy_imports(module, argv, message, tmp_path, synthetic_transform):
    (tmp_path / "bad.jsonl").write_text('{"f0": \n')
    fill = lambda text: text.format(tmp=tmp_path, transform=synthetic_transform)  # noqa: E731
    proc = subprocess.run([sys.executable, "-c", PROBE.format(module=module, argv=[fill(a) for a in argv])],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"code": 2, "heavy": []}, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROGRAMS[module]}: error: ") and fill(message) in lines[0]


QUIET = """
from fsdnet_tf import preflight
preflight.start(verbose={verbose})
import tensorflow as tf
print(int(tf.constant(2) + 1))
"""


def test_tensorflow_start_up_lines_are_hidden_unless_verbose():
    runs = {verbose: subprocess.run([sys.executable, "-c", QUIET.format(verbose=verbose)], capture_output=True,
                                    text=True, cwd=REPO, timeout=120) for verbose in (False, True)}
    assert runs[False].stdout.strip() == runs[True].stdout.strip() == "3"
    assert runs[False].stderr == ""
    assert runs[True].stderr != ""      # the same start-up, shown: what the quiet run hid

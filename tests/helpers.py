"""Small helpers shared by tests."""
import json
import pathlib

import numpy as np


def read_records(transform_dir, split) -> list[tuple]:
    """Decoded transformed rows of a split as sorted tuples (field ids..., label)."""
    import tensorflow as tf

    from fsdnet_tf.data.transform_output import TransformDir
    out = TransformDir(transform_dir)
    spec = out.contract.transformed_feature_spec()
    keys = list(out.contract.fields) + ["label"]
    rows = []
    for batch in tf.data.TFRecordDataset(out.files(split), compression_type="GZIP").batch(4096):
        parsed = tf.io.parse_example(batch, spec)
        rows.extend(zip(*[parsed[k].numpy().tolist() for k in keys]))
    return sorted(rows)


def vocabulary(transform_dir, field) -> list[str]:
    path = pathlib.Path(transform_dir) / "transform_fn" / "assets" / f"vocab_{field}"
    return path.read_text().splitlines()


def dead_letters(transform_dir) -> list[dict]:
    rows = []
    for path in sorted((pathlib.Path(transform_dir) / "dead_letter").glob("*.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines())
    return rows


def stats(transform_dir) -> dict:
    return json.loads((pathlib.Path(transform_dir) / "stats.json").read_text())


def auc(labels, scores) -> float:
    from fsdnet_tf.metrics import roc_auc
    return roc_auc(np.asarray(labels), np.asarray(scores))


def run_on_loopback_workers(command: list[str], workers: int = 2, timeout: float = 600,
                            cwd=None) -> list[tuple[int, str]]:
    """Run ``command`` once per worker of a loopback TF_CONFIG cluster; (return code, output) each."""
    import os
    import socket
    import subprocess
    ports = []
    for _ in range(workers):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [subprocess.Popen(command, env={**os.environ, "TF_CONFIG": json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})}, cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for i in range(workers)]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [(p.returncode, out) for p, out in zip(procs, outputs)]

"""ParameterServerStrategy on loopback, at toy size: two parameter servers holding the embedding
tables split across them, two workers running the steps the chief schedules, the chief
coordinating, evaluating and checkpointing — every task the same ``fsdnet-train`` command with
its own TF_CONFIG. The checkpoint of the sharded tables restores into the ordinary model, so the
run exports as any other."""
import json
import os
import socket
import subprocess
import sys

from conftest import REPO


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_parameter_server_cluster_trains_and_exports(synthetic_transform, tmp_path):
    from fsdnet_tf.export import export_run
    ports = free_ports(5)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{p}" for p in ports[1:3]],
               "ps": [f"127.0.0.1:{p}" for p in ports[3:]]}
    command = [sys.executable, "-m", "fsdnet_tf.training.cli", "--config", "synthetic", "--transform-dir",
               str(synthetic_transform), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    for item in ["dataset.synthetic.rows=20000", "train.max_epochs=2", "train.patience=2", "train.batch_size=1024",
                 "train.in_memory=false", "train.shuffle_buffer=20000", "model.deep_units=[64,64,64]",
                 "train.ps_min_shard_bytes=256", "train.steps_per_execution=4"]:
        command += ["--set", item]

    def task(kind: str, index: int, **kwargs) -> subprocess.Popen:
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}),
               "TF_NUM_INTRAOP_THREADS": "1"}
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, **kwargs)

    servers = [task(kind, i) for kind in ("ps", "worker") for i in range(2)]
    try:
        chief = task("chief", 0)
        output = chief.communicate(timeout=900)[0]
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=60)
    assert chief.returncode == 0, output[-4000:]
    assert "distribution: ParameterServerStrategy" in output
    assert "variables on 2 parameter servers:" in output, output[-3000:]
    assert "8 of the 8 embedding tables among them" in output, output[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["test"]["auc"] > 0.52
    assert metrics["epochs"][1]["train"]["bce"] < metrics["epochs"][0]["train"]["bce"]
    exported = export_run(str(tmp_path / "run"), str(tmp_path / "models"))
    assert exported["verification"]["examples_vs_in_memory"] <= 1e-5
    assert exported["test"]["auc"] == metrics["test"]["auc"]

"""Serving latency and throughput over gRPC (loopback) vs a direct in-process SavedModel call.

    .venv/bin/python benchmarks/serving_latency.py --model-base-path DIR --rows RAW_ROWS.jsonl

The server is fsdnet-serve in its own process (as in production, a separate server).
For each batch size the same serialized tf.Examples are scored through gRPC Predict and
through the loaded SavedModel's serving_default signature in this process (the floor).
Each figure follows WARMUP_CALLS untimed calls; a p99 rests on its worst 1 % of calls,
so batches 1 and 64 take ``--repeats`` samples (2000: the p99 is the 20th-worst call)
and batch 1024 a fifth of that. The two paths alternate in ROUNDS blocks, so that both
see the same machine: on a shared machine speed drifts over seconds.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import json
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from fsdnet_tf import features as names
from serving.client import ScoringClient


WARMUP_CALLS = 50
ROUNDS = 10


def percentiles(samples):
    ms = np.array(samples) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}


def time_interleaved(calls: dict, repeats: int) -> dict:
    """Per call name, ``repeats`` latencies in seconds, taken in ROUNDS alternating blocks."""
    for call in calls.values():
        for _ in range(WARMUP_CALLS):
            call()
    samples = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            for _ in range(repeats // ROUNDS):
                started = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - started)
    return samples


def newest_version(base: pathlib.Path) -> pathlib.Path:
    return max((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-base-path", required=True)
    parser.add_argument("--model-name", default="fsdnet")
    parser.add_argument("--rows", required=True, help="raw rows (jsonl), e.g. <transform>/raw_sample_test.jsonl")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    rows = [json.loads(line) for line in pathlib.Path(args.rows).read_text().splitlines()]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "serving.server", "--model-base-path", args.model_base_path,
                               "--model-name", args.model_name, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if line.startswith("READY"):
                break
        loaded = tf.saved_model.load(str(newest_version(pathlib.Path(args.model_base_path))))
        serve = loaded.signatures[names.PREDICT_SIGNATURE]
        results = {}
        with ScoringClient(f"127.0.0.1:{port}", args.model_name, timeout=30) as client:
            for batch in (1, 64, 1024):
                batch_rows = (rows * (batch // len(rows) + 1))[:batch]
                request = client.predict_request(batch_rows)
                examples = tf.constant(client.serialize(batch_rows))
                repeats = args.repeats if batch < 1024 else max(100, args.repeats // 5)
                times = time_interleaved({
                    "grpc": lambda: client._call(client.prediction.Predict, request),
                    "in_process": lambda: serve(examples=examples)[names.PROBABILITY_OUTPUT].numpy()}, repeats)
                grpc_times, local_times = times["grpc"], times["in_process"]
                results[f"batch_{batch}"] = {
                    "calls": repeats,
                    "grpc": {**percentiles(grpc_times), "examples_per_second": round(batch / np.median(grpc_times))},
                    "in_process": {**percentiles(local_times),
                                   "examples_per_second": round(batch / np.median(local_times))}}
            big = results["batch_1024"]
            results["grpc_over_in_process_at_1024"] = round(
                big["grpc"]["examples_per_second"] / big["in_process"]["examples_per_second"], 3)
        description = json.loads((newest_version(pathlib.Path(args.model_base_path)) / "assets.extra" /
                                  "fsdnet_model.json").read_text())
        results["model"] = {k: description[k] for k in ("model", "heads", "test")}
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

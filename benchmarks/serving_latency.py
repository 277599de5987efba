"""Serving latency and throughput over gRPC (loopback) vs a direct in-process SavedModel call.

    .venv/bin/python benchmarks/serving_latency.py --model-base-path DIR --rows RAW_ROWS.jsonl

The server is fsdnet-serve in its own process (as in production, a separate server).
For each batch size the same serialized tf.Examples are scored through gRPC Predict and
in this process two ways: the SavedModel's serving_default signature called eagerly, and
the server's own runtime (Session::Run on the signature, see serving.versions.SignatureRunner).
The faster of the two at each batch size is the floor the gRPC figures are set against.
Timing as in :mod:`serving.latency` (warm-up calls, paths alternating in blocks); a p99
rests on its worst 1 % of calls, so batches 1 and 64 take ``--repeats`` samples (2000: the
p99 is the 20th-worst call) and batch 1024 a fifth of that.

Sustained throughput at batch 1024: CONCURRENCY client threads each send requests back to
back for 2 s (one in-process thread per client thread calling the floor), in alternating
rounds; a server's examples/s is its best over those levels, as a load test
would find it. Sequential examples/s (batch / median latency) are reported too.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

from fsdnet_tf import features as names
from serving.client import ScoringClient
from serving.latency import newest_version, percentiles, running_server, sustained, time_interleaved
from serving.versions import SignatureRunner


CONCURRENCY = (1, 2, 4)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-base-path", required=True)
    parser.add_argument("--model-name", default="fsdnet")
    parser.add_argument("--rows", required=True, help="raw rows (jsonl), e.g. <transform>/raw_sample_test.jsonl")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    rows = [json.loads(line) for line in pathlib.Path(args.rows).read_text().splitlines()]
    with running_server(args.model_base_path, args.model_name) as port:
        version = newest_version(pathlib.Path(args.model_base_path))
        serve = tf.saved_model.load(str(version)).signatures[names.PREDICT_SIGNATURE]
        runner = SignatureRunner(version)
        results = {}
        with ScoringClient(f"127.0.0.1:{port}", args.model_name, timeout=30) as client:
            for batch in (1, 64, 1024):
                batch_rows = (rows * (batch // len(rows) + 1))[:batch]
                request = client.predict_request(batch_rows)
                serialized = np.array(client.serialize(batch_rows), dtype=object)
                examples = tf.constant(serialized)
                calls = {
                    "grpc": lambda: client._call(client.prediction.Predict, request),
                    "in_process_eager": lambda: serve(examples=examples)[names.PROBABILITY_OUTPUT].numpy(),
                    "in_process_session": lambda: runner.run(names.PREDICT_SIGNATURE,
                                                             {names.EXAMPLES_INPUT: serialized},
                                                             [names.PROBABILITY_OUTPUT])}
                repeats = args.repeats if batch < 1024 else max(100, args.repeats // 5)
                times = time_interleaved(calls, repeats)
                figures = {name: {**percentiles(t), "examples_per_second": round(batch / np.median(t))}
                           for name, t in times.items()}
                floor = max(("in_process_eager", "in_process_session"),
                            key=lambda name: figures[name]["examples_per_second"])
                results[f"batch_{batch}"] = {"calls": repeats, **figures, "floor": floor}
            big = results["batch_1024"]
            results["grpc_over_in_process_at_1024"] = round(
                big["grpc"]["examples_per_second"] / big[big["floor"]]["examples_per_second"], 3)
            floor_call = calls[big["floor"]]
            rates = sustained({"grpc": calls["grpc"], "in_process": floor_call}, 1024, CONCURRENCY)
            best = {name: max(levels.values()) for name, levels in rates.items()}
            results["sustained_at_1024"] = {**rates, "best_examples_per_second": best,
                                            "grpc_over_in_process": round(best["grpc"] / best["in_process"], 3)}
        description = json.loads((version / "assets.extra" / "fsdnet_model.json").read_text())
        results["model"] = {k: description[k] for k in ("model", "output", "test")}
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

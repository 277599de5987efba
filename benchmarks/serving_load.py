"""Load with version swaps: many concurrent clients while new model versions are pushed.

    .venv/bin/python benchmarks/serving_load.py --run-dir RUN [--clients 32] [--requests 40000]
                                                [--batch 1] [--output benchmarks/results/serving_load]

RUN is exported as version 1 of a fresh model base path and served by fsdnet-serve in its
own process (gRPC and REST). Then, once over gRPC and once over REST, ``--clients`` client
threads (one client each) send ``--requests`` Predict calls of ``--batch`` raw rows in total
while two new versions are published, at a third and at two thirds of the calls, the way
fsdnet-export publishes (written beside the base path's versions, then renamed into place).
Reported per API: requests, errors (the target is 0), latency p50 / p99, throughput, and
per pushed version the seconds until the server reported it AVAILABLE. The client threads
share this process's GIL, so on a small machine the figures include the load generator.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import datetime
import json
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

from serving.client import connect
from pipelines.model_validation import push
from serving.latency import free_port, percentiles, running_server


def drive(target: str, rows: list[dict], clients: int, requests: int, batch: int, base: pathlib.Path) -> dict:
    per_client = requests // clients
    latencies, errors, done = [[] for _ in range(clients)], [], [0]
    lock = threading.Lock()
    push_after = (requests // 3, 2 * requests // 3)
    served_after = {}

    def client_loop(index: int) -> None:
        with connect(target, "fsdnet", timeout=30, batch_size=batch) as client:
            for i in range(per_client):
                start = (index * per_client + i) * batch % (len(rows) - batch)
                began = time.perf_counter()
                try:
                    client.predict(rows[start:start + batch])
                    latencies[index].append(time.perf_counter() - began)
                except Exception as err:        # every failure is counted and reported, none stops the run
                    with lock:
                        errors.append(f"{type(err).__name__}: {err}"[:200])
                with lock:
                    done[0] += 1

    def pusher() -> None:
        with connect(target, "fsdnet", timeout=30) as watcher:
            for after in push_after:
                while done[0] < after and done[0] < clients * per_client:
                    time.sleep(0.01)
                pushed = time.perf_counter()
                version = push(base, base)      # the newest version again, as the next one (atomically)
                while watcher.status()[0][0] != version:
                    time.sleep(0.05)
                served_after[version] = (after, round(time.perf_counter() - pushed, 2))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    swapper = threading.Thread(target=pusher)
    started = time.perf_counter()
    for thread in threads + [swapper]:
        thread.start()
    for thread in threads + [swapper]:
        thread.join()
    seconds = time.perf_counter() - started
    samples = [s for per in latencies for s in per]
    return {"requests": clients * per_client, "errors": len(errors), "first_errors": errors[:5],
            **percentiles(samples), "mean_ms": round(1000 * float(np.mean(samples)), 3),
            "requests_per_second": round(clients * per_client / seconds),
            "examples_per_second": round(clients * per_client * batch / seconds), "seconds": round(seconds, 1),
            "versions_pushed": {str(v): {"after_requests": after, "available_after_seconds": seconds}
                                for v, (after, seconds) in served_after.items()}}


def report_markdown(result: dict, command: str) -> str:
    lines = ["# fsdnet-serve under load with version swaps\n",
             f"Measured {result['measured']} by `{command}`: {result['clients']} concurrent clients, "
             f"{result['requests']:,} Predict calls of {result['batch']} raw row(s) per API, two new versions "
             f"pushed during each run (at a third and two thirds of the calls). The client threads run in one "
             f"Python process beside the server on the same cores, so the figures include the load generator.\n",
             "| API | requests | errors | p50 ms | p99 ms | requests/s | versions served (s after push) |",
             "|---|---|---|---|---|---|---|"]
    for api, r in result["apis"].items():
        swaps = ", ".join(f"v{v} {p['available_after_seconds']} s" for v, p in r["versions_pushed"].items())
        lines.append(f"| {api} | {r['requests']:,} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['requests_per_second']:,} | {swaps} |")
    total = sum(r["errors"] for r in result["apis"].values())
    lines.append(f"\nTarget: 0 errors — **{'met' if total == 0 else f'not met ({total} errors)'}**.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True, help="a finished fsdnet-train run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=40000, help="Predict calls per API")
    parser.add_argument("--batch", type=int, default=1, help="rows per call")
    parser.add_argument("--output", help="write OUTPUT.json and OUTPUT.md")
    args = parser.parse_args()
    from fsdnet_tf.export import export_run
    from fsdnet_tf.export.saved_model import load_raw_sample
    from fsdnet_tf.training.trainer import run_transform
    work = pathlib.Path(tempfile.mkdtemp(prefix="serving-load-"))
    base = work / "fsdnet"
    export_run(args.run_dir, str(base), "fsdnet")
    rows = load_raw_sample(run_transform(args.run_dir))
    rest_port = free_port()
    result = {"measured": f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores", "clients": args.clients,
              "requests": args.requests, "batch": args.batch, "apis": {}}
    try:
        with running_server(base, "fsdnet", rest_port=rest_port, poll_seconds=0.5) as port:
            targets = {"gRPC": f"127.0.0.1:{port}", "REST": f"http://127.0.0.1:{rest_port}"}
            for api, target in targets.items():
                print(f"{api}: {args.requests:,} calls from {args.clients} clients, 2 version pushes", flush=True)
                result["apis"][api] = drive(target, rows, args.clients, args.requests, args.batch, base)
                r = result["apis"][api]
                print(f"  {r['errors']} errors, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                      f"{r['requests_per_second']:,} requests/s, versions {r['versions_pushed']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.output:
        command = "python benchmarks/serving_load.py " + " ".join(sys.argv[1:])
        pathlib.Path(args.output + ".json").write_text(json.dumps(result, indent=2) + "\n")
        pathlib.Path(args.output + ".md").write_text(report_markdown(result, command))
    return 1 if any(r["errors"] for r in result["apis"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency and throughput measurement shared by fsdnet-menu and benchmarks/serving_latency.py.

Each figure follows ``warmup`` untimed calls; calls of several paths alternate in
``rounds`` blocks so that all see the same machine (a shared machine's speed drifts over
seconds). Sustained throughput: client threads send back to back for ``seconds``.
"""
from __future__ import annotations

import contextlib
import pathlib
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator

import numpy as np


def percentiles(samples) -> dict:
    ms = np.array(samples) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}


def time_interleaved(calls: dict, repeats: int, rounds: int = 10, warmup: int = 50) -> dict:
    """Per call name, ``repeats`` latencies in seconds, taken in ``rounds`` alternating blocks."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(max(1, repeats // rounds)):
                started = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - started)
    return samples


def sustained_examples_per_second(call: Callable[[], object], threads: int, batch: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(index):
        while time.perf_counter() < stop:
            call()
            done[index] += 1
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) * batch / (time.perf_counter() - started)


def sustained(calls: dict, batch: int, concurrency: tuple[int, ...] = (1, 2, 4), seconds: float = 2.0,
              rounds: int = 3) -> dict:
    """Per call name and concurrency, the median examples/s over ``rounds`` alternating rounds."""
    rates = {name: {c: [] for c in concurrency} for name in calls}
    for _ in range(rounds):
        for threads in concurrency:
            for name, call in calls.items():
                rates[name][threads].append(sustained_examples_per_second(call, threads, batch, seconds))
    return {name: {f"threads_{c}": round(float(np.median(r))) for c, r in by_level.items()}
            for name, by_level in rates.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(model_base_path: str | pathlib.Path, model_name: str, rest_port: int = 0,
                   poll_seconds: float = 1.0, intra_op_threads: int = 0, inter_op_threads: int = 0) -> Iterator[int]:
    """fsdnet-serve in its own process (as in production); yields its gRPC port once it is ready.
    ``rest_port`` 0 leaves REST off; the thread counts are fsdnet-serve's flags of the same names."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "serving.serve_cli", "--model-base-path", str(model_base_path),
                               "--model-name", model_name, "--port", str(port),
                               "--rest-api-port", str(rest_port), "--poll-seconds", str(poll_seconds),
                               "--intra-op-threads", str(intra_op_threads), "--inter-op-threads", str(inter_op_threads)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if line.startswith("READY"):
                break
        else:
            raise RuntimeError(f"fsdnet-serve for {model_name} exited with {server.wait()} before it was ready")
        yield port
    finally:
        server.terminate()
        server.wait(30)


def newest_version(base: pathlib.Path) -> pathlib.Path:
    return max((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))

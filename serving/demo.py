"""fsdnet-demo: the main job end to end on the built-in synthetic dataset.

transform → train FSDNet → export → start the local server (TF Serving's gRPC and REST
APIs) → score raw rows over gRPC, and again over REST (the same scores) → stop. Each step
runs the real command-line tool, as a user would.
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Optional

from serving.latency import free_port


def step(title: str, command: list[str]) -> None:
    print(f"\n=== {title}\n$ {' '.join(command)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"({time.perf_counter() - started:.1f} s)", flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="work/demo", help="where everything is written (replaced)")
    parser.add_argument("--config", default="synthetic")
    args = parser.parse_args(argv)
    work = pathlib.Path(args.work_dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bin_dir = pathlib.Path(sys.executable).parent
    tool = lambda name: str(bin_dir / name)  # noqa: E731
    transform, run, models = work / "transform", work / "runs" / "fsdnet", work / "models" / "fsdnet"
    step("1/5 tf.Transform pipeline", [tool("fsdnet-transform"), "--config", args.config, "--output", str(transform)])
    step("2/5 train FSDNet", [tool("fsdnet-train"), "--config", args.config, "--transform-dir", str(transform),
                              "--run-dir", str(run), "--no-progress"])
    step("3/5 export", [tool("fsdnet-export"), "--run-dir", str(run), "--model-base-path", str(models),
                        "--model-name", "fsdnet"])
    port, rest_port = free_port(), free_port()
    print(f"\n=== 4/5 local TF Serving-compatible server on 127.0.0.1:{port} (gRPC) and :{rest_port} (REST)",
          flush=True)
    server = subprocess.Popen([tool("fsdnet-serve"), "--model-base-path", str(models), "--model-name", "fsdnet",
                               "--port", str(port), "--rest-api-port", str(rest_port)], stdout=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 120
        for line in server.stdout:
            if line.startswith("READY") or time.monotonic() > deadline:
                break
        if server.poll() is not None:
            raise SystemExit("fsdnet-demo: the server did not start")
        rows = transform / "raw_sample_test.jsonl"
        step("5/5 score raw test rows over gRPC", [
            tool("fsdnet-score"), "--target", f"127.0.0.1:{port}", "--model-name", "fsdnet",
            "--input", str(rows), "--output", str(work / "scores.csv")])
        step("    and over REST", [
            tool("fsdnet-score"), "--target", f"http://127.0.0.1:{rest_port}", "--model-name", "fsdnet",
            "--input", str(rows), "--output", str(work / "scores_rest.csv")])
        if (work / "scores.csv").read_text() != (work / "scores_rest.csv").read_text():
            raise SystemExit("fsdnet-demo: REST and gRPC scores differ")
    finally:
        server.terminate()
        server.wait(30)
    print(f"\nDone. Transform {transform}, run {run} (metrics.json, training_curves.png), "
          f"model {models}, scores {work / 'scores.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

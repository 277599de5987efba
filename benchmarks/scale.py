"""Transform and training at scale on Criteo-shaped synthetic logs: rows/s, peak memory, output size.

    .venv/bin/python benchmarks/scale.py --work-dir /work/study/scale --rows 1000000 [10000000 ...] [--train]

Per size: ``fsdnet-criteo-synth`` writes the gzipped log (timed separately), then
``fsdnet-transform --config criteo`` runs on it in its own process, whose peak resident memory
(the process and its children, from ``getrusage``) is recorded with the wall time and the output's
size on disk. The report (``results/scale.md`` / ``.json``) gives the growth between sizes and a
linear projection to 45 M rows from the largest two. With ``--train``, one epoch of
``fsdnet-train --config criteo`` (FSDNet, streamed from the TFRecords: ``train.in_memory`` false)
on each size's output, with its peak memory, and the input pipeline alone over the same epoch
(``TrainInput.dataset`` iterated without training), whose time over the epoch's is its share.
Resumable: sizes already in the JSON are not measured again (``--again`` measures them anew).
Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from study_common import write_atomic  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CRITEO_ROWS = 45_840_617
TARGET_ROWS_PER_SECOND, TARGET_PEAK_GIB = 30_000, 4.0
SOURCE = "dataset.splits.source=train.txt.gz"   # the generated log, for transform and training alike


def revision() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def directory_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_child(command: list[str]) -> tuple[float, float]:
    """Run ``command`` from the repository; its wall seconds and its own peak RSS in GiB."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return time.perf_counter() - started, usage.ru_maxrss / 2 ** 20


INPUT_ONLY = """
import sys, time
from fsdnet_tf import _env
from fsdnet_tf.config import load_config
from fsdnet_tf.data.input import TrainInput
from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.features import LABEL_KEY
cfg = load_config("criteo", [sys.argv[2]])
train_input = TrainInput(TransformDir(sys.argv[1]), cfg.train.batch_size, cfg.seed, False, cfg.train.shuffle_buffer)
started, examples = time.perf_counter(), 0
for batch in train_input.dataset(1):
    examples += int(batch[LABEL_KEY].shape[0])
print(examples, time.perf_counter() - started)
"""


def measure_training(transform: pathlib.Path, run_dir: pathlib.Path) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    seconds, peak = run_child([sys.executable, "-m", "fsdnet_tf.training.cli", "--config", "criteo", "--transform-dir",
                               str(transform), "--run-dir", str(run_dir), "--set", SOURCE, "--set", "train.max_epochs=1",
                               "--no-progress"])
    epoch = json.loads((run_dir / "metrics.json").read_text())["epochs"][0]
    probe = subprocess.run([sys.executable, "-c", INPUT_ONLY, str(transform), SOURCE], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    input_examples, input_seconds = int(probe[0]), float(probe[1])
    return {"train_wall_seconds": round(seconds, 1), "train_seconds": epoch["train_seconds"],
            "train_examples_per_second": epoch["train_examples_per_second"], "train_peak_rss_gib": round(peak, 2),
            "input_only_examples_per_second": round(input_examples / input_seconds),
            "input_share": round(input_seconds / epoch["train_seconds"], 3)}


def measure(work_dir: pathlib.Path, rows: int) -> dict:
    data_dir = work_dir / f"rows_{rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "train.txt.gz"
    started = time.perf_counter()
    if not log.is_file():
        subprocess.run([sys.executable, "-m", "pipelines.criteo_synth_cli", "--rows", str(rows), "--output", str(log),
                        "--no-progress"], cwd=REPO, check=True)
    generate_seconds = time.perf_counter() - started
    output = data_dir / "transform"
    shutil.rmtree(output, ignore_errors=True)
    seconds, peak = run_child([sys.executable, "-m", "pipelines.transform_cli", "--config", "criteo", "--set",
                               SOURCE, "--data-dir", str(data_dir), "--output",
                               str(output)])
    stats = json.loads((output / "stats.json").read_text())
    return {"rows": rows, "generate_seconds": round(generate_seconds, 1), "input_bytes": log.stat().st_size,
            "transform_seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
            "peak_rss_gib": round(peak, 2), "code": revision(),
            "output_bytes": directory_bytes(output), "vocabulary_tokens": sum(stats["vocab_size"].values()),
            "rejected": sum(s["rejected"] for s in stats["splits"].values())}


def report(results: list[dict]) -> str:
    lines = ["# Scale: the transform and training on Criteo-shaped synthetic logs", "",
             f"Generated {datetime.date.today().isoformat()} by `.venv/bin/python benchmarks/scale.py` on one machine "
             "with 2 CPU cores. `fsdnet-criteo-synth` logs (one gzipped file), `fsdnet-transform --config criteo` "
             "(local FnApiRunner); seconds include start-up; peak RSS is the process's own.", "",
             "| rows | transform s | rows/s | peak RSS GiB | input MB (gz) | output MB | vocabulary tokens | code | machine |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['transform_seconds']:,} | {r['rows_per_second']:,} | "
                     f"{r['peak_rss_gib'] if r['peak_rss_gib'] is not None else '—'} | {r['input_bytes'] / 1e6:,.1f} | "
                     f"{r['output_bytes'] / 1e6:,.1f} | {r['vocabulary_tokens']:,} | {r.get('code', '—')} | "
                     f"{r.get('conditions', 'idle')} |")
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        per_row = (b["transform_seconds"] - a["transform_seconds"]) / (b["rows"] - a["rows"])
        projected = b["transform_seconds"] + per_row * (CRITEO_ROWS - b["rows"])
        lines += ["", f"From {a['rows']:,} to {b['rows']:,} rows the time grows {b['transform_seconds'] / a['transform_seconds']:.2f}× "
                  f"for {b['rows'] / a['rows']:.0f}× the rows and peak memory {b['peak_rss_gib'] / a['peak_rss_gib']:.2f}×; "
                  f"linear from these two, Criteo's {CRITEO_ROWS:,} rows would take {projected / 3600:.2f} h "
                  f"({CRITEO_ROWS / projected:,.0f} rows/s)."]
    trained = [r for r in results if "training" in r]
    if trained:
        lines += ["", "## Training, one epoch streamed from the TFRecords (FSDNet, `--config criteo`, batch 4096)", "",
                  "| rows | train examples | epoch train s | examples/s | peak RSS GiB | input alone, examples/s | "
                  "input share of the epoch |", "|---|---|---|---|---|---|---|"]
        for r in trained:
            t = r["training"]
            lines.append(f"| {r['rows']:,} | {r['train_rows']:,} | {t['train_seconds']:,} | "
                         f"{t['train_examples_per_second']:,.0f} | {t['train_peak_rss_gib']} | "
                         f"{t['input_only_examples_per_second']:,} | {t['input_share']:.0%} |")
    largest = results[-1]
    met = largest["rows"] >= 10_000_000 and largest["rows_per_second"] >= TARGET_ROWS_PER_SECOND and (
        largest["peak_rss_gib"] or 0) < TARGET_PEAK_GIB
    lines += ["", f"Target: ≥ {TARGET_ROWS_PER_SECOND:,} rows/s at 10 M rows with memory under {TARGET_PEAK_GIB:g} GiB: "
              + ("**met**." if met else f"**not met** (largest measured: {largest['rows']:,} rows at "
                 f"{largest['rows_per_second']:,} rows/s, peak {largest['peak_rss_gib']} GiB).")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=pathlib.Path, required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--train", action="store_true", help="also train one epoch on each size's output")
    parser.add_argument("--again", action="store_true", help="measure sizes already in the JSON anew")
    parser.add_argument("--conditions", default="idle", help="what else ran on the machine, for the report")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    path = RESULTS / "scale.json"
    results = {r["rows"]: r for r in (json.loads(path.read_text())["transform"] if path.is_file() else [])}

    def publish():
        ordered = [results[k] for k in sorted(results)]
        write_atomic(path, json.dumps({"transform": ordered}, indent=1) + "\n")
        write_atomic(RESULTS / "scale.md", report(ordered))

    if args.report_only:
        publish()
        return 0
    for rows in args.rows:
        if rows not in results or args.again:
            results[rows] = {**measure(args.work_dir, rows), "conditions": args.conditions}
            publish()
            print(f"{rows:,} rows: transform {results[rows]['rows_per_second']:,} rows/s", flush=True)
        if args.train and "training" not in results[rows]:
            transform = args.work_dir / f"rows_{rows}" / "transform"
            results[rows]["train_rows"] = json.loads((transform / "stats.json").read_text())["splits"]["train"]["written"]
            results[rows]["training"] = measure_training(transform, args.work_dir / f"rows_{rows}" / "run")
            publish()
            print(f"{rows:,} rows: training {results[rows]['training']['train_examples_per_second']:,.0f} examples/s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

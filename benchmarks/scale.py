"""Transform and training at scale on Criteo-shaped synthetic logs: rows/s, peak memory, output size.

    .venv/bin/python benchmarks/scale.py --work-dir /work/study/scale --rows 1000000 [10000000 ...] [--train]

Per size: ``fsdnet-criteo-synth`` writes the gzipped log (timed separately), then
``fsdnet-transform --config criteo`` runs on it in its own process, once per local runner mode
(``--modes``: in one process, and with one worker process per core), one after the other; the
wall time, the peak resident memory of the tool and its worker processes together (sampled
from /proc, RSS summed, so shared pages count once per process) and the output's size on disk
are recorded. The report (``results/scale.md`` / ``.json``) gives the ratio of the modes, and for
the mode the tool picks by default the growth between sizes and a linear projection to 45 M
rows from the largest two. With ``--train``, one epoch of
``fsdnet-train --config criteo`` (FSDNet, streamed from the TFRecords: ``train.in_memory`` false)
on each size's output, with its peak memory, and the input pipeline alone over the same epoch
(``TrainInput.dataset`` iterated without training), whose time over the epoch's is its share.
Resumable: sizes already in the JSON are not measured again (``--again`` measures them anew).
Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from study_common import write_atomic  # noqa: E402
from pipelines.local_runner import usable_cores, with_runner_defaults  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CRITEO_ROWS = 45_840_617
TARGET_ROWS_PER_SECOND, TARGET_PEAK_GIB = 30_000, 4.0
SOURCE = "dataset.splits.source=train.txt.gz"   # the generated log, for transform and training alike
MODES = {"in-process": ["--direct_running_mode=in_memory"],
         "processes": ["--direct_running_mode=multi_processing", f"--direct_num_workers={usable_cores()}"]}
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def revision() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def directory_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tree_rss_bytes(root: int) -> int:
    """The resident memory of process ``root`` and all its descendants, summed."""
    children = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = pathlib.Path(entry.path, "stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending += children[pid]
        try:
            total += int(pathlib.Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except OSError:
            pass
    return total


def run_child(command: list[str]) -> tuple[float, float]:
    """Run ``command`` from the repository; its wall seconds and the peak resident memory in GiB of
    the process and its descendants together (sampled every 0.2 s; at least the process's own
    exact peak)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO)
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_bytes(child.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return time.perf_counter() - started, max(peak[0] / 2 ** 30, usage.ru_maxrss / 2 ** 20)


def default_mode(input_bytes: int) -> str:
    """The runner mode ``fsdnet-transform`` picks for an input of this size on this machine."""
    return "processes" if "--direct_running_mode=multi_processing" in with_runner_defaults([], input_bytes) \
        else "in-process"


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


def measure(work_dir: pathlib.Path, rows: int, mode: str) -> dict:
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
                               SOURCE, "--data-dir", str(data_dir), "--output", str(output)] + MODES[mode])
    stats = json.loads((output / "stats.json").read_text())
    return {"rows": rows, "mode": mode, "default_mode": default_mode(log.stat().st_size),
            "generate_seconds": round(generate_seconds, 1), "input_bytes": log.stat().st_size,
            "transform_seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
            "peak_rss_gib": round(peak, 2), "code": revision(),
            "output_bytes": directory_bytes(output), "vocabulary_tokens": sum(stats["vocab_size"].values()),
            "rejected": sum(s["rejected"] for s in stats["splits"].values())}


def report(results: list[dict]) -> str:
    lines = ["# Scale: the transform and training on Criteo-shaped synthetic logs", "",
             f"Generated {datetime.date.today().isoformat()} by `.venv/bin/python benchmarks/scale.py` on one machine "
             "with 2 CPU cores. `fsdnet-criteo-synth` logs (one gzipped file), `fsdnet-transform --config criteo` "
             "on Beam's local FnApiRunner in one process or with one worker process per core (the tool's default "
             "from 96 MiB of input); seconds include start-up; peak RSS is that of the tool and its worker "
             "processes together, summed (the pages of shared libraries count once per process, so it is "
             "an upper bound).", "",
             "| rows | runner | default | transform s | rows/s | peak RSS GiB | input MB (gz) | output MB | "
             "vocabulary tokens | code | machine |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['mode']} | {'yes' if r['mode'] == r['default_mode'] else ''} | "
                     f"{r['transform_seconds']:,} | {r['rows_per_second']:,} | {r['peak_rss_gib']} | "
                     f"{r['input_bytes'] / 1e6:,.1f} | {r['output_bytes'] / 1e6:,.1f} | {r['vocabulary_tokens']:,} | "
                     f"{r.get('code', '—')} | {r.get('conditions', 'idle')} |")
    by_key = {(r["rows"], r["mode"]): r for r in results}
    for rows in sorted({r["rows"] for r in results}):
        if (rows, "in-process") in by_key and (rows, "processes") in by_key:
            one, many = by_key[rows, "in-process"], by_key[rows, "processes"]
            lines += ["", f"{rows:,} rows: the worker processes run {one['transform_seconds'] / many['transform_seconds']:.2f}× "
                      f"as fast as one process ({one['code']} / {many['code']})."]
    for mode in MODES:
        sizes = [r for r in results if r["mode"] == mode]
        if len(sizes) >= 2:
            a, b = sizes[-2], sizes[-1]
            per_row = (b["transform_seconds"] - a["transform_seconds"]) / (b["rows"] - a["rows"])
            projected = b["transform_seconds"] + per_row * (CRITEO_ROWS - b["rows"])
            lines += ["", f"{mode}: from {a['rows']:,} to {b['rows']:,} rows the time grows "
                      f"{b['transform_seconds'] / a['transform_seconds']:.2f}× for {b['rows'] / a['rows']:.0f}× the rows "
                      f"and peak memory {b['peak_rss_gib'] / a['peak_rss_gib']:.2f}×; linear from these two, Criteo's "
                      f"{CRITEO_ROWS:,} rows would take {projected / 3600:.2f} h ({CRITEO_ROWS / projected:,.0f} rows/s)."]
    defaults = [r for r in results if r["mode"] == r["default_mode"]]
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
    largest = (defaults or results)[-1]
    met = largest["rows"] >= 10_000_000 and largest["rows_per_second"] >= TARGET_ROWS_PER_SECOND and (
        largest["peak_rss_gib"] or 0) < TARGET_PEAK_GIB
    lines += ["", f"Target: ≥ {TARGET_ROWS_PER_SECOND:,} rows/s at 10 M rows with memory under {TARGET_PEAK_GIB:g} GiB: "
              + ("**met**" if met else "**not met**") + f" (default runner, largest measured: {largest['rows']:,} rows at "
              f"{largest['rows_per_second']:,} rows/s, peak {largest['peak_rss_gib']} GiB)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=pathlib.Path, required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--train", action="store_true", help="also train one epoch on each size's output")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="local runner modes to measure, one after the other")
    parser.add_argument("--again", action="store_true", help="measure sizes already in the JSON anew")
    parser.add_argument("--conditions", default="idle", help="what else ran on the machine, for the report")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    path = RESULTS / "scale.json"
    # Entries from before the runner modes were measured all ran in one process, then the default.
    stored = [r if "mode" in r else {**r, "mode": "in-process", "default_mode": "in-process"}
              for r in (json.loads(path.read_text())["transform"] if path.is_file() else [])]
    results = {(r["rows"], r["mode"]): r for r in stored}

    def publish():
        ordered = [results[k] for k in sorted(results)]
        write_atomic(path, json.dumps({"transform": ordered}, indent=1) + "\n")
        write_atomic(RESULTS / "scale.md", report(ordered))

    if args.report_only:
        publish()
        return 0
    for rows in args.rows:
        for mode in args.modes:
            if (rows, mode) not in results or args.again:
                results[rows, mode] = {**measure(args.work_dir, rows, mode), "conditions": args.conditions}
                publish()
                print(f"{rows:,} rows, {mode}: transform {results[rows, mode]['rows_per_second']:,} rows/s", flush=True)
        trained = next((r for (n, _), r in results.items() if n == rows and "training" in r), None)
        if args.train and trained is None:
            # Trains on the last transform's output; the runner modes write the same records.
            entry = results[rows, args.modes[-1]]
            transform = args.work_dir / f"rows_{rows}" / "transform"
            entry["train_rows"] = json.loads((transform / "stats.json").read_text())["splits"]["train"]["written"]
            entry["training"] = measure_training(transform, args.work_dir / f"rows_{rows}" / "run")
            publish()
            print(f"{rows:,} rows: training {entry['training']['train_examples_per_second']:,.0f} examples/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

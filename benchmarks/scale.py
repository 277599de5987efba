"""Transform at scale on Criteo-shaped synthetic logs: rows/s, peak memory and output size per size.

    .venv/bin/python benchmarks/scale.py --work-dir /work/study/scale --rows 1000000 [10000000 ...]

Per size: ``fsdnet-criteo-synth`` writes the gzipped log (timed separately), then
``fsdnet-transform --config criteo`` runs on it in its own process, whose peak resident memory
(the process and its children, from ``getrusage``) is recorded with the wall time and the output's
size on disk. The report (``results/scale.md`` / ``.json``) gives the growth between sizes and a
linear projection to 45 M rows from the largest two. Resumable: sizes already in the JSON are
not measured again. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import resource
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


def directory_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.transform_cli", "--config", "criteo", "--set",
                    "dataset.splits.source=train.txt.gz", "--data-dir", str(data_dir), "--output", str(output)],
                   cwd=REPO, check=True)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stats = json.loads((output / "stats.json").read_text())
    return {"rows": rows, "generate_seconds": round(generate_seconds, 1), "input_bytes": log.stat().st_size,
            "transform_seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
            # ru_maxrss of children is the largest child so far: valid for this size only when it grew.
            "peak_rss_gib": round(peak_kib / 2 ** 20, 2) if peak_kib > before else None,
            "output_bytes": directory_bytes(output), "vocabulary_tokens": sum(stats["vocab_size"].values()),
            "rejected": sum(s["rejected"] for s in stats["splits"].values())}


def report(results: list[dict]) -> str:
    lines = ["# Scale: the transform on Criteo-shaped synthetic logs", "",
             f"Generated {datetime.date.today().isoformat()} by `.venv/bin/python benchmarks/scale.py` on one machine "
             "with 2 CPU cores (otherwise idle unless stated). `fsdnet-criteo-synth` logs, `fsdnet-transform --config "
             "criteo` (local FnApiRunner); seconds include start-up.", "",
             "| rows | transform s | rows/s | peak RSS GiB | input MB (gz) | output MB | vocabulary tokens | machine |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['transform_seconds']:,} | {r['rows_per_second']:,} | "
                     f"{r['peak_rss_gib'] if r['peak_rss_gib'] is not None else '—'} | {r['input_bytes'] / 1e6:,.1f} | "
                     f"{r['output_bytes'] / 1e6:,.1f} | {r['vocabulary_tokens']:,} | {r.get('conditions', 'idle')} |")
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        per_row = (b["transform_seconds"] - a["transform_seconds"]) / (b["rows"] - a["rows"])
        projected = b["transform_seconds"] + per_row * (CRITEO_ROWS - b["rows"])
        lines += ["", f"From {a['rows']:,} to {b['rows']:,} rows the time grows {b['transform_seconds'] / a['transform_seconds']:.2f}× "
                  f"for {b['rows'] / a['rows']:.0f}× the rows; linear from these two, Criteo's {CRITEO_ROWS:,} rows would "
                  f"take {projected / 3600:.1f} h ({CRITEO_ROWS / projected:,.0f} rows/s)."]
    largest = results[-1]
    met = largest["rows"] >= 10_000_000 and largest["rows_per_second"] >= TARGET_ROWS_PER_SECOND and (
        largest["peak_rss_gib"] or 0) < TARGET_PEAK_GIB
    lines += ["", f"Target: ≥ {TARGET_ROWS_PER_SECOND:,} rows/s at 10 M rows with memory under {TARGET_PEAK_GIB:g} GiB: "
              + ("**met**." if met else f"**not met** (largest measured: {largest['rows']:,} rows at "
                 f"{largest['rows_per_second']:,} rows/s).")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=pathlib.Path, required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--conditions", default="idle", help="what else ran on the machine, for the report")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    path = RESULTS / "scale.json"
    results = {r["rows"]: r for r in (json.loads(path.read_text())["transform"] if path.is_file() else [])}
    if args.report_only:
        write_atomic(RESULTS / "scale.md", report([results[k] for k in sorted(results)]))
        return 0
    for rows in args.rows:
        if rows not in results:
            results[rows] = {**measure(args.work_dir, rows), "conditions": args.conditions}
            ordered = [results[k] for k in sorted(results)]
            write_atomic(path, json.dumps({"transform": ordered}, indent=1) + "\n")
            write_atomic(RESULTS / "scale.md", report(ordered))
            print(f"{rows:,} rows: {results[rows]['rows_per_second']:,} rows/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

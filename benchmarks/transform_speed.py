"""Transform throughput on Frappe: the Beam/tf.Transform pipeline vs a plain pandas floor.

    .venv/bin/python benchmarks/transform_speed.py [--data-dir ../shared/data/frappe] [--output DIR]

Both compute the same thing: vocabularies on train with min_frequency 2 and one OOV
bucket, then every split encoded to ids. The pipeline also writes TFRecords, the
transform graph, dead letters and stats; the floor only computes in memory.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
import time

import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pandas_floor(data_dir: pathlib.Path) -> tuple[float, int]:
    started = time.perf_counter()
    frames = {s: pd.read_csv(data_dir / f"{s}.csv", dtype=str, keep_default_na=False) for s in ("train", "valid", "test")}
    fields = [c for c in frames["train"].columns if c != "label"]
    encoded = {}
    for field in fields:
        counts = frames["train"][field][frames["train"][field] != ""].value_counts()
        vocab = counts[counts >= 2]
        index = pd.Series(range(len(vocab)), index=vocab.index)
        for split, frame in frames.items():
            encoded[(split, field)] = frame[field].map(index).fillna(len(vocab)).astype("int64").to_numpy()
    rows = sum(len(f) for f in frames.values())
    return time.perf_counter() - started, rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "frappe"))
    parser.add_argument("--output", default=None, help="keep the transform output here")
    parser.add_argument("--runner-args", nargs="*", default=[])
    args = parser.parse_args()
    data_dir = pathlib.Path(args.data_dir)
    if not (data_dir / "train.csv").is_file():
        print(f"skipped: {data_dir} has no Frappe CSV files")
        return 0
    from fsdnet_tf.config import load_config
    from pipelines.transform import run_transform
    out = pathlib.Path(args.output) if args.output else pathlib.Path(tempfile.mkdtemp()) / "frappe"
    shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter()
    stats = run_transform(load_config("frappe").dataset, str(data_dir), str(out), args.runner_args)
    wall = time.perf_counter() - wall
    floor_seconds, rows = pandas_floor(data_dir)
    pipeline_rate = rows / stats["seconds"]
    floor_rate = rows / floor_seconds
    print(json.dumps({"rows": rows, "pipeline_seconds": stats["seconds"], "pipeline_rows_per_second": round(pipeline_rate),
                      "pandas_seconds": round(floor_seconds, 2), "pandas_rows_per_second": round(floor_rate),
                      "pipeline_over_pandas": round(pipeline_rate / floor_rate, 4),
                      "runner": args.runner_args or "default (FnApiRunner, in-process)",
                      "output": str(out)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

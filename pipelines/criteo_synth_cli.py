"""fsdnet-criteo-synth: write a Criteo-shaped synthetic click log (raw Criteo TSV, gzipped if the
name ends in .gz), deterministic from --seed, for scale tests of the transform and training.

The file appears only when complete (written beside it under a hidden name, then renamed).
Read it with the shipped ``criteo`` config: ``fsdnet-transform --config criteo --set
dataset.splits.source=NAME --data-dir DIR``.
"""
from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import sys
import time
from typing import Optional

from fsdnet_tf.data.criteo_synthetic import chunk_lines, chunks

PROGRESS_EVERY = 50       # chunks between progress lines


def write_log(path: pathlib.Path, rows: int, seed: int, progress: bool = False) -> dict:
    """Write ``rows`` lines to ``path`` atomically; returns rows, bytes and rows/s."""
    tmp = path.with_name(f".{path.name}.partial")
    started = time.perf_counter()
    opener = (lambda p: gzip.open(p, "wb", compresslevel=1)) if path.suffix == ".gz" else (lambda p: open(p, "wb"))
    try:
        with opener(tmp) as out:
            for chunk, count in chunks(seed, rows):
                out.write(chunk_lines(seed, chunk, count))
                if progress and (chunk + 1) % PROGRESS_EVERY == 0:
                    done = min(rows, (chunk + 1) * count)
                    print(f"  {done:,} rows, {done / (time.perf_counter() - started):,.0f} rows/s",
                          file=sys.stderr, flush=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    return {"rows": rows, "bytes": path.stat().st_size, "seconds": seconds, "rows_per_second": rows / seconds}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-criteo-synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="number of lines")
    parser.add_argument("--output", type=pathlib.Path, required=True, help="file to write (.gz: gzip)")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be >= 1")
    if not args.output.parent.is_dir():
        parser.error(f"--output: directory {args.output.parent} does not exist")
    result = write_log(args.output, args.rows, args.seed, progress=not args.no_progress)
    print(f"{result['rows']:,} Criteo-shaped rows → {args.output} ({result['bytes'] / 1e6:,.1f} MB) in "
          f"{result['seconds']:.1f} s, {result['rows_per_second']:,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

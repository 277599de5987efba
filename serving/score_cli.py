"""fsdnet-score: score rows of raw features against TF Serving or fsdnet-serve, over gRPC or REST.

Reads rows from CSV / TSV (header = raw feature names) or JSON lines and writes the input
rows with a ``probability`` column appended. The input is read and checked before
TensorFlow is imported; the clients are :mod:`serving.client` and :mod:`serving.rest_client`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys
import time
from typing import Optional

from fsdnet_tf import features as names
from fsdnet_tf import preflight


def read_rows(path: pathlib.Path) -> tuple[list[dict], list[str]]:
    text = path.read_text()
    if path.suffix in (".json", ".jsonl"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        columns = list(dict.fromkeys(k for r in rows for k in r))
    else:
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ",")
        rows, columns = list(reader), list(reader.fieldnames or [])
    return rows, columns


def write_scores(path: pathlib.Path, rows: list[dict], columns: list[str], scores) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns + [names.PROBABILITY_OUTPUT], extrasaction="ignore")
        writer.writeheader()
        for row, score in zip(rows, scores):
            writer.writerow({**row, names.PROBABILITY_OUTPUT: f"{score:.8f}"})
    os.replace(tmp, path)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-score", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True,
                        help="TF Serving or fsdnet-serve: HOST:PORT (gRPC) or http://HOST:PORT (REST)")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--input", required=True, help="rows: .csv/.tsv with a header, or .jsonl")
    parser.add_argument("--output", required=True, help="CSV: the input columns plus probability")
    parser.add_argument("--raw-tensors", action="store_true", help="use the raw-tensor signature")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=3, help="retries on UNAVAILABLE")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's and absl's own log lines")
    args = parser.parse_args(argv)
    try:
        path = preflight.require_file(args.input, "input file")
        rows, columns = read_rows(path)
    except preflight.UsageError as err:
        return preflight.fail("fsdnet-score", str(err))
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        return preflight.fail("fsdnet-score", f"{path} is not readable rows: {err}")
    if not rows:
        return preflight.fail("fsdnet-score", f"{path} has no rows")
    preflight.start(args.verbose)
    import grpc

    from serving.client import connect
    from serving.rest_client import RestError
    started = time.perf_counter()
    with connect(args.target, args.model_name, args.deadline, args.retries, args.batch_size) as client:
        try:
            scores = client.predict(rows, raw_tensors=args.raw_tensors)
        except KeyError as err:
            return preflight.fail("fsdnet-score", f"{path}: {err.args[0]}")
        except grpc.RpcError as err:
            return preflight.fail("fsdnet-score", f"{err.code().name}: {err.details()}", 1)
        except RestError as err:
            return preflight.fail("fsdnet-score", str(err), 1)
    write_scores(pathlib.Path(args.output), rows, columns, scores)
    seconds = time.perf_counter() - started
    print(f"scored {len(rows):,} rows via {args.target} in {seconds:.2f} s ({len(rows) / seconds:,.0f} rows/s); "
          f"mean probability {scores.mean():.4f} → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

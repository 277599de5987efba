"""Reading raw logs for the tf.Transform pipeline: input checks, byte ranges, parsing to Arrow.

Input elements of the pipeline are read tasks: byte ranges of the input files (workers
read them independently) or chunks of the synthetic generator. ``ParseLines`` turns
their lines into Arrow RecordBatches per split and bad rows into dead letters.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from fsdnet_tf.config import SPLITS, DatasetConfig
from fsdnet_tf.data import readers, synthetic
from fsdnet_tf.features import LABEL_KEY, FeatureContract
from pipelines.inputs import DataError

PARSE_BATCH_SIZE = 8192
RANGE_BYTES = 8 << 20
METRIC_NAMESPACE = "fsdnet_transform"
# Every parsed batch carries its split's index in SPLITS under this column, passed through
# tf.Transform untouched, so that one transform stage (one graph load) serves all splits.
# The hyphen keeps it apart from feature names, which are letters, digits and _.
SPLIT_COLUMN = "split-index"


def _expand(data_dir: str, relative: str) -> list[str]:
    pattern = FileSystems.join(data_dir, relative)   # an absolute `relative` stays as it is
    matches = FileSystems.match([pattern])[0].metadata_list
    if not matches:
        raise DataError(f"input file {pattern} does not exist")
    return sorted(m.path for m in matches)


def _first_line(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.readline()


def check_input_files(ds: DatasetConfig, paths: list[str]) -> None:
    """Fail fast, naming the file, on empty files and header/config mismatches."""
    for path in paths:
        first = _first_line(path)
        if not first.strip():
            raise DataError(f"input file {path} is empty")
        if ds.header:
            header = first.decode("utf-8", "replace").rstrip("\r\n").split(ds.field_delimiter)
            expected = [c.name for c in ds.columns]
            if [h.strip().strip('"') for h in header] != expected:
                raise DataError(f"{path}: header {header} does not match dataset.columns {expected}")


def split_of(line: bytes, seed: int, ratios: tuple[float, float, float]) -> int:
    """Seeded, stateless assignment of a raw line to train/valid/test."""
    digest = hashlib.blake2b(line, digest_size=8, key=str(seed).encode()).digest()
    u = int.from_bytes(digest, "little") / 2.0 ** 64
    return 0 if u < ratios[0] else (1 if u < ratios[0] + ratios[1] else 2)


def byte_ranges(path: str, range_bytes: int = RANGE_BYTES) -> list[tuple[str, int, int]]:
    """Split a file into byte ranges that workers read independently.

    Compressed files cannot be entered mid-stream, so they are one range.
    """
    size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
        return [(path, 0, -1)]
    return [(path, start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


def read_range(path: str, start: int, end: int, skip_header: bool) -> Iterator[bytes]:
    """Lines that *start* inside [start, end) (end -1: to the end of the file)."""
    with FileSystems.open(path) as handle:
        position = start
        if start > 0:
            # The line that straddles `start` belongs to the previous range.
            handle.seek(start - 1)
            position = start - 1 + len(handle.readline())
        elif skip_header:
            position += len(handle.readline())
        while end < 0 or position < end:
            line = handle.readline()
            if not line:
                break
            position += len(line)
            yield line.rstrip(b"\r\n")


class ParseLines(beam.DoFn):
    """Raw lines → Arrow RecordBatches per split; bad rows → dead letters per split.

    Input elements are read tasks: ``(path, start, end)`` byte ranges of a file, or
    ``("synthetic", chunk)``. With a ratio split each line is assigned to its split
    here; otherwise the whole input belongs to ``split``.
    """

    def __init__(self, ds: DatasetConfig, contract: FeatureContract, split: Optional[str],
                 movielens_tables: Optional[tuple[dict, dict]]):
        self.ds, self.contract, self.split = ds, contract, split
        self.movielens_tables = movielens_tables
        self.read = {s: Metrics.counter(METRIC_NAMESPACE, f"read.{s}") for s in SPLITS}
        self.rejected = {s: Metrics.counter(METRIC_NAMESPACE, f"rejected.{s}") for s in SPLITS}

    def setup(self):
        self.parse = readers.make_parser(self.ds, self.movielens_tables)
        self.schema = arrow_schema(self.contract)
        self.generating_model = (synthetic.generating_model(self.ds.synthetic)
                                 if self.ds.format == "synthetic" else None)

    def _lines(self, task) -> Iterator[bytes]:
        if task[0] == "synthetic":
            return iter(synthetic.chunk_lines(self.ds.synthetic, task[1], self.generating_model))
        path, start, end = task
        return read_range(path, start, end, self.ds.header)

    def process(self, task):
        sp = self.ds.splits
        buffers = {s: ([[] for _ in self.contract.fields], []) for s in SPLITS}
        read = dict.fromkeys(SPLITS, 0)
        rejected = dict.fromkeys(SPLITS, 0)
        for line in self._lines(task):
            split = self.split or SPLITS[split_of(line, sp.seed, sp.ratios)]
            read[split] += 1
            try:
                values, label = self.parse(line)
            except readers.BadRow as err:
                rejected[split] += 1
                yield beam.pvalue.TaggedOutput(f"dead_{split}", dead_letter_record(split, str(err), line))
                continue
            columns, labels = buffers[split]
            for column, value in zip(columns, values):
                column.append(value)
            labels.append(label)
            if len(labels) >= PARSE_BATCH_SIZE:
                yield beam.pvalue.TaggedOutput(f"rows_{split}", self._record_batch(split, *buffers[split]))
                buffers[split] = ([[] for _ in self.contract.fields], [])
        for split in SPLITS:
            if buffers[split][1]:
                yield beam.pvalue.TaggedOutput(f"rows_{split}", self._record_batch(split, *buffers[split]))
            self.read[split].inc(read[split])
            self.rejected[split].inc(rejected[split])

    def _record_batch(self, split: str, columns: list[list[str]], labels: list[int]) -> pa.RecordBatch:
        offsets = pa.array(np.arange(len(labels) + 1, dtype=np.int64))
        arrays = [pa.LargeListArray.from_arrays(offsets, pa.array(col, pa.large_binary())) for col in columns]
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(labels, pa.int64())))
        split_index = np.full(len(labels), SPLITS.index(split), dtype=np.int64)
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(split_index)))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def read_and_parse(pipeline, ds: DatasetConfig, data_dir: Optional[str], contract: FeatureContract,
                   movielens_tables) -> tuple[dict, dict]:
    """Parsed RecordBatch and dead-letter PCollections per split."""
    tags = [f"{kind}_{s}" for kind in ("rows", "dead") for s in SPLITS]
    sp = ds.splits
    if sp.files is not None:
        sources = {split: _expand(data_dir, sp.files[split]) for split in SPLITS}
    elif ds.format == "synthetic":
        sources = {None: [("synthetic", c) for c in range(synthetic.chunk_count(ds.synthetic))]}
    else:
        sources = {None: _expand(data_dir, ds.movielens.ratings if ds.format == "movielens" else sp.source)}
    rows, dead = {}, {}
    for split, paths in sources.items():
        name = split or "all"
        if ds.format == "synthetic":
            tasks = pipeline | f"Tasks{name}" >> beam.Create(paths)
        else:
            check_input_files(ds, paths)
            tasks = pipeline | f"Tasks{name}" >> beam.Create(
                [task for path in paths for task in byte_ranges(path)])
        outputs = (tasks | f"Reshuffle{name}" >> beam.Reshuffle()
                   | f"Parse{name}" >> beam.ParDo(ParseLines(ds, contract, split, movielens_tables))
                   .with_outputs(*tags))
        for s in SPLITS if split is None else [split]:
            rows[s], dead[s] = outputs[f"rows_{s}"], outputs[f"dead_{s}"]
    return rows, dead


def load_movielens_tables(ds: DatasetConfig, data_dir: str) -> tuple[dict, dict]:
    ml = ds.movielens
    tables = []
    for name, width in ((ml.users, 5), (ml.movies, 3)):
        path = _expand(data_dir, name)[0]
        with FileSystems.open(path) as handle:
            lines = handle.read().splitlines()
        if not lines:
            raise DataError(f"input file {path} is empty")
        try:
            tables.append(readers.read_movielens_table(lines, ml.encoding, width, path))
        except ValueError as err:
            raise DataError(str(err)) from None
    return tables[0], tables[1]



def arrow_schema(contract: FeatureContract) -> pa.Schema:
    return pa.schema([(f, pa.large_list(pa.large_binary())) for f in contract.fields]
                     + [(LABEL_KEY, pa.large_list(pa.int64())), (SPLIT_COLUMN, pa.large_list(pa.int64()))])


def dead_letter_record(split: str, reason: str, raw: bytes) -> str:
    record = {"split": split, "reason": reason, "line": raw.decode("utf-8", "backslashreplace")}
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return json.dumps(record, ensure_ascii=False)

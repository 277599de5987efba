"""Reading raw logs for the tf.Transform pipeline: input checks, byte ranges, parsing to Arrow.

Input elements of the pipeline are read tasks: byte ranges of the input files (workers
read them independently), stripes of a compressed file, or chunks of the synthetic
generator. ``ParseLines`` turns their lines into Arrow RecordBatches per split and bad
rows into dead letters.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Iterator, NamedTuple, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from fsdnet_tf.config import SPLITS, DatasetConfig
from fsdnet_tf.data import readers, synthetic
from fsdnet_tf.features import LABEL_KEY, FeatureContract
from pipelines import block_parse
from pipelines.inputs import DataError

PARSE_BATCH_SIZE = 8192
RANGE_BYTES = 8 << 20
BLOCK_BYTES = 4 << 20
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
    """Seeded, stateless assignment of a raw line to train/valid/test (its index in SPLITS)."""
    return split_indices([line], seed, ratios)[0]


def split_indices(lines: list[bytes], seed: int, ratios: tuple[float, float, float]) -> list[int]:
    """:func:`split_of` of each line, in one comprehension: it runs on every raw line twice, and a
    call per line cost a third of its time."""
    key, first, second = str(seed).encode(), ratios[0], ratios[0] + ratios[1]
    blake2b, from_bytes, scale = hashlib.blake2b, int.from_bytes, 2.0 ** 64
    return [0 if (u := from_bytes(blake2b(line, digest_size=8, key=key).digest(), "little") / scale) < first
            else (1 if u < second else 2) for line in lines]


class ReadTask(NamedTuple):
    """The lines of ``path`` that start inside [start, end) (end -1: to the end of the file), and of
    those only the blocks whose index is ``stripe`` modulo ``stripes``."""
    path: str
    start: int
    end: int
    stripe: int = 0
    stripes: int = 1


def byte_ranges(path: str, range_bytes: int = RANGE_BYTES, stripes: int = 1) -> list[ReadTask]:
    """Split a file into read tasks that workers run independently.

    An uncompressed file is cut into byte ranges. A compressed one cannot be entered
    mid-stream: each of its ``stripes`` tasks decompresses the whole file but splits and
    parses only every stripes-th block, so that several workers share the parsing, which
    costs far more than the decompression.
    """
    size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
        return [ReadTask(path, 0, -1, stripe, stripes) for stripe in range(stripes)]
    return [ReadTask(path, start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


def read_blocks(task: ReadTask, skip_header: bool, block_bytes: int = BLOCK_BYTES) -> Iterator[list[bytes]]:
    """The task's lines, without their line ends, in lists read ``block_bytes`` at a time."""
    path, start, end, stripe, stripes = task
    with FileSystems.open(path) as handle:
        position = start
        if start > 0:
            # The line that straddles `start` belongs to the previous range.
            handle.seek(start - 1)
            position = start - 1 + len(handle.readline())
        elif skip_header:
            position += len(handle.readline())
        pending, index = b"", 0
        while end < 0 or position < end:
            chunk = handle.read(block_bytes)
            if not chunk:
                break
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            data, pending = data[:cut], data[cut:]
            if end >= 0 and position + cut > end:
                # Keep the lines starting before `end`: up to the first line end at or after it.
                data = data[:data.index(b"\n", end - position - 1) + 1]
            position += len(data)
            if data:
                if index % stripes == stripe:
                    yield _lines_of(data[:-1])
                index += 1
        if pending and (end < 0 or position < end) and index % stripes == stripe:
            yield _lines_of(pending)


def _lines_of(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return [line.rstrip(b"\r") for line in lines] if b"\r" in data else lines


class ParseLines(beam.DoFn):
    """Read tasks → Arrow RecordBatches of parsed rows (all splits, each row's split in
    ``SPLIT_COLUMN``); bad rows → dead letters per split.

    Input elements are ``(split, task)``: a task is a :class:`ReadTask` or
    ``("synthetic", chunk)``; with a ratio split (``split`` None) each line is
    assigned to its split here. Only lines of the ``keep`` splits are parsed. ``accounting``:
    count read and rejected rows and emit dead letters (off for a second read of the same
    lines, so that each is counted once). Delimited formats are parsed a block at a time
    (:mod:`pipelines.block_parse`).
    """

    def __init__(self, ds: DatasetConfig, contract: FeatureContract, movielens_tables: Optional[tuple[dict, dict]],
                 keep: tuple[str, ...] = SPLITS, accounting: bool = True):
        self.ds, self.contract, self.movielens_tables = ds, contract, movielens_tables
        self.keep, self.accounting = tuple(keep), accounting
        self.read = {s: Metrics.counter(METRIC_NAMESPACE, f"read.{s}") for s in SPLITS}
        self.rejected = {s: Metrics.counter(METRIC_NAMESPACE, f"rejected.{s}") for s in SPLITS}

    def setup(self):
        self.parse = readers.make_parser(self.ds, self.movielens_tables)
        self.parse_block = (block_parse.parse_block if isinstance(self.parse, readers.DelimitedParser)
                            else block_parse.parse_one_by_one)
        self.schema = arrow_schema(self.contract)
        self.generating_model = (synthetic.generating_model(self.ds.synthetic)
                                 if self.ds.format == "synthetic" else None)

    def _blocks(self, task) -> Iterator[list[bytes]]:
        if task[0] == "synthetic":
            return iter([synthetic.chunk_lines(self.ds.synthetic, task[1], self.generating_model)])
        return read_blocks(task, self.ds.header)

    def process(self, element):
        split, task = element
        sp = self.ds.splits
        pending: dict[str, list[bytes]] = {s: [] for s in self.keep}
        for block in self._blocks(task):
            if split is not None:
                pending[split].extend(block)
            else:
                codes = split_indices(block, sp.seed, sp.ratios)
                for s, lines in pending.items():
                    code = SPLITS.index(s)
                    lines.extend([line for line, line_code in zip(block, codes) if line_code == code])
            for s, lines in pending.items():
                while len(lines) >= PARSE_BATCH_SIZE:
                    yield from self._parse(s, lines[:PARSE_BATCH_SIZE])
                    del lines[:PARSE_BATCH_SIZE]
        for s, lines in pending.items():
            if lines:
                yield from self._parse(s, lines)

    def _parse(self, split: str, lines: list[bytes]):
        parsed = self.parse_block(lines, self.parse)
        if self.accounting:
            self.read[split].inc(len(lines))
            self.rejected[split].inc(len(parsed.rejected))
            for index, reason in parsed.rejected:
                yield beam.pvalue.TaggedOutput(f"dead_{split}", dead_letter_record(split, reason, lines[index]))
        if len(parsed.labels):
            yield self._record_batch(split, parsed)

    def _record_batch(self, split: str, parsed: block_parse.ParsedBlock) -> pa.RecordBatch:
        rows = len(parsed.labels)
        offsets = pa.array(np.arange(rows + 1, dtype=np.int64))
        arrays = [pa.LargeListArray.from_arrays(offsets, column) for column in parsed.columns]
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(parsed.labels, pa.int64())))
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(np.full(rows, SPLITS.index(split), np.int64))))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def input_files(ds: DatasetConfig, data_dir: Optional[str],
                splits: tuple[str, ...] = SPLITS) -> dict[Optional[str], list[str]]:
    """The raw files to read, per split (key None: one source split by ratio); none for synthetic data."""
    sp = ds.splits
    if ds.format == "synthetic":
        return {}
    if sp.files is not None:
        return {split: _expand(data_dir, sp.files[split]) for split in splits}
    return {None: _expand(data_dir, ds.movielens.ratings if ds.format == "movielens" else sp.source)}


def read_and_parse(pipeline, ds: DatasetConfig, data_dir: Optional[str], contract: FeatureContract,
                   movielens_tables, splits: tuple[str, ...] = SPLITS, accounting: bool = True,
                   stage: str = "", compressed_stripes: int = 1) -> tuple:
    """One PCollection of parsed RecordBatches of ``splits`` and the dead-letter PCollections per split
    (see :class:`ParseLines` for ``accounting``); ``stage`` names the steps, so that the input can
    be read twice; ``compressed_stripes``: read tasks per compressed file (see :func:`byte_ranges`).
    One read step for all splits: a Flatten of several would make a local runner hold all of its
    rows."""
    if ds.format == "synthetic":
        tasks = [(None, ("synthetic", chunk)) for chunk in range(synthetic.chunk_count(ds.synthetic))]
    else:
        tasks = []
        for split, paths in input_files(ds, data_dir, splits).items():
            check_input_files(ds, paths)
            tasks += [(split, task) for path in paths for task in byte_ranges(path, stripes=compressed_stripes)]
    outputs = (pipeline | f"{stage}Tasks" >> beam.Create(tasks)
               | f"{stage}Reshuffle" >> beam.Reshuffle()
               | f"{stage}Parse" >> beam.ParDo(ParseLines(ds, contract, movielens_tables, splits, accounting))
               .with_outputs(*[f"dead_{s}" for s in splits], main="rows"))
    return outputs.rows, {s: outputs[f"dead_{s}"] for s in splits}


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

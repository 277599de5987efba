"""Delimited lines parsed a block at a time with Arrow's compute kernels.

``parse_block`` keeps and refuses the same lines as :class:`fsdnet_tf.data.readers.DelimitedParser`,
with the same values, labels and reasons, but decides column-wise instead of in a Python loop
per line. Blocks it does not handle column-wise — a line with a quote character or a line end
left in it, or bytes that are not UTF-8 — go through the per-line parser, which stays the reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsdnet_tf.data import readers

INTEGER_PATTERN = f"^{readers.INTEGER.pattern}$"   # the per-line parser's fullmatch, as a search


@dataclass
class ParsedBlock:
    columns: list[pa.Array]              # one large_binary array per feature, kept rows only
    labels: np.ndarray                   # int64, kept rows only
    rejected: list[tuple[int, str]]      # (index of the line in the block, reason)


def parse_block(lines: list[bytes], parser: readers.DelimitedParser) -> ParsedBlock:
    """Which lines are kept is decided column-wise; a refused line's reason is the per-line parser's
    (refusals are rare, and this keeps every message exactly as that parser words it)."""
    text = pa.array(lines, pa.binary())
    try:
        text = text.cast(pa.string())
    except pa.ArrowInvalid:
        return parse_one_by_one(lines, parser)
    if any(pc.any(pc.match_substring(text, mark)).as_py() for mark in ('"', "\r", "\n")):
        return parse_one_by_one(lines, parser)
    cells = pc.split_pattern(text, pattern=parser.delimiter)
    shaped = np.flatnonzero(pc.list_value_length(cells).to_numpy(zero_copy_only=False) == parser.width)
    if len(shaped) < len(lines):
        cells = cells.take(pa.array(shaped))
    kept = np.ones(len(shaped), dtype=bool)
    columns = []
    for index, _, is_integer in parser.features:
        column = pc.list_element(cells, index)
        if is_integer:
            kept &= ~pc.and_(pc.greater(pc.utf8_length(column), 0),
                             pc.invert(pc.match_substring_regex(column, INTEGER_PATTERN))
                             ).to_numpy(zero_copy_only=False)
        columns.append(column)
    labels = _labels(pc.list_element(cells, parser.label_index), parser)
    kept &= labels >= 0
    refused = np.ones(len(lines), dtype=bool)
    refused[shaped[kept]] = False
    mask = pa.array(kept)
    return ParsedBlock([c.filter(mask).cast(pa.large_binary()) for c in columns], labels[kept],
                       [(int(i), _reason(lines[i], parser)) for i in np.flatnonzero(refused)])


def _labels(column: pa.Array, parser: readers.DelimitedParser) -> np.ndarray:
    """The label rule applied once per distinct label text; -1 where it refuses the text."""
    encoded = column.dictionary_encode()
    outcomes = []
    for value in encoded.dictionary.to_pylist():
        try:
            outcomes.append(parser.label(value.strip()))
        except readers.BadRow:
            outcomes.append(-1)
    return np.asarray(outcomes + [-1], dtype=np.int64)[encoded.indices.to_numpy(zero_copy_only=False)]


def _reason(line: bytes, parser: readers.DelimitedParser) -> str:
    try:
        parser(line)
    except readers.BadRow as err:
        return str(err)
    raise RuntimeError(f"block parsing refused a line the per-line parser accepts: {line[:200]!r}")


def parse_one_by_one(lines: list[bytes], parser) -> ParsedBlock:
    """Any per-line parser (``parser(line) -> (values, label)`` or BadRow) over a block."""
    columns: list[list[str]] = [[] for _ in parser.features]
    labels, rejected = [], []
    for index, line in enumerate(lines):
        try:
            values, label = parser(line)
        except readers.BadRow as err:
            rejected.append((index, str(err)))
            continue
        for column, value in zip(columns, values):
            column.append(value)
        labels.append(label)
    return ParsedBlock([pa.array(c, pa.large_binary()) for c in columns], np.asarray(labels, dtype=np.int64),
                       rejected)

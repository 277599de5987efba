"""Serialized tf.Examples of one int64 value per feature, built a batch at a time with numpy.

Every transformed record holds the same keys, one int64 each (the fields' vocabulary ids and
the label), so its bytes are a fixed template in which only the values' varints and the
lengths that depend on them vary. A batch is laid out as one row of slots per record, each
varint slot as wide as the widest value of its column, and the unused tails of the slots are
dropped in one boolean selection. tfx_bsl's encoder, which builds a protobuf message per row,
took 9 µs a row on Criteo's 40 features; the records are the same messages (tests parse both).

Wire format (protobuf): Example{1: Features{1: map entry{1: key, 2: Feature{3: Int64List{1:
packed varints}}}}}; every field here is length-delimited, tag byte (field << 3) | 2.
"""
from __future__ import annotations

import numpy as np

_TAG_1, _TAG_2, _TAG_3 = 0x0A, 0x12, 0x1A
_MAX_VARINT_BYTES = 10
# An entry's length byte holds 8 + len(key) + varint bytes, which must stay a one-byte varint.
_MAX_KEY_BYTES = 127 - 8 - _MAX_VARINT_BYTES


def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes of each value's varint (int64 as protobuf writes it: a negative value takes 10)."""
    unsigned = values.astype(np.int64).view(np.uint64)
    lengths = np.ones(len(unsigned), np.int64)
    for k in range(1, _MAX_VARINT_BYTES):
        lengths += unsigned >= np.uint64(1 << (7 * k))
    return lengths


class ExampleEncoder:
    """Columns of int64 (one value per record, in ``names`` order) → serialized tf.Examples."""

    def __init__(self, names: list[str]):
        self.keys = [name.encode() for name in names]
        too_long = [name for name, key in zip(names, self.keys) if len(key) > _MAX_KEY_BYTES]
        if too_long:
            raise ValueError(f"feature names longer than {_MAX_KEY_BYTES} bytes: {too_long}")

    def encode(self, columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(the records' bytes back to back as uint8, offsets: record i is bytes[offsets[i]:offsets[i+1]])."""
        rows = len(columns[0])
        lengths = [varint_lengths(c) for c in columns]
        widths = [int(n.max(initial=1)) for n in lengths]
        features = sum(10 + len(key) + n for key, n in zip(self.keys, lengths))       # Features' length, (B,)
        features_length = varint_lengths(np.asarray(features, np.int64).reshape(rows))
        header_width = int(features_length.max(initial=1))
        # One template row: the constant bytes in place, zeros where a record's own bytes go.
        template, variable = [bytes([_TAG_1]), bytes(header_width)], []
        position = 1 + header_width
        for key, width in zip(self.keys, widths):
            k = len(key)
            template.append(bytes([_TAG_1, 0, _TAG_1, k]) + key + bytes([_TAG_2, 0, _TAG_3, 0, _TAG_1, 0]) + bytes(width))
            variable.append((position, k))
            position += 10 + k + width
        record = np.empty((rows, position), np.uint8)
        record[:] = np.frombuffer(b"".join(template), np.uint8)
        keep = np.ones((rows, position), bool)
        self._place_varints(record, keep, 1, features, features_length, header_width)
        for (start, k), values, n, width in zip(variable, columns, lengths, widths):
            small = n.astype(np.uint8)
            record[:, start + 1] = 8 + k + small          # map entry: key (2 + k) + value (2 + Feature)
            record[:, start + 5 + k] = 4 + small          # Feature: Int64List (2 + its body)
            record[:, start + 7 + k] = 2 + small          # Int64List: the packed field (2 + varints)
            record[:, start + 9 + k] = small              # the packed varints
            self._place_varints(record, keep, start + 10 + k, values, n, width)
        offsets = np.zeros(rows + 1, np.int64)
        np.cumsum(keep.sum(axis=1), out=offsets[1:])
        return record[keep], offsets

    @staticmethod
    def _place_varints(record, keep, start, values, lengths, width) -> None:
        unsigned = np.asarray(values, np.int64).view(np.uint64)
        for k in range(width):
            low = ((unsigned >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
            record[:, start + k] = np.where(k < lengths - 1, low | 0x80, low)
            if k:
                keep[:, start + k] = k < lengths

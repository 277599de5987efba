"""Parsing raw log lines into feature strings and a 0/1 label.

Each supported format turns one raw line (bytes) into the feature values in the
order of the feature contract plus the label, or raises :class:`BadRow` with a
reason. Nothing is dropped silently: the pipeline sends every ``BadRow`` to the
dead-letter output together with the raw line.
"""
from __future__ import annotations

import csv
import re
from typing import Callable, Optional

from fsdnet_tf.config import DatasetConfig

INTEGER = re.compile(r"-?[0-9]+")


class BadRow(ValueError):
    """A raw line that cannot become a training row; the message is the reason."""


def label_rule(ds: DatasetConfig) -> Callable[[str], int]:
    lab = ds.label
    if lab.threshold is not None:
        threshold = lab.threshold

        def by_threshold(value: str) -> int:
            try:
                number = float(value)
            except ValueError:
                raise BadRow(f"label {value!r} is not a number") from None
            if number != number:
                raise BadRow("label is NaN")
            return int(number >= threshold)
        return by_threshold

    positive, negative = frozenset(lab.positive), frozenset(lab.negative)

    def by_value(value: str) -> int:
        if value in positive:
            return 1
        if value in negative:
            return 0
        raise BadRow(f"label {value!r} is neither positive {sorted(positive)} nor negative {sorted(negative)}")
    return by_value


def _decode(raw: bytes, encoding: str = "utf-8") -> str:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise BadRow(f"undecodable bytes ({encoding}): {err.reason} at byte {err.start}") from None
    return text.rstrip("\r\n")


class DelimitedParser:
    """csv / tsv / Criteo raw TSV / the synthetic generator's CSV lines."""

    def __init__(self, ds: DatasetConfig):
        self.delimiter = ds.field_delimiter
        self.width = len(ds.columns)
        self.label = label_rule(ds)
        self.label_index = next(i for i, c in enumerate(ds.columns) if c.kind == "label")
        self.features = [(i, c.name, c.kind == "integer")
                         for i, c in enumerate(ds.columns) if c.kind in ("categorical", "integer")]

    def split(self, text: str) -> list[str]:
        if '"' in text:
            try:
                return next(csv.reader([text], delimiter=self.delimiter, strict=True))
            except (csv.Error, StopIteration) as err:
                raise BadRow(f"malformed quoting: {err}") from None
        return text.split(self.delimiter)

    def __call__(self, raw: bytes) -> tuple[list[str], int]:
        text = _decode(raw)
        if not text.strip():
            raise BadRow("empty line")
        cells = self.split(text)
        if len(cells) != self.width:
            raise BadRow(f"expected {self.width} columns, found {len(cells)}")
        values = []
        for index, name, is_integer in self.features:
            value = cells[index]
            if is_integer and value and not INTEGER.fullmatch(value):
                raise BadRow(f"column {name}: {value!r} is not an integer")
            values.append(value)
        return values, self.label(cells[self.label_index].strip())


class LibsvmParser:
    """``label idx:value idx:value ...``; ``field_map`` assigns index ranges to fields.

    The token of a field is its feature index; a field with no index is missing.
    """

    def __init__(self, ds: DatasetConfig):
        self.label = label_rule(ds)
        self.fields = [c.name for c in ds.feature_columns]
        ranges = sorted((lo, hi, self.fields.index(name)) for name, (lo, hi) in ds.field_map.items())
        for (lo1, hi1, _), (lo2, _, _) in zip(ranges, ranges[1:]):
            if lo2 <= hi1:
                raise ValueError(f"dataset.field_map: index ranges [{lo1}, {hi1}] and one starting at {lo2} overlap")
        self.ranges = ranges

    def _field_of(self, index: int) -> int:
        for lo, hi, slot in self.ranges:
            if lo <= index <= hi:
                return slot
        raise BadRow(f"feature index {index} is outside every field_map range")

    def __call__(self, raw: bytes) -> tuple[list[str], int]:
        tokens = _decode(raw).split()
        if not tokens:
            raise BadRow("empty line")
        values: list[Optional[str]] = [None] * len(self.fields)
        for token in tokens[1:]:
            index_text, sep, value_text = token.partition(":")
            if not sep or not INTEGER.fullmatch(index_text):
                raise BadRow(f"token {token!r} is not index:value")
            try:
                float(value_text)
            except ValueError:
                raise BadRow(f"token {token!r}: value is not a number") from None
            slot = self._field_of(int(index_text))
            if values[slot] is not None:
                raise BadRow(f"field {self.fields[slot]} has two indices ({values[slot]}, {index_text})")
            values[slot] = index_text
        return [v or "" for v in values], self.label(tokens[0])


class MovieLensParser:
    """``UserID::MovieID::Rating::Timestamp`` joined with users.dat and movies.dat rows."""

    def __init__(self, ds: DatasetConfig, users: dict[str, list[str]], movies: dict[str, list[str]]):
        self.label = label_rule(ds)
        self.encoding = ds.movielens.encoding
        self.users, self.movies = users, movies
        # The join yields every column after the rating; the config may mark some of them ignore.
        joined = [c for c in ds.columns if c.kind != "label"]
        self.keep = [i for i, c in enumerate(joined) if c.kind in ("categorical", "integer")]

    def __call__(self, raw: bytes) -> tuple[list[str], int]:
        parts = _decode(raw, self.encoding).split("::")
        if len(parts) != 4:
            raise BadRow(f"expected 4 '::'-separated fields, found {len(parts)}")
        user_id, movie_id, rating, _ = parts
        user = self.users.get(user_id)
        if user is None:
            raise BadRow(f"user {user_id!r} is not in users.dat")
        movie = self.movies.get(movie_id)
        if movie is None:
            raise BadRow(f"movie {movie_id!r} is not in movies.dat")
        gender, age, occupation, zip_code = user
        joined = [user_id, movie_id, gender, age, occupation, zip_code, movie[1]]
        return [joined[i] for i in self.keep], self.label(rating)


def read_movielens_table(lines: list[bytes], encoding: str, width: int, name: str) -> dict[str, list[str]]:
    """users.dat / movies.dat lines → {id: remaining fields}; a malformed line is an error."""
    table = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        parts = raw.decode(encoding).rstrip("\r\n").split("::")
        if len(parts) != width:
            raise ValueError(f"{name} line {number}: expected {width} '::'-separated fields, found {len(parts)}")
        table[parts[0]] = parts[1:]
    return table


def make_parser(ds: DatasetConfig, movielens_tables: Optional[tuple[dict, dict]] = None):
    if ds.format in ("csv", "tsv", "criteo", "synthetic"):
        return DelimitedParser(ds)
    if ds.format == "libsvm":
        return LibsvmParser(ds)
    if ds.format == "movielens":
        users, movies = movielens_tables
        return MovieLensParser(ds, users, movies)
    raise ValueError(f"unknown format {ds.format}")

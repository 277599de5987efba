"""The tf.Transform preprocessing function: raw string features → vocabulary ids.

The same function is analysed on train by the pipeline and embedded in the
exported model, so training and serving encode features identically.

All fields' vocabularies are fitted by one analyzer (:class:`FitVocabularies`) in one
Beam pass instead of one ``tft.vocabulary`` per field: each of those expands into
about a hundred Beam transforms and ten stages, which cost more than the counting on
data of Frappe's size. The result is the same as
``tft.compute_and_apply_vocabulary(frequency_threshold=..., num_oov_buckets=...)``
field by field: the same filtering, ordering and files (tests compare the two).
"""
from __future__ import annotations

import collections
import os
import re

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform import analyzers as tft_analyzers

from fsdnet_tf.features import LABEL_KEY, FeatureContract, vocabulary_name

# tf.Transform's rule for text vocabulary files: a token that is empty or holds a line
# break cannot be a line of the file, so it is never in a vocabulary (it maps to OOV).
_UNREPRESENTABLE_TOKEN = re.compile(rb"^$|[\n\r]")
# tf.Transform writes this token when no token passes the threshold: a lookup table
# cannot be built from an empty file.
_EMPTY_VOCABULARY_TOKEN = tft_analyzers.get_empy_vocabulary_dummy_value(tf.string)[1]


def criteo_integer_token(values: tf.Tensor) -> tf.Tensor:
    """SPEC §5 rule on raw integer strings: v > 2 → floor((ln v)²), v ≤ 2 → v.

    The empty string (missing) stays empty, which the vocabulary maps to OOV.
    """
    missing = tf.equal(values, "")
    number = tf.strings.to_number(tf.where(missing, "0", values), out_type=tf.int64)
    squared_log = tf.floor(tf.square(tf.math.log(tf.cast(tf.maximum(number, 1), tf.float64))))
    token = tf.where(number > 2, tf.cast(squared_log, tf.int64), number)
    return tf.where(missing, "", tf.strings.as_string(token))


class CountTokens(beam.DoFn):
    """Batches of (field_1, ..., field_F) tokens → one (field index, {token: count}) per field per
    bundle, tokens a vocabulary file cannot hold left out.

    Counting a whole bundle before emitting keeps the elements that cross the shuffle to a few
    per bundle; one element per (field, token) and batch made the shuffle the analysis's
    largest cost on Criteo-sized data.
    """

    def start_bundle(self):
        self.counts: list[collections.Counter] = []

    def process(self, batch: tuple[np.ndarray, ...]):
        if not self.counts:
            self.counts = [collections.Counter() for _ in batch]
        for counter, values in zip(self.counts, batch):
            counter.update(values.tolist())

    def finish_bundle(self):
        for index, counter in enumerate(self.counts):
            counts = {token: n for token, n in counter.items() if not _UNREPRESENTABLE_TOKEN.search(token)}
            if counts:
                yield WindowedValue((index, counts), MIN_TIMESTAMP, [GlobalWindow()])


class SumCounts(beam.CombineFn):
    """{token: count} dicts of one field summed."""

    def create_accumulator(self) -> collections.Counter:
        return collections.Counter()

    def add_input(self, total: collections.Counter, counts: dict) -> collections.Counter:
        total.update(counts)
        return total

    def merge_accumulators(self, totals):
        totals = iter(totals)
        merged = next(totals)
        for total in totals:
            merged.update(total)
        return merged

    def extract_output(self, total: collections.Counter) -> dict:
        return total


def ordered_vocabulary(counts: list[tuple[int, bytes]], min_frequency: int) -> list[bytes]:
    """tf.Transform's order: count ≥ ``min_frequency``, most frequent first, ties by token, descending."""
    kept = sorted((c for c in counts if c[0] >= min_frequency), reverse=True)
    return [token for _, token in kept] or [_EMPTY_VOCABULARY_TOKEN]


class FitVocabularies(tft_beam.experimental.PTransformAnalyzer):
    """Fits every field's vocabulary in one pass over batches of (field_1, ..., field_F) tokens.

    Counts are combined per (field, token), so the work spreads over workers on a
    distributed runner as tf.Transform's own vocabulary analyzer does; each field's
    kept tokens are then sorted and written as one text file, named like the file
    ``compute_and_apply_vocabulary(vocab_filename=...)`` would write. Outputs one path
    per field, in field order.
    """

    def __init__(self, file_names: list[str], min_frequency: int):
        super().__init__()
        self.file_names, self.min_frequency = list(file_names), min_frequency

    def _write(self, field_and_counts: tuple[int, dict]) -> tuple[int, str]:
        index, counts = field_and_counts
        tf.io.gfile.makedirs(self.base_temp_dir)
        path = os.path.join(self.base_temp_dir, self.file_names[index])
        with tf.io.gfile.GFile(path, "wb") as handle:
            for token in ordered_vocabulary([(n, token) for token, n in counts.items()], self.min_frequency):
                handle.write(token + b"\n")
        return index, path

    def expand(self, batches):
        written = (batches
                   | "CountPerBundle" >> beam.ParDo(CountTokens())
                   | "SumPerField" >> beam.CombinePerKey(SumCounts())
                   | "Write" >> beam.Map(self._write))
        paths = written | "AllFields" >> beam.combiners.ToDict()
        # A field whose every value was unrepresentable has no counts at all: it still gets a file.
        return tuple(paths | f"Path{i}" >> beam.Map(self._path_or_empty, i) for i in range(len(self.file_names)))

    def _path_or_empty(self, paths: dict, index: int) -> np.ndarray:
        return np.array(paths[index] if index in paths else self._write((index, {}))[1])


def make_preprocessing_fn(contract: FeatureContract, min_frequency: int):
    def preprocessing_fn(inputs: dict) -> dict:
        tokens = {}
        for field in contract.fields:
            tokens[field] = inputs[field]
            if field in contract.integer_fields:
                tokens[field] = criteo_integer_token(tokens[field])
        vocabularies = tft.experimental.ptransform_analyzer(
            [tokens[f] for f in contract.fields],
            FitVocabularies([vocabulary_name(f) for f in contract.fields], min_frequency),
            output_dtypes=[tf.string] * len(contract.fields), output_shapes=[[]] * len(contract.fields),
            output_asset_default_values=[_EMPTY_VOCABULARY_TOKEN] * len(contract.fields), name="vocabularies")
        outputs = {field: tft.apply_vocabulary(tokens[field], vocabulary, num_oov_buckets=contract.num_oov_buckets)
                   for field, vocabulary in zip(contract.fields, vocabularies)}
        if LABEL_KEY in inputs:
            outputs[LABEL_KEY] = inputs[LABEL_KEY]
        return outputs
    return preprocessing_fn

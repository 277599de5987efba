"""The one-pass vocabulary analyzer against tf.Transform's own per-field vocabularies."""
import os

import numpy as np
import pytest

from conftest import BEAM_ARGS

from fsdnet_tf.data.preprocessing import _EMPTY_VOCABULARY_TOKEN, CountTokens, SumCounts, ordered_vocabulary


def test_bundle_counts_sum_batches_and_drop_tokens_a_text_file_cannot_hold():
    counter = CountTokens()
    counter.start_bundle()
    counter.process((np.array([b"a", b"b", b"a", b"", b"x\ny"], dtype=object),
                     np.array([b"r\r", b"k", b"k", b"k", b"k"], dtype=object)))
    counter.process((np.array([b"b"], dtype=object), np.array([b"\n"], dtype=object)))
    assert [v.value for v in counter.finish_bundle()] == [(0, {b"a": 2, b"b": 2}), (1, {b"k": 4})]
    counter.start_bundle()
    assert list(counter.finish_bundle()) == []


def test_field_counts_of_several_bundles_sum():
    fn = SumCounts()
    parts = [fn.add_input(fn.create_accumulator(), {b"a": 2, b"b": 1}), fn.add_input(fn.create_accumulator(), {b"a": 3})]
    assert fn.extract_output(fn.merge_accumulators(parts)) == {b"a": 5, b"b": 1}


def test_ordered_vocabulary_golden():
    counts = [(3, b"b"), (1, b"z"), (3, b"c"), (2, b"a"), (5, b"q")]
    # threshold 2 drops z; most frequent first; equal counts by token, descending (c before b)
    assert ordered_vocabulary(counts, 2) == [b"q", b"c", b"b", b"a"]
    assert ordered_vocabulary(counts, 6) == [_EMPTY_VOCABULARY_TOKEN]
    assert ordered_vocabulary([], 1) == [_EMPTY_VOCABULARY_TOKEN]


def _analyze_and_transform(preprocessing_fn, rows, feature_spec, temp_dir):
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
    with beam.Pipeline(argv=BEAM_ARGS) as pipeline, tft_beam.Context(temp_dir=str(temp_dir), force_tf_compat_v1=False):
        data = pipeline | beam.Create(rows, reshuffle=False)
        (transformed, _), transform_fn = ((data, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn))
        _ = transformed | beam.combiners.ToList() | beam.Map(
            lambda out: (temp_dir / "rows.txt").write_text(repr(sorted(sorted(r.items()) for r in out))))
        _ = transform_fn | tft_beam.WriteTransformFn(str(temp_dir / "out"))
    assets = temp_dir / "out" / "transform_fn" / "assets"
    return ({name: (assets / name).read_bytes() for name in sorted(os.listdir(assets))},
            (temp_dir / "rows.txt").read_text())


def test_same_vocabularies_and_ids_as_compute_and_apply_vocabulary(tmp_path):
    import tensorflow as tf
    import tensorflow_transform as tft

    from fsdnet_tf.config import dataset_from_yaml
    from fsdnet_tf.data.preprocessing import make_preprocessing_fn
    from fsdnet_tf.features import FeatureContract, vocabulary_name

    contract = FeatureContract.from_dataset(dataset_from_yaml("""
name: t
format: csv
columns: [{name: label, kind: label}, {name: a, kind: categorical}, {name: b, kind: categorical}, {name: c, kind: categorical}]
num_oov_buckets: 2
splits: {files: {train: x, valid: y, test: z}}
"""))
    # a: ties (m, n twice each) and a rare token; b: empty and line-break tokens; c: nothing reaches 2
    a = ["m", "n", "m", "n", "k", "k", "k", "r"]
    b = ["", "u", "u\nv", "u", "", "w\r", "w\r", "u"]
    c = ["p", "q", "s", "t", "", "v", "x", "y"]
    rows = [{"a": x, "b": y, "c": z, "label": i % 2} for i, (x, y, z) in enumerate(zip(a, b, c))]
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in "abc"} | {"label": tf.io.FixedLenFeature([], tf.int64)}

    def reference_fn(inputs):
        out = {f: tft.compute_and_apply_vocabulary(inputs[f], frequency_threshold=2, num_oov_buckets=2,
                                                   vocab_filename=vocabulary_name(f)) for f in "abc"}
        return out | {"label": inputs["label"]}

    (tmp_path / "ref").mkdir()
    (tmp_path / "ours").mkdir()
    reference = _analyze_and_transform(reference_fn, rows, spec, tmp_path / "ref")
    ours = _analyze_and_transform(make_preprocessing_fn(contract, 2), rows, spec, tmp_path / "ours")
    assert ours == reference
    assert reference[0][vocabulary_name("a")] == b"k\nn\nm\n"      # 3, then the tie n > m
    assert reference[0][vocabulary_name("b")] == b"u\n"
    assert reference[0][vocabulary_name("c")] == _EMPTY_VOCABULARY_TOKEN + b"\n"

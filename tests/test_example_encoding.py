"""The column-wise tf.Example serializer of the transform's writer (pipelines/example_encoding.py)."""
import numpy as np
import pytest
import tensorflow as tf

from pipelines.example_encoding import ExampleEncoder, varint_lengths


def example(values: dict) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)])) for name, v in values.items()}))


def records(encoder: ExampleEncoder, columns: list[np.ndarray]) -> list[bytes]:
    data, offsets = encoder.encode(columns)
    return [data[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])]


def test_one_feature_by_hand():
    # 300 is the varint AC 02; the map entry {key "a", Feature{int64_list{[300]}}} is 11 bytes long.
    expected = bytes([0x0A, 13, 0x0A, 11, 0x0A, 1, ord("a"), 0x12, 6, 0x1A, 4, 0x0A, 2, 0xAC, 0x02])
    assert records(ExampleEncoder(["a"]), [np.array([300])]) == [expected]
    assert example({"a": 300}).SerializeToString() == expected


def test_varint_lengths_at_the_byte_boundaries():
    values = np.array([0, 127, 128, 16383, 16384, 2 ** 63 - 1, -1])
    np.testing.assert_array_equal(varint_lengths(values), [1, 1, 2, 2, 3, 9, 10])


def test_every_record_is_the_protobuf_message_of_its_row():
    rng = np.random.default_rng(7)
    names = [f"C{i}" for i in range(1, 27)] + [f"I{i}" for i in range(1, 14)] + ["label"]
    columns = [rng.integers(0, 10 ** int(rng.integers(1, 8)), 3000) for _ in names]
    columns[0][:6] = [0, 127, 128, 2 ** 40, -1, 2 ** 63 - 1]          # 1- to 10-byte varints in one column
    encoded = records(ExampleEncoder(names), columns)
    assert len(encoded) == 3000
    for i in range(0, 3000, 7):
        assert tf.train.Example.FromString(encoded[i]) == example({n: c[i] for n, c in zip(names, columns)}), i
    parsed = tf.io.parse_example(encoded, {n: tf.io.FixedLenFeature([], tf.int64) for n in names})
    for name, column in zip(names, columns):
        np.testing.assert_array_equal(parsed[name].numpy(), column, err_msg=name)


def test_records_whose_features_need_a_two_byte_length():
    names = [f"feature_with_a_long_name_{i}" for i in range(8)]         # Features > 127 bytes
    columns = [np.array([5, 10 ** 12]) for _ in names]
    encoded = records(ExampleEncoder(names), columns)
    assert len(encoded[0]) > 130
    assert [tf.train.Example.FromString(r) for r in encoded] == [
        example({n: c[i] for n, c in zip(names, columns)}) for i in range(2)]


def test_an_empty_batch_has_no_records():
    data, offsets = ExampleEncoder(["a", "label"]).encode([np.array([], np.int64)] * 2)
    assert len(data) == 0 and offsets.tolist() == [0]


def test_a_key_too_long_for_one_length_byte_is_refused():
    with pytest.raises(ValueError, match="longer than"):
        ExampleEncoder(["x" * 200])


def test_a_transformed_column_must_hold_one_value_per_record():
    import pyarrow as pa
    from pipelines.transform import one_value_per_row
    good = pa.LargeListArray.from_arrays(pa.array([0, 1, 2]), pa.array([4, 5], pa.int64()))
    bad = pa.LargeListArray.from_arrays(pa.array([0, 2, 2]), pa.array([4, 5], pa.int64()))
    batch = pa.RecordBatch.from_arrays([good, bad], ["good", "bad"])
    np.testing.assert_array_equal(one_value_per_row(batch, "good"), [4, 5])
    with pytest.raises(ValueError, match="'bad' has records without exactly one value"):
        one_value_per_row(batch, "bad")

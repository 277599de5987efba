"""The one feature contract shared by the pipeline, the model, the export and the client.

Raw features are strings (Criteo integers too: the pipeline and the serving graph
apply the same integer-to-token rule, and an empty string means missing). After
tf.Transform every feature is an int64 id under the same name; the label is int64
0/1 under :data:`LABEL_KEY` whatever the raw column was called.
"""
from __future__ import annotations

from dataclasses import dataclass

from fsdnet_tf.config import DatasetConfig

LABEL_KEY = "label"

# Serving names: the export writes these, the server and the client read them.
PREDICT_SIGNATURE = "serving_default"
RAW_SIGNATURE = "predict_raw"
CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
EXAMPLES_INPUT = "examples"
CLASSIFY_REGRESS_INPUT = "inputs"
PROBABILITY_OUTPUT = "probability"
CLASSIFY_SCORES_OUTPUT = "scores"
CLASSIFY_CLASSES_OUTPUT = "classes"
REGRESS_OUTPUT = "outputs"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_BATCH_SIZE = 4096


def serialize_examples(rows: list[dict], fields) -> list[bytes]:
    """Raw rows {field: value} → serialized tf.Examples with one bytes feature per field."""
    import tensorflow as tf
    out = []
    for row in rows:
        feature = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(row[f]).encode()]))
                   for f in fields}
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def vocabulary_name(field: str) -> str:
    return f"vocab_{field}"


@dataclass(frozen=True)
class FeatureContract:
    fields: tuple[str, ...]
    integer_fields: frozenset[str]
    num_oov_buckets: int

    @classmethod
    def from_dataset(cls, ds: DatasetConfig) -> "FeatureContract":
        return cls(fields=tuple(c.name for c in ds.feature_columns),
                   integer_fields=frozenset(c.name for c in ds.feature_columns if c.kind == "integer"),
                   num_oov_buckets=ds.num_oov_buckets)

    def raw_feature_spec(self, with_label: bool = True) -> dict:
        import tensorflow as tf
        spec = {f: tf.io.FixedLenFeature([], tf.string) for f in self.fields}
        if with_label:
            spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
        return spec

    def transformed_feature_spec(self) -> dict:
        import tensorflow as tf
        spec = {f: tf.io.FixedLenFeature([], tf.int64) for f in self.fields}
        spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
        return spec

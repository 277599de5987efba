"""The tf.Transform preprocessing function: raw string features → vocabulary ids.

The same function is analysed on train by the pipeline and embedded in the
exported model, so training and serving encode features identically.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from fsdnet_tf.features import LABEL_KEY, FeatureContract, vocabulary_name


def criteo_integer_token(values: tf.Tensor) -> tf.Tensor:
    """SPEC §5 rule on raw integer strings: v > 2 → floor((ln v)²), v ≤ 2 → v.

    The empty string (missing) stays empty, which the vocabulary maps to OOV.
    """
    missing = tf.equal(values, "")
    number = tf.strings.to_number(tf.where(missing, "0", values), out_type=tf.int64)
    squared_log = tf.floor(tf.square(tf.math.log(tf.cast(tf.maximum(number, 1), tf.float64))))
    token = tf.where(number > 2, tf.cast(squared_log, tf.int64), number)
    return tf.where(missing, "", tf.strings.as_string(token))


def make_preprocessing_fn(contract: FeatureContract, min_frequency: int):
    def preprocessing_fn(inputs: dict) -> dict:
        outputs = {}
        for field in contract.fields:
            tokens = inputs[field]
            if field in contract.integer_fields:
                tokens = criteo_integer_token(tokens)
            # tf.Transform never puts the empty (missing) token in a text vocabulary,
            # so missing values land in an OOV bucket as SPEC §5 requires.
            outputs[field] = tft.compute_and_apply_vocabulary(
                tokens, frequency_threshold=min_frequency, num_oov_buckets=contract.num_oov_buckets,
                vocab_filename=vocabulary_name(field))
        if LABEL_KEY in inputs:
            outputs[LABEL_KEY] = inputs[LABEL_KEY]
        return outputs
    return preprocessing_fn

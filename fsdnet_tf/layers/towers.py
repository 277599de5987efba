"""The explicit (cross) and implicit (deep) towers of DCNv2, returning every layer's output."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from fsdnet_tf.layers.batch_norm import FlatBatchNorm


def glorot_normal() -> tf_keras.initializers.Initializer:
    """Glorot (Xavier) normal, untruncated — the reference's ``xavier_normal_``."""
    return tf_keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal")


class CrossStack(tf_keras.layers.Layer):
    """L TFRS ``Cross`` layers: c_l = c_{l-1} + x0 ⊙ (W_l c_{l-1} + b_l), c_0 = x0.

    Returns [c_1, …, c_L]. Full rank unless ``projection_dim`` is set.
    """

    input_view = "flat"

    def __init__(self, num_layers: int, projection_dim: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.projection_dim = num_layers, projection_dim
        self.crosses = [tfrs.layers.dcn.Cross(projection_dim=projection_dim, diag_scale=0.0, use_bias=True,
                                              kernel_initializer=glorot_normal(), bias_initializer="zeros",
                                              name=f"cross_{i}")
                        for i in range(num_layers)]

    def call(self, x0: tf.Tensor) -> list[tf.Tensor]:
        outputs, c = [], x0
        for cross in self.crosses:
            c = cross(x0, c)
            outputs.append(c)
        return outputs

    @staticmethod
    def summary(outputs: list[tf.Tensor]) -> tf.Tensor:
        return outputs[-1]

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "projection_dim": self.projection_dim}


MASK_LEVELS = 1 << 16      # a unit is kept when its 16 random bits fall below round((1 − rate)·2¹⁶)


def keep_threshold(rate: float) -> int:
    """The 16-bit threshold of a dropout rate; the kept share is exactly threshold / 2¹⁶."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate {rate} is not in [0, 1)")
    return min(MASK_LEVELS - 1, max(1, round((1 - rate) * MASK_LEVELS)))


def stateless_dropout_16bit(x: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Inverted dropout from 16-bit uniforms: each Philox word gives two units' draws.

    Philox dominates dropout's cost on a CPU; splitting its 32-bit words halves the draws
    (1.7× faster than ``tf.nn.experimental.stateless_dropout`` at 10000 × 400). The keep
    probability is threshold / 2¹⁶ (within 2⁻¹⁷ of 1 − rate) and the scale its exact
    inverse, so the output stays unbiased.
    """
    threshold = keep_threshold(rate)
    size = tf.size(x)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32)
    draws = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(draws < threshold, tf.shape(x))
    # x times a scale-or-zero mask: the same values as selecting between x·scale and 0, and one
    # pass fewer over the activations (the gradient is one product with the same mask).
    return x * tf.where(keep, tf.cast(MASK_LEVELS / threshold, x.dtype), tf.zeros([], x.dtype))


class CountedDropout(tf_keras.layers.Layer):
    """Inverted dropout whose masks are drawn by stateless ops from (seed, call count).

    The call counter is a model variable, so it is saved in checkpoints: a resumed run
    draws exactly the masks the uninterrupted run would have (Keras' own dropout keeps
    its generator state outside checkpoints). Replicas add their replica id to the seed.
    """

    def __init__(self, rate: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        keep_threshold(rate)
        self.rate, self.seed = rate, seed

    def build(self, input_shape):
        self.calls = self.add_weight("calls", shape=[], dtype=tf.int64, trainable=False,
                                     initializer="zeros", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def call(self, x: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        if not training or self.rate == 0:
            return x
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group if replica else 0, tf.int64)
        seed = tf.stack([tf.constant(self.seed, tf.int64), self.calls * 1024 + replica_id])
        self.calls.assign_add(1)
        return stateless_dropout_16bit(x, self.rate, seed)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class DeepTower(tf_keras.layers.Layer):
    """Blocks Dense(H) → BatchNorm(momentum 0.9, eps 1e-5) → ReLU → Dropout(p); returns [h_1, …, h_L]."""

    input_view = "flat"

    def __init__(self, units: tuple[int, ...], dropout: float, batch_norm: bool = True, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout, self.batch_norm, self.seed = tuple(units), dropout, batch_norm, seed
        self.blocks = []
        for i, width in enumerate(self.units):
            block = [tf_keras.layers.Dense(width, kernel_initializer=glorot_normal(), name=f"dense_{i}")]
            if batch_norm:
                block.append(FlatBatchNorm(momentum=0.9, epsilon=1e-5, name=f"bn_{i}"))
            block.append(tf_keras.layers.ReLU(name=f"relu_{i}"))
            block.append(CountedDropout(dropout, seed=seed * 1000 + i, name=f"dropout_{i}"))
            self.blocks.append(block)

    def call(self, x: tf.Tensor, training: Optional[bool] = None) -> list[tf.Tensor]:
        outputs = []
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(
                    layer, (tf_keras.layers.BatchNormalization, CountedDropout)) else layer(x)
            outputs.append(x)
        return outputs

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout,
                "batch_norm": self.batch_norm, "seed": self.seed}

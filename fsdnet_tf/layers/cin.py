"""xDeepFM's compressed interaction network, returning every layer's pooled maps (SPEC_WAVE2 §4.3)."""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.towers import glorot_normal


class CINTower(tf_keras.layers.Layer):
    """X^k[h, d] = Σ_{f,m} W^k[h, f, m] · X^0[f, d] · X^{k−1}[m, d] + c^k_h, X^0 = E (B, F, D).

    Every map feeds the next layer (no split-half), no activation. Layer k is a Dense(H_k)
    over the F·H_{k−1} outer-product channels (index f·H_{k−1} + m), i.e. a kernel-1 Conv1d.
    Returns the sum-pooled maps [p^1, …, p^K], p^k = Σ_d X^k (B, H_k).
    """

    input_view = "stacked"

    def __init__(self, units: tuple[int, ...], **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(units)
        self.maps = [tf_keras.layers.Dense(width, kernel_initializer=glorot_normal(), bias_initializer="zeros",
                                           name=f"cin_{k}") for k, width in enumerate(self.units)]

    def call(self, stacked: tf.Tensor) -> list[tf.Tensor]:
        batch, fields, dim = tf.shape(stacked)[0], stacked.shape[1], tf.shape(stacked)[2]
        pooled, previous = [], stacked
        for layer in self.maps:
            channels = fields * previous.shape[1]
            products = tf.einsum("bfd,bmd->bfmd", stacked, previous)            # (B, F, H_{k-1}, D)
            products = tf.transpose(tf.reshape(products, [batch, channels, dim]), [0, 2, 1])  # (B, D, F·H)
            previous = tf.transpose(layer(products), [0, 2, 1])                  # (B, H_k, D)
            pooled.append(tf.reduce_sum(previous, axis=-1))
        return pooled

    @staticmethod
    def summary(outputs: list[tf.Tensor]) -> tf.Tensor:
        """xDeepFM's output layer reads every layer's pooled maps."""
        return tf.concat(outputs, axis=-1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}

"""The explicit (cross) and implicit (deep) towers of DCNv2, returning every layer's output."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras


def glorot_normal() -> tf_keras.initializers.Initializer:
    """Glorot (Xavier) normal, untruncated — the reference's ``xavier_normal_``."""
    return tf_keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal")


class CrossStack(tf_keras.layers.Layer):
    """L TFRS ``Cross`` layers: c_l = c_{l-1} + x0 ⊙ (W_l c_{l-1} + b_l), c_0 = x0.

    Returns [c_1, …, c_L]. Full rank unless ``projection_dim`` is set.
    """

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

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "projection_dim": self.projection_dim}


class DeepTower(tf_keras.layers.Layer):
    """Blocks Dense(H) → BatchNorm(momentum 0.9, eps 1e-5) → ReLU → Dropout(p); returns [h_1, …, h_L]."""

    def __init__(self, units: tuple[int, ...], dropout: float, batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout, self.batch_norm = tuple(units), dropout, batch_norm
        self.blocks = []
        for i, width in enumerate(self.units):
            block = [tf_keras.layers.Dense(width, kernel_initializer=glorot_normal(), name=f"dense_{i}")]
            if batch_norm:
                block.append(tf_keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn_{i}"))
            block.append(tf_keras.layers.ReLU(name=f"relu_{i}"))
            block.append(tf_keras.layers.Dropout(dropout, name=f"dropout_{i}"))
            self.blocks.append(block)

    def call(self, x: tf.Tensor, training: Optional[bool] = None) -> list[tf.Tensor]:
        outputs = []
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(
                    layer, (tf_keras.layers.BatchNormalization, tf_keras.layers.Dropout)) else layer(x)
            outputs.append(x)
        return outputs

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout,
                "batch_norm": self.batch_norm}

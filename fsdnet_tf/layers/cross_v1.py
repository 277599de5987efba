"""DCN's cross network (v1), returning every layer's output (SPEC_WAVE2 §4.2)."""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.towers import glorot_normal


class CrossV1Stack(tf_keras.layers.Layer):
    """x_l = x0 · (w_lᵀ x_{l−1}) + b_l + x_{l−1}, x_0 = x0; returns [x_1, …, x_L], each (B, d0).

    A rank-one interaction per layer: 2·d0 parameters (w_l Glorot normal, b_l zeros).
    """

    input_view = "flat"

    def __init__(self, num_layers: int, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.kernels = [self.add_weight(f"kernel_{i}", shape=[width, 1], initializer=glorot_normal())
                        for i in range(self.num_layers)]
        self.biases = [self.add_weight(f"bias_{i}", shape=[width], initializer="zeros")
                       for i in range(self.num_layers)]

    def call(self, x0: tf.Tensor) -> list[tf.Tensor]:
        outputs, x = [], x0
        for kernel, bias in zip(self.kernels, self.biases):
            x = x0 * tf.matmul(x, kernel) + bias + x
            outputs.append(x)
        return outputs

    @staticmethod
    def summary(outputs: list[tf.Tensor]) -> tf.Tensor:
        return outputs[-1]

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}

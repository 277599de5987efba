"""Batch normalisation of (batch, width) activations, trained through TF's fused kernel."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras
from tf_keras.src.utils import control_flow_util


class FlatBatchNorm(tf_keras.layers.BatchNormalization):
    """Keras' BatchNormalization whose training step on (B, H) inputs is one fused kernel.

    Keras fuses only 4-D and 5-D inputs. On (B, H) it builds the moments and the
    normalisation from separate element-wise ops and differentiates each of them, about
    fifteen passes over the activations per layer. Seen as (B, 1, 1, H) the same
    normalisation is one ``FusedBatchNormV3`` and one gradient kernel, a third of the CPU
    time per 10000 × 400 layer (``benchmarks/step_parts.py``). The moving statistics follow Keras' rule (the biased batch
    variance, ``momentum``); inference, the variables, checkpoints and exports are Keras' own.
    Compiled by XLA (``train.jit_compile``) it keeps Keras' element-wise ops, which XLA fuses
    itself: XLA's own lowering of the fused kernel made a CPU training step 2× slower.
    """

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        if training is not True or not self._fusable(inputs):
            return super().call(inputs, training=training)
        width = inputs.shape[-1]
        empty = tf.zeros([0], self.moving_mean.dtype)
        output, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=tf.reshape(inputs, [-1, 1, 1, width]), scale=self.gamma, offset=self.beta, mean=empty,
            variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True)[:3]
        examples = tf.shape(inputs)[0]
        # The kernel reports the variance with Bessel's correction, n / max(n − 1, 1); Keras
        # averages the biased one.
        n = tf.cast(examples, variance.dtype)
        biased = variance * (tf.maximum(n - 1.0, 1.0) / tf.maximum(n, 1.0))
        self.add_update(lambda: self._assign_moving_average(self.moving_mean, mean, self.momentum, examples))
        self.add_update(lambda: self._assign_moving_average(self.moving_variance, biased, self.momentum, examples))
        return tf.reshape(output, tf.shape(inputs))

    def _fusable(self, inputs: tf.Tensor) -> bool:
        """The plain per-feature case the kernel computes (no renorm, virtual or synchronised
        batches), outside XLA."""
        return (inputs.shape.rank == 2 and self.axis == [1] and self.center and self.scale
                and not (self.renorm or self.virtual_batch_size or self.adjustment or self.synchronized)
                and not control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))

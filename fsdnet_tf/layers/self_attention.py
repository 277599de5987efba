"""AutoInt's multi-head self-attention tower, returning every layer's output (SPEC_WAVE2 §4.4)."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.towers import CountedDropout, glorot_normal


class SelfAttentionTower(tf_keras.layers.Layer):
    """A^l = ReLU(MultiHead(A^{l−1}) + R), A^0 = E (B, F, D); returns [flatten(A^1), …], (B, F·d_att).

    Per head h: softmax(Q_h K_hᵀ) V_h over the fields, **without** 1/√d scaling (AutoInt);
    Q, K, V = A W_q, A W_k, A W_v (no bias), heads split from the last axis and concatenated
    back in order. R = A W_res where the width changes (layer 1 when D ≠ d_att), else A.
    No LayerNorm. Dropout on the attention probabilities (``attention_dropout``).
    """

    input_view = "stacked"

    def __init__(self, num_layers: int, dim: int, heads: int, attention_dropout: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if dim % heads:
            raise ValueError(f"attention width {dim} does not split into {heads} heads")
        self.num_layers, self.dim, self.heads = num_layers, dim, heads
        self.attention_dropout, self.seed = attention_dropout, seed
        self.dropouts = [CountedDropout(attention_dropout, seed=seed * 1000 + 500 + i, name=f"attention_dropout_{i}")
                         for i in range(num_layers)]

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.projections, self.residuals = [], []
        for i in range(self.num_layers):
            self.projections.append([self.add_weight(f"{name}_{i}", shape=[width, self.dim], initializer=glorot_normal())
                                     for name in ("query", "key", "value")])
            self.residuals.append(self.add_weight(f"residual_{i}", shape=[width, self.dim], initializer=glorot_normal())
                                  if width != self.dim else None)
            width = self.dim

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        batch, fields = tf.shape(x)[0], tf.shape(x)[1]
        return tf.transpose(tf.reshape(x, [batch, fields, self.heads, self.dim // self.heads]), [0, 2, 1, 3])

    def call(self, stacked: tf.Tensor, training: Optional[bool] = None) -> list[tf.Tensor]:
        batch, fields = tf.shape(stacked)[0], stacked.shape[1]
        outputs, a = [], stacked
        for (query, key, value), residual, dropout in zip(self.projections, self.residuals, self.dropouts):
            q, k, v = (self._split_heads(tf.einsum("bfi,io->bfo", a, w)) for w in (query, key, value))
            weights = dropout(tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1), training=training)
            attended = tf.reshape(tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]), [batch, fields, self.dim])
            a = tf.nn.relu(attended + (tf.einsum("bfi,io->bfo", a, residual) if residual is not None else a))
            outputs.append(tf.reshape(a, [batch, fields * self.dim]))
        return outputs

    @staticmethod
    def summary(outputs: list[tf.Tensor]) -> tf.Tensor:
        """AutoInt+'s output layer reads the last attention layer."""
        return outputs[-1]

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "dim": self.dim, "heads": self.heads,
                "attention_dropout": self.attention_dropout, "seed": self.seed}

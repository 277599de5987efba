"""TF4CTR's sample-selection embedding (SSEM): each branch's own view of x0 (SPEC_WAVE2 §1.2.1).

``shared`` (x_e = x_h = x0) and ``separate_tables`` (the easy branch reads its own table set)
need no layer; the two routing options are layers here. Both route every sample on its own,
so permuting a batch permutes their outputs.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.towers import DeepTower, glorot_normal


class ScalarGate(tf_keras.layers.Layer):
    """g = σ(Dense(1)(MLP block d0 → ⌊d0/4⌋ (x0))) ∈ (0, 1); x_e = g·x0, x_h = (1 − g)·x0."""

    def __init__(self, width: int, dropout: float, batch_norm: bool, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden = DeepTower((max(1, width // 4),), dropout, batch_norm, seed=seed, name="hidden")
        self.gate = tf_keras.layers.Dense(1, activation="sigmoid", kernel_initializer=glorot_normal(), name="gate")

    def call(self, x0: tf.Tensor, training: Optional[bool] = None) -> tuple[tf.Tensor, tf.Tensor]:
        g = self.gate(self.hidden(x0, training=training)[-1])
        return g * x0, (1.0 - g) * x0


class MMoEBranches(tf_keras.layers.Layer):
    """Two experts (MLP blocks d0 → ⌊d0/2⌋ → d0) and a softmax gate per branch (MLP block
    d0 → ⌊d0/4⌋, Dense(2)); branch t gets Σ_k gate_t[k] · expert_k(x0)."""

    def __init__(self, width: int, dropout: float, batch_norm: bool, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.experts = [DeepTower((max(1, width // 2), width), dropout, batch_norm, seed=seed + 10 * k,
                                  name=f"expert_{k}") for k in range(2)]
        self.gate_hidden = [DeepTower((max(1, width // 4),), dropout, batch_norm, seed=seed + 10 * k + 5,
                                      name=f"gate_hidden_{t}") for t, k in ((0, 2), (1, 3))]
        self.gates = [tf_keras.layers.Dense(2, kernel_initializer=glorot_normal(), name=f"gate_{t}") for t in range(2)]

    def call(self, x0: tf.Tensor, training: Optional[bool] = None) -> tuple[tf.Tensor, tf.Tensor]:
        experts = tf.stack([e(x0, training=training)[-1] for e in self.experts], axis=1)        # (B, 2, d0)
        outputs = []
        for hidden, gate in zip(self.gate_hidden, self.gates):
            weights = tf.nn.softmax(gate(hidden(x0, training=training)[-1]), axis=-1)          # (B, 2)
            outputs.append(tf.reduce_sum(weights[:, :, None] * experts, axis=1))
        return outputs[0], outputs[1]

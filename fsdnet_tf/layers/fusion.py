"""Per-layer fusion of the explicit output c_l and the implicit output h_l (SPEC §1.4, §7)."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.towers import glorot_normal

FUSIONS = ("concat", "hadamard", "add", "attention", "none")


class Fusion(tf_keras.layers.Layer):
    """f = fuse(c, h). P is a Dense(c → H) projection owned by this layer.

    concat    (SC): [c, h] — no parameters (the default)
    hadamard  (HP): [c, h, P(c) ⊙ h]
    add       (PA): [c, h, P(c) + h]
    attention (AD): softmax attention over the candidates {P(c), h} with scores
                    vᵀ tanh(W u + b), added to h as a residual: [c, h + Σ a_i u_i]
    none      (w/o IF): h alone (the explicit tower is not used)
    """

    def __init__(self, kind: str, deep_width: int, **kwargs):
        super().__init__(**kwargs)
        if kind not in FUSIONS:
            raise ValueError(f"fusion {kind!r} is not one of {FUSIONS}")
        self.kind, self.deep_width = kind, deep_width
        self.project: Optional[tf_keras.layers.Dense] = None
        if kind in ("hadamard", "add", "attention"):
            self.project = tf_keras.layers.Dense(deep_width, kernel_initializer=glorot_normal(), name="project")
        if kind == "attention":
            self.score_hidden = tf_keras.layers.Dense(deep_width, activation="tanh",
                                                      kernel_initializer=glorot_normal(), name="score_hidden")
            self.score = tf_keras.layers.Dense(1, use_bias=False, kernel_initializer=glorot_normal(), name="score")

    def call(self, c: Optional[tf.Tensor], h: tf.Tensor) -> tf.Tensor:
        if self.kind == "none":
            return h
        if self.kind == "concat":
            return tf.concat([c, h], axis=-1)
        projected = self.project(c)
        if self.kind == "hadamard":
            return tf.concat([c, h, projected * h], axis=-1)
        if self.kind == "add":
            return tf.concat([c, h, projected + h], axis=-1)
        candidates = tf.stack([projected, h], axis=1)                       # (B, 2, H)
        weights = tf.nn.softmax(self.score(self.score_hidden(candidates)), axis=1)  # (B, 2, 1)
        return tf.concat([c, h + tf.reduce_sum(weights * candidates, axis=1)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "deep_width": self.deep_width}

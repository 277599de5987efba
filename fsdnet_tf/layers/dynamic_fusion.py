"""TF4CTR's dynamic fusion module (DFM): the final logit from the two branches (SPEC_WAVE2 §1.2.4)."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.towers import glorot_normal

DFM_KINDS = ("sum", "wsf", "cf", "moef", "vf")
GUMBEL_TEMPERATURE = 0.8


class DynamicFusion(tf_keras.layers.Layer):
    """z from the branch outputs h_e, h_h and their auxiliary logits z_e, z_h (float32).

    sum   z = z_e + z_h
    wsf   z = w1·z_e + w2·z_h, trainable scalars, init 0.5 each, unconstrained
    cf    z = Dense(1)([h_e; h_h])                       (z_e, z_h unused)
    moef  u = [h_e; h_h], z = Σ_k softmax(Dense(2)(u))_k · Dense(2)(u)_k   (z_e, z_h unused)
    vf    π = [Dense(1)(h_e), Dense(1)(h_h)]; p = softmax((π + G)/τ) with Gumbel noise G in
          training, softmax(π/τ) at inference (deterministic); z = p1·z_e + p2·z_h. The noise
          is drawn from (seed, call count), the count checkpointed, so a resumed run draws the same.
    """

    def __init__(self, kind: str, seed: int = 0, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        if kind not in DFM_KINDS:
            raise ValueError(f"dfm {kind!r} is not one of {DFM_KINDS}")
        self.kind, self.seed = kind, seed
        dense = lambda units, name: tf_keras.layers.Dense(units, kernel_initializer=glorot_normal(),  # noqa: E731
                                                          dtype="float32", name=name)
        if kind == "cf":
            self.combine = dense(1, "combine")
        elif kind == "moef":
            self.gate, self.experts = dense(2, "gate"), dense(2, "experts")
        elif kind == "vf":
            self.score_easy, self.score_hard = dense(1, "score_easy"), dense(1, "score_hard")

    @property
    def reads_branch_logits(self) -> bool:
        return self.kind in ("sum", "wsf", "vf")

    def build(self, input_shape):
        if self.kind == "wsf":
            self.weights_easy_hard = self.add_weight("weights", shape=[2], initializer=tf_keras.initializers.Constant(0.5))
        if self.kind == "vf":
            self.calls = self.add_weight("calls", shape=[], dtype=tf.int64, trainable=False, initializer="zeros",
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def call(self, branches: tuple, training: Optional[bool] = None) -> tf.Tensor:
        h_easy, h_hard, z_easy, z_hard = branches
        if self.kind == "sum":
            return z_easy + z_hard
        if self.kind == "wsf":
            return self.weights_easy_hard[0] * z_easy + self.weights_easy_hard[1] * z_hard
        u = tf.concat([tf.cast(h_easy, tf.float32), tf.cast(h_hard, tf.float32)], axis=-1)
        if self.kind == "cf":
            return tf.squeeze(self.combine(u), axis=-1)
        if self.kind == "moef":
            return tf.reduce_sum(tf.nn.softmax(self.gate(u), axis=-1) * self.experts(u), axis=-1)
        scores = tf.concat([self.score_easy(h_easy), self.score_hard(h_hard)], axis=-1)      # (B, 2)
        if training:
            seed = tf.stack([tf.constant(self.seed, tf.int64), self.calls])
            self.calls.assign_add(1)
            uniform = tf.random.stateless_uniform(tf.shape(scores), seed=seed, minval=1e-20, maxval=1.0)
            scores = scores - tf.math.log(-tf.math.log(uniform))
        p = tf.nn.softmax(scores / GUMBEL_TEMPERATURE, axis=-1)
        return p[:, 0] * z_easy + p[:, 1] * z_hard

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "seed": self.seed}

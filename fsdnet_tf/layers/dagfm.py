"""DAGFM: field interactions along a DAG over the fields (SPEC_WAVE2 §2.3).

Edges run from field f to field s for f ≤ s (every node has a self-loop), so layer t holds
every multiset of t + 1 fields exactly once, each with its own factorised weight; h^(t) is
homogeneous of degree t + 1 in the embeddings. Computed in float32 whatever the policy:
r^(t) scales as ‖E‖^(t+1), which float16 would flush to zero.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

KINDS = ("inner", "outer")


def dag_mask(fields: int) -> np.ndarray:
    """M[f, s] = 1 iff f ≤ s: the upper triangle with the diagonal."""
    return np.triu(np.ones((fields, fields), np.float32))


class DAGFM(tf_keras.layers.Layer):
    """E (B, F, D) → (logit (B,), states [h^(0), …, h^(L)] each (F, D, B), batch-last).

    h^(0) = C·E with C initialised to the identity; inner: a_s = Σ_f M[f,s] P_t[f,s] ⊙ h_f;
    outer: a_s = Σ_f M[f,s] ⟨P_t[f,s], h_f⟩ Q_t[f,s]; h_s^(t) = h_s^(0) ⊙ a_s; the logit is a
    Dense over the per-layer sums r^(t) = Σ_d h^(t).
    """

    def __init__(self, kind: str, depth: int, readout: bool = True, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        if kind not in KINDS:
            raise ValueError(f"DAGFM kind {kind!r} is not one of {KINDS}")
        self.kind, self.depth, self.with_readout = kind, depth, readout

    def build(self, input_shape):
        fields, dim = int(input_shape[1]), int(input_shape[2])
        self.fields, self.dim = fields, dim
        self.mask = tf.constant(dag_mask(fields)[:, :, None])
        # torch's Xavier-normal (gain 1.414) on an (F, F, D) tensor; Keras would compute 3-D fans differently.
        std = 1.414 / math.sqrt(fields * dim)

        def edges(name: str) -> list[tf.Variable]:
            # One initializer per tensor: an unseeded Keras initializer repeats its values.
            return [self.add_weight(f"{name}_{t}", (fields, fields, dim),
                                    initializer=tf_keras.initializers.RandomNormal(0.0, std))
                    for t in range(1, self.depth + 1)]
        self.connect = self.add_weight("connect", (fields, fields), initializer="identity")
        self.p = edges("p")
        self.q = edges("q") if self.kind == "outer" else []
        if self.with_readout:
            bound = 1.0 / math.sqrt(fields * (self.depth + 1))   # PyTorch's default Linear init
            self.readout = tf_keras.layers.Dense(1, kernel_initializer=tf_keras.initializers.RandomUniform(-bound, bound),
                                                 bias_initializer=tf_keras.initializers.RandomUniform(-bound, bound),
                                                 dtype="float32", name="readout")
            self.readout.build((None, fields * (self.depth + 1)))
        super().build(input_shape)

    def states(self, stacked: tf.Tensor) -> list[tf.Tensor]:
        """[h^(0), …, h^(L)], each (F, D, B): fields first so that every contraction is a
        matmul batched over fields, the batch last so that each is a (small × small) by
        (small × B) product and the one reordering per layer moves whole rows of B; (F, B, D)
        states needed an element-by-element transpose of the (F, B, S) scores, and einsums over
        (B, F, D) transposed every operand."""
        stacked = tf.cast(stacked, tf.float32)
        fields, dim = self.fields, self.dim
        by_field = tf.reshape(tf.transpose(stacked, [1, 2, 0]), [fields, -1])            # (F, D·B)
        h0 = tf.reshape(tf.matmul(self.connect, by_field), [fields, dim, -1])         # h0_s = Σ_f C[s,f] E_f
        states, h = [h0], h0
        for t in range(self.depth):
            p = self.p[t] * self.mask                                                    # (F, S, D)
            if self.kind == "inner":
                a = tf.einsum("fsd,fdb->sdb", p, h)
            else:
                scores = tf.matmul(p, h)                                                 # (F, S, B): ⟨P[f,s], h_f⟩
                # a_s = Σ_f scores[f, s] Q[f, s]: batched over s
                a = tf.matmul(tf.transpose(self.q[t], [1, 2, 0]), tf.transpose(scores, [1, 0, 2]))  # (S, D, B)
            h = h0 * a
            states.append(h)
        return states

    def layer_sums(self, states: list[tf.Tensor]) -> list[tf.Tensor]:
        """r^(t) = Σ_d h^(t), each (B, F), from the batch-last states."""
        return [tf.transpose(tf.reduce_sum(h, axis=1)) for h in states]

    def call(self, stacked: tf.Tensor) -> tuple[Optional[tf.Tensor], list[tf.Tensor]]:
        """(logit, batch-last states); the logit is None for a layer built without its readout (KD-DAGFM+)."""
        states = self.states(stacked)
        if not self.with_readout:
            return None, states
        # [r^(0), …, r^(L)] side by side, (B, F·(L+1)), with one transpose of the sums
        sums = tf.transpose(tf.concat([tf.reduce_sum(h, axis=1) for h in states], axis=0))
        return tf.squeeze(self.readout(sums), axis=-1), states

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "depth": self.depth, "readout": self.with_readout}


def interaction_multiply_adds(kind: str, depth: int, fields: int, dim: int) -> int:
    """Per-example multiply-adds of the interaction part, dense as computed (SPEC_WAVE2 §2.8)."""
    return (1 if kind == "inner" else 2) * depth * fields * fields * dim

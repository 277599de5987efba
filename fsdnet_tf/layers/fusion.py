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

    def parts(self, c: Optional[tf.Tensor], h: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The pieces whose concatenation is f: heads and the hint read them without the concat."""
        if self.kind == "none":
            return (h,)
        if self.kind == "concat":
            return (c, h)
        projected = self.project(c)
        if self.kind == "hadamard":
            return (c, h, projected * h)
        if self.kind == "add":
            return (c, h, projected + h)
        candidates = tf.stack([projected, h], axis=1)                       # (B, 2, H)
        weights = tf.nn.softmax(self.score(self.score_hidden(candidates)), axis=1)  # (B, 2, 1)
        return (c, h + tf.reduce_sum(weights * candidates, axis=1))

    def call(self, c: Optional[tf.Tensor], h: tf.Tensor, as_parts: bool = False):
        """f, or with ``as_parts`` the tuple of pieces whose concatenation is f."""
        parts = self.parts(c, h)
        return parts if as_parts else concatenate(parts)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "deep_width": self.deep_width}


def concatenate(parts: tuple[tf.Tensor, ...]) -> tf.Tensor:
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)


class PartsLogit(tf_keras.layers.Layer):
    """Dense(1) on the concatenation of its inputs, computed part by part: Σ_i x_i·w_i + b.

    Never materialises the (B × width) concatenation, nor slices its gradient apart
    (on FSDNet's three heads that copying was a tenth of the training step). Its variables
    are a Dense layer's (``kernel`` (width, 1), ``bias`` (1,)), so checkpoints are unchanged.
    Computes in float32 so that mixed precision never rounds the logit. The gradient of each
    part is the outer product of the upstream gradient and the part's kernel, formed by a
    broadcast multiply: autodiff ran it as a (B × 1)·(1 × width) matmul, which oneDNN runs
    about twice as slowly for the same products.
    """

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)

    def build(self, input_shape):
        width = sum(int(shape[-1]) for shape in input_shape)
        self.kernel = self.add_weight("kernel", shape=[width, 1], initializer=glorot_normal())
        self.bias = self.add_weight("bias", shape=[1], initializer="zeros")

    def call(self, parts: tuple[tf.Tensor, ...]) -> tf.Tensor:
        """(B,) logits."""
        return _parts_logit(tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.bias), *parts)


@tf.custom_gradient
def _parts_logit(kernel: tf.Tensor, bias: tf.Tensor, *parts: tf.Tensor):
    kernels = tf.split(kernel, [int(x.shape[-1]) for x in parts], axis=0)
    logit = tf.add_n([tf.matmul(x, w) for x, w in zip(parts, kernels, strict=True)])

    def gradient(upstream):
        column = upstream[:, None]
        kernel_gradient = tf.concat([tf.matmul(x, column, transpose_a=True) for x in parts], axis=0)
        return ([kernel_gradient, tf.reduce_sum(upstream, axis=0, keepdims=True)]
                + [column * tf.transpose(w) for w in kernels])
    return tf.squeeze(tf.nn.bias_add(logit, bias), axis=-1), gradient

"""Per-field embedding tables (SPEC §1.1)."""
from __future__ import annotations

import tensorflow as tf
import tf_keras


class FieldEmbedding(tf_keras.layers.Layer):
    """One table (vocab_f × dim) per field; looks every field up and concatenates → (B, F·dim).

    Tables start at normal(0, ``stddev``; 1e-4 as SPEC §1.1, OptFusion's 0.01) and carry an L2
    penalty (l2/2)·Σ‖E‖², which is the reference's per-step embedding regulariser with factor ``l2``.
    """

    def __init__(self, fields: tuple[str, ...], vocab_sizes: dict[str, int], dim: int, l2: float,
                 stddev: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        missing = [f for f in fields if f not in vocab_sizes]
        if missing:
            raise ValueError(f"no vocabulary size for field {missing[0]!r}")
        self.fields, self.vocab_sizes, self.dim, self.l2, self.stddev = tuple(fields), dict(vocab_sizes), dim, l2, stddev
        regularizer = tf_keras.regularizers.L2(l2 / 2.0) if l2 > 0 else None
        self.tables = [
            tf_keras.layers.Embedding(
                vocab_sizes[f], dim, name=f"embedding_{f}",
                embeddings_initializer=tf_keras.initializers.RandomNormal(0.0, stddev),
                embeddings_regularizer=regularizer)
            for f in self.fields]

    def call(self, features: dict) -> tf.Tensor:
        """The flat view x0, (B, F·dim)."""
        return tf.concat(self.lookups(features), axis=-1)

    def lookups(self, features: dict) -> list[tf.Tensor]:
        return [table(features[f]) for f, table in zip(self.fields, self.tables)]

    def stacked(self, features: dict) -> tf.Tensor:
        """The stacked view E, (B, F, dim), fields in contract order."""
        return tf.stack(self.lookups(features), axis=1)

    def get_config(self):
        return {**super().get_config(), "fields": self.fields, "vocab_sizes": self.vocab_sizes,
                "dim": self.dim, "l2": self.l2, "stddev": self.stddev}

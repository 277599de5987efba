"""FSDNet and its DCNv2 baseline: one parallel cross + deep model, two head layouts.

FSDNet (SPEC §1): a head on the fused vector of every layer; the prediction ŷ is the
mean of the heads' probabilities. DCNv2 (SPEC §4): the same embedding and towers with
one head on concat(c_L, h_L) — the same class with ``type: dcnv2``, not a copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ModelConfig, to_dict
from fsdnet_tf.layers import CrossStack, DeepTower, FieldEmbedding, Fusion, glorot_normal


@dataclass
class TrainingOutputs:
    logits: list   # one (B,) logit per head; the last head is the teacher
    fused: list    # the fused vector each head reads, (B, d)


class ParallelCTRModel(tf_keras.Model):
    """``call`` returns only ŷ (B,); ``training_outputs`` returns what the loss needs."""

    def __init__(self, cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int],
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.fields, self.vocab_sizes, self.seed = cfg, tuple(fields), dict(vocab_sizes), seed
        self.embedding = FieldEmbedding(self.fields, vocab_sizes, cfg.embedding_dim, cfg.embedding_l2,
                                        name="embedding")
        self.cross = (CrossStack(cfg.cross_layers, cfg.projection_dim, name="cross")
                      if cfg.fusion != "none" else None)
        self.deep = DeepTower(cfg.deep_units, cfg.dropout, cfg.batch_norm, seed=seed, name="deep")
        self.head_layers = [cfg.num_layers - 1] if cfg.type == "dcnv2" else list(range(cfg.num_layers))
        self.fusions = [Fusion(cfg.fusion, cfg.deep_units[0], name=f"fusion_{l}") for l in self.head_layers]
        # Heads compute in float32 so that mixed precision never rounds the logits.
        self.heads = [tf_keras.layers.Dense(1, kernel_initializer=glorot_normal(), dtype="float32",
                                            name=f"head_{l}") for l in self.head_layers]

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    def training_outputs(self, features: dict, training: Optional[bool] = None) -> TrainingOutputs:
        x0 = self.embedding(features)
        crossed = self.cross(x0) if self.cross is not None else None
        deep = self.deep(x0, training=training)
        logits, fused = [], []
        for layer, fusion, head in zip(self.head_layers, self.fusions, self.heads):
            f = fusion(crossed[layer] if crossed is not None else None, deep[layer])
            fused.append(f)
            logits.append(tf.squeeze(head(f), axis=-1))
        return TrainingOutputs(logits, fused)

    def head_probabilities(self, features: dict, training: Optional[bool] = None) -> tf.Tensor:
        """(B, heads) probabilities, teacher last."""
        return tf.sigmoid(tf.stack(self.training_outputs(features, training).logits, axis=-1))

    def call(self, features: dict, training: Optional[bool] = None) -> tf.Tensor:
        return tf.reduce_mean(self.head_probabilities(features, training), axis=-1)

    def get_config(self):
        return {"cfg": to_dict(self.cfg), "fields": self.fields, "vocab_sizes": self.vocab_sizes, "seed": self.seed}


def build_model(cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int],
                seed: int = 0) -> ParallelCTRModel:
    """Build and create the variables (one dummy batch in inference mode)."""
    model = ParallelCTRModel(cfg, fields, vocab_sizes, seed=seed, name=cfg.type)
    model({f: tf.zeros([1], tf.int64) for f in fields}, training=False)
    return model

"""The parallel CTR model: field embedding → branch inputs → explicit tower ∥ deep tower → readout.

FSDNet, DCNv2, DCN, xDeepFM, AutoInt+, their FSD versions and TF4CTR are configurations of
this one class (:mod:`fsdnet_tf.presets`): ``model.type`` picks the explicit tower, the
readout and, for TF4CTR, each branch's input (SSEM). ``named_outputs`` returns every named
logit, representation and servable probability; ``call`` returns the served prediction ŷ.
Built ``for_serving``, the model leaves out the auxiliary heads the served ŷ does not read.

Attribute names are part of the checkpoint format (``embedding``, ``cross``, ``deep``,
``fusions``, ``heads``): checkpoints written before the towers became pluggable restore.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ModelConfig, to_dict
from fsdnet_tf.layers import (CINTower, CrossStack, CrossV1Stack, DeepTower, FieldEmbedding, Fusion,
                              SelfAttentionTower, glorot_normal)
from fsdnet_tf.layers.branch_inputs import MMoEBranches, ScalarGate
from fsdnet_tf.layers.dynamic_fusion import DynamicFusion
from fsdnet_tf.layers.fusion import PartsLogit, concatenate
from fsdnet_tf.presets import head_names, prediction_heads

# The model attribute each explicit tower lives under (its checkpoint path).
TOWER_ATTRIBUTES = {"cross_v2": "cross", "cross_v1": "cross", "cin": "cin", "self_attention": "attention",
                    "mlp": "easy"}
EASY_SEED_OFFSET = 7919     # the easy MLP's dropout masks differ from the deep tower's


@dataclass
class ModelOutputs:
    logits: dict          # head name → (B,) float32 logit, in head order (the teacher last)
    reps: dict            # "explicit/l", "implicit/l", "fused/l" → (B, width)
    prediction: tf.Tensor  # the served probability ŷ (B,)
    alternatives: dict    # other servable probabilities by name, e.g. "teacher_head"
    # "fused/l" → the pieces whose concatenation is reps["fused/l"]: the hint reads them, so a
    # training step never builds the concatenation (unread in a graph, it is pruned).
    fused_parts: dict = field(default_factory=dict)


@dataclass
class TrainingOutputs:
    logits: list   # one (B,) logit per head; the last head is the teacher
    fused: list    # the fused vector each head reads, (B, d)


def build_explicit_tower(cfg: ModelConfig, seed: int) -> tf_keras.layers.Layer:
    kind, name = cfg.tower_kind, TOWER_ATTRIBUTES[cfg.tower_kind]
    if kind == "cross_v2":
        return CrossStack(cfg.cross_layers, cfg.projection_dim, name=name)
    if kind == "cross_v1":
        return CrossV1Stack(cfg.cross_layers, name=name)
    if kind == "cin":
        return CINTower(cfg.cin.units, name=name)
    if kind == "mlp":
        return DeepTower(cfg.tf4ctr.easy_units, cfg.dropout, cfg.batch_norm, seed=seed + EASY_SEED_OFFSET, name=name)
    a = cfg.attention
    return SelfAttentionTower(a.layers, a.dim, a.heads, a.attention_dropout, seed=seed, name=name)


def _output_logit(name: str) -> tf_keras.layers.Dense:
    # Heads compute in float32 so that mixed precision never rounds the logits.
    return tf_keras.layers.Dense(1, kernel_initializer=glorot_normal(), dtype="float32", name=name)


def build_branch_inputs(cfg: ModelConfig, fields: int, seed: int) -> Optional[tf_keras.layers.Layer]:
    kind, width = cfg.tf4ctr.ssem, fields * cfg.embedding_dim
    if kind == "scalar_gate":
        return ScalarGate(width, cfg.dropout, cfg.batch_norm, seed=seed + 101, name="ssem")
    if kind == "mmoe":
        return MMoEBranches(width, cfg.dropout, cfg.batch_norm, seed=seed + 101, name="ssem")
    return None


class ParallelCTRModel(tf_keras.Model):
    def __init__(self, cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int],
                 seed: int = 0, for_serving: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.fields, self.vocab_sizes, self.seed = cfg, tuple(fields), dict(vocab_sizes), seed
        self.readout = cfg.readout_kind
        self.head_names, self.prediction_heads = head_names(cfg), prediction_heads(cfg)
        self.ssem = cfg.tf4ctr.ssem if cfg.twin_focus else "shared"
        self.embedding = FieldEmbedding(self.fields, vocab_sizes, cfg.embedding_dim, cfg.embedding_l2,
                                        name="embedding")
        if self.ssem == "separate_tables":
            self.easy_embedding = FieldEmbedding(self.fields, vocab_sizes, cfg.embedding_dim // 2, cfg.embedding_l2,
                                                 name="embedding_easy")
        elif self.ssem != "shared":
            self.branch_inputs = build_branch_inputs(cfg, len(self.fields), seed)
        if self.readout == "sum_of_logits":
            # The LR term: a width-1 table per field, inside the embedding regulariser, no bias.
            self.linear = FieldEmbedding(self.fields, vocab_sizes, 1, cfg.embedding_l2, name="linear")
        self.explicit_attribute = TOWER_ATTRIBUTES[cfg.tower_kind]
        setattr(self, self.explicit_attribute, build_explicit_tower(cfg, seed) if cfg.fusion != "none" else None)
        self.deep = DeepTower(cfg.deep_units, cfg.dropout, cfg.batch_norm, seed=seed, name="deep")
        layers = cfg.num_layers
        self.head_layers = {"per_layer_heads": list(range(layers)), "final_concat": [layers - 1],
                            "sum_of_logits": [], "twin_heads": []}[self.readout]
        self.fusions = [Fusion(cfg.fusion, cfg.deep_units[0], name=f"fusion_{l}") for l in self.head_layers]
        self.heads = [PartsLogit(name=f"head_{l}") for l in self.head_layers]
        if self.readout == "sum_of_logits":
            self.explicit_logit, self.deep_logit = _output_logit("explicit_logit"), _output_logit("deep_logit")
        if self.readout == "twin_heads":
            self.dfm = DynamicFusion(cfg.tf4ctr.dfm, seed=seed + 202, name="dfm")
        # The easy and hard heads train the branches; the served ŷ reads them only through sum, wsf, vf.
        self.auxiliary_heads = cfg.twin_focus and not (
            for_serving and not (self.readout == "twin_heads" and self.dfm.reads_branch_logits))
        if self.auxiliary_heads:
            self.easy_head, self.hard_head = _output_logit("easy_head"), _output_logit("hard_head")

    @property
    def explicit_tower(self) -> Optional[tf_keras.layers.Layer]:
        return getattr(self, self.explicit_attribute)

    @property
    def num_heads(self) -> int:
        return len(self.head_names)

    def _branch_views(self, features: dict, training: Optional[bool]) -> tuple[tf.Tensor, tf.Tensor]:
        """(x_easy, x_hard): the explicit tower's and the deep tower's inputs, flat."""
        x0 = self.embedding(features)
        if self.ssem == "shared":
            return x0, x0
        if self.ssem == "separate_tables":
            return self.easy_embedding(features), x0
        return self.branch_inputs(x0, training=training)

    def named_outputs(self, features: dict, training: Optional[bool] = None) -> ModelOutputs:
        x_easy, x_hard = self._branch_views(features, training)
        tower = self.explicit_tower
        explicit = None
        if tower is not None:
            view = (tf.reshape(x_easy, [-1, len(self.fields), x_easy.shape[-1] // len(self.fields)])
                    if tower.input_view == "stacked" else x_easy)
            explicit = (tower(view, training=training) if isinstance(tower, (SelfAttentionTower, DeepTower))
                        else tower(view))
        deep = self.deep(x_hard, training=training)
        reps, fused_parts = {f"implicit/{l}": h for l, h in enumerate(deep)}, {}
        reps.update({f"explicit/{l}": e for l, e in enumerate(explicit or [])})
        if self.readout == "sum_of_logits":
            linear = tf.reduce_sum(tf.cast(self.linear(features), tf.float32), axis=-1)
            final = (linear + tf.squeeze(self.explicit_logit(tower.summary(explicit)), axis=-1)
                     + tf.squeeze(self.deep_logit(deep[-1]), axis=-1))
            logits = {"final": final}
        elif self.readout == "twin_heads":
            logits = {}
        else:
            logits = {}
            for name, layer, fusion, head in zip(self.prediction_heads, self.head_layers, self.fusions, self.heads,
                                                 strict=True):
                parts = fusion(explicit[layer] if explicit is not None else None, deep[layer], as_parts=True)
                reps[f"fused/{layer}"], fused_parts[f"fused/{layer}"] = concatenate(parts), parts
                logits[name] = head(parts)
        branch_logits = (None, None)
        if self.auxiliary_heads:
            branch_logits = (tf.squeeze(self.easy_head(explicit[-1]), axis=-1),
                             tf.squeeze(self.hard_head(deep[-1]), axis=-1))
        if self.readout == "twin_heads":
            logits["final"] = self.dfm((explicit[-1], deep[-1], *branch_logits), training=training)
        if self.auxiliary_heads:
            logits.update(easy=branch_logits[0], hard=branch_logits[1])
        probabilities = tf.sigmoid(tf.stack([logits[name] for name in self.prediction_heads], axis=-1))
        # From the deepest logit alone, so a teacher-head export computes none of the other heads.
        alternatives = ({"teacher_head": tf.sigmoid(logits[self.prediction_heads[-1]])}
                        if self.readout == "per_layer_heads" else {})
        return ModelOutputs(logits, reps, tf.reduce_mean(probabilities, axis=-1), alternatives, fused_parts)

    def training_outputs(self, features: dict, training: Optional[bool] = None) -> TrainingOutputs:
        """The FSD view: head logits in order and the fused vector each head reads."""
        out = self.named_outputs(features, training)
        return TrainingOutputs([out.logits[name] for name in self.prediction_heads],
                               [out.reps[f"fused/{l}"] for l in self.head_layers])

    def head_probabilities(self, features: dict, training: Optional[bool] = None) -> tf.Tensor:
        """(B, heads) probabilities in ``head_names`` order (for per-layer heads the teacher is at L − 1)."""
        logits = self.named_outputs(features, training).logits
        return tf.sigmoid(tf.stack([logits[name] for name in self.head_names], axis=-1))

    def call(self, features: dict, training: Optional[bool] = None) -> tf.Tensor:
        return self.named_outputs(features, training).prediction

    def get_config(self):
        return {"cfg": to_dict(self.cfg), "fields": self.fields, "vocab_sizes": self.vocab_sizes, "seed": self.seed}


def count_parameters(model: tf_keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def build_model(cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int],
                seed: int = 0, for_serving: bool = False) -> ParallelCTRModel:
    """Build and create the variables (one dummy batch in inference mode)."""
    model = ParallelCTRModel(cfg, fields, vocab_sizes, seed=seed, for_serving=for_serving, name=cfg.type)
    model({f: tf.zeros([1], tf.int64) for f in fields}, training=False)
    return model

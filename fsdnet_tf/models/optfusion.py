"""The OptFusion model: field embedding → OptFusion's block graph → one logit (SPEC_WAVE2 §3).

It offers the interface the trainer, the evaluator and the export use for every model
(``fields``, ``head_names``, ``named_outputs``), with one head, ``final``. Built without an
architecture it is the search supernet and holds the architecture variables; built from a
derived :class:`~fsdnet_tf.models.architecture.Architecture` it is the re-trained network,
with no architecture variable and only the blocks and operations the output uses. Attribute
paths are shared, so the derived network restores from a supernet checkpoint.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ConfigError, ModelConfig, to_dict
from fsdnet_tf.layers import FieldEmbedding
from fsdnet_tf.layers.optfusion import OptFusionNetwork
from fsdnet_tf.models.architecture import Architecture
from fsdnet_tf.models.parallel import ModelOutputs

OUTPUT_HEAD = "final"


def block_width(cfg: ModelConfig, width: int) -> int:
    """The Dense blocks' width; refuses one unequal to d0 unless the adapter is asked for."""
    o = cfg.optfusion
    if o.block_width is None or o.block_width == width:
        return width
    if o.width_adapter == "reject":
        raise ConfigError(f"model.optfusion.block_width: {o.block_width} differs from d0 = {width} (fields × "
                          "model.embedding_dim); add, product and attention need equal widths — set it to null, "
                          "or model.optfusion.width_adapter=project for a linear adapter back to d0")
    return o.block_width


class OptFusionModel(tf_keras.Model):
    readout = "output_block"
    head_names = prediction_heads = (OUTPUT_HEAD,)

    def __init__(self, cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int], seed: int = 0,
                 architecture: Optional[Architecture] = None, **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.fields, self.vocab_sizes, self.seed = cfg, tuple(fields), dict(vocab_sizes), seed
        o = cfg.optfusion
        width = len(self.fields) * cfg.embedding_dim
        if architecture is not None and (architecture.layers, architecture.width) != (cfg.cross_layers, width):
            raise ConfigError(f"model.cross_layers / model.embedding_dim: the architecture has {architecture.layers} "
                              f"layers of width {architecture.width}, this config {cfg.cross_layers} of {width}")
        self.architecture = architecture
        self.embedding = FieldEmbedding(self.fields, vocab_sizes, cfg.embedding_dim, cfg.embedding_l2,
                                        stddev=o.emb_std, name="embedding")
        self.network = OptFusionNetwork(cfg.cross_layers, width, block_width(cfg, width), o.product,
                                        o.init_constant, architecture, batch_norm=o.batch_norm, dropout=o.dropout,
                                        seed=seed, name="network")

    @property
    def architecture_variables(self) -> list[tf.Variable]:
        return self.network.architecture_variables

    @property
    def network_variables(self) -> list[tf.Variable]:
        """Everything trained by the network optimiser: all but the architecture variables."""
        arch = {id(v) for v in self.architecture_variables}
        return [v for v in self.trainable_variables if id(v) not in arch]

    def named_outputs(self, features: dict, training: Optional[bool] = None) -> ModelOutputs:
        logit, reps = self.network(self.embedding(features), training=training)
        return ModelOutputs({OUTPUT_HEAD: logit}, reps, tf.sigmoid(logit), {})

    def call(self, features: dict, training: Optional[bool] = None) -> tf.Tensor:
        return self.named_outputs(features, training).prediction

    def get_config(self):
        return {"cfg": to_dict(self.cfg), "fields": self.fields, "vocab_sizes": self.vocab_sizes, "seed": self.seed}


def build_optfusion(cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int], seed: int = 0,
                    architecture: Optional[Architecture] = None) -> OptFusionModel:
    """Build and create the variables (one dummy batch in inference mode)."""
    model = OptFusionModel(cfg, fields, vocab_sizes, seed=seed, architecture=architecture, name="optfusion")
    model({f: tf.zeros([1], tf.int64) for f in fields}, training=False)
    return model

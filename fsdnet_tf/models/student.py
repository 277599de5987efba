"""The KD-DAGFM student: the teacher's embedding → DAGFM → one logit (SPEC_WAVE2 §2.3–2.4).

It offers the interface the trainer and the export use for every model (``fields``,
``head_names``, ``named_outputs``), with one head, ``student``. Its ``embedding`` is the
teacher's own layer during distillation (one set of variables) and its own when restored
for serving, where no teacher variable exists.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ModelConfig, to_dict
from fsdnet_tf.layers import DeepTower, FieldEmbedding, glorot_normal
from fsdnet_tf.layers.dagfm import DAGFM, interaction_multiply_adds
from fsdnet_tf.models.parallel import ModelOutputs

STUDENT_HEAD = "student"


class DAGFMStudent(tf_keras.Model):
    readout = STUDENT_HEAD
    head_names = prediction_heads = (STUDENT_HEAD,)

    def __init__(self, cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int], seed: int = 0,
                 embedding: Optional[FieldEmbedding] = None, **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.fields, self.vocab_sizes, self.seed = cfg, tuple(fields), dict(vocab_sizes), seed
        d = cfg.dagfm
        # The L2 of the distill and finetune phases covers their trainable variables; the table
        # carries no regulariser of its own (a shared teacher table keeps the teacher's, unused here).
        self.embedding = embedding or FieldEmbedding(self.fields, vocab_sizes, cfg.embedding_dim, 0.0,
                                                     name="embedding")
        self.dagfm = DAGFM(d.kind, d.depth, readout=not d.deep, name="dagfm")
        if d.deep:
            self.deep = DeepTower(cfg.deep_units, cfg.dropout, cfg.batch_norm, seed=seed, name="deep")
            self.deep_logit = tf_keras.layers.Dense(1, kernel_initializer=glorot_normal(), dtype="float32",
                                                    name="deep_logit")

    @property
    def student_variables(self) -> list[tf.Variable]:
        """Everything but the embedding: what the distill phase trains."""
        embedding = {id(v) for v in self.embedding.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in embedding]

    def student_logit(self, stacked: tf.Tensor, training: Optional[bool] = None) -> tuple[tf.Tensor, list]:
        """The logit and the DAGFM states, batch-last (F, D, B)."""
        logit, states = self.dagfm(stacked)
        if self.cfg.dagfm.deep:
            summed = tf.transpose(tf.add_n(states), [2, 0, 1])                           # (B, F, D)
            deep = self.deep(tf.reshape(summed, [-1, summed.shape[1] * summed.shape[2]]), training=training)
            logit = tf.squeeze(self.deep_logit(deep[-1]), axis=-1)
        return logit, states

    def named_outputs(self, features: dict, training: Optional[bool] = None,
                      freeze_embedding: bool = False) -> ModelOutputs:
        flat = self.embedding(features)
        stacked = tf.reshape(flat, [-1, len(self.fields), flat.shape[-1] // len(self.fields)])
        if freeze_embedding:
            stacked = tf.stop_gradient(stacked)
        logit, states = self.student_logit(stacked, training)
        reps = {f"dagfm/{t}": r for t, r in enumerate(self.dagfm.layer_sums(states))}
        return ModelOutputs({STUDENT_HEAD: logit}, reps, tf.sigmoid(logit), {})

    def call(self, features: dict, training: Optional[bool] = None) -> tf.Tensor:
        return self.named_outputs(features, training).prediction

    def interaction_multiply_adds(self) -> int:
        d = self.cfg.dagfm
        return interaction_multiply_adds(d.kind, d.depth, len(self.fields), self.cfg.embedding_dim)

    def get_config(self):
        return {"cfg": to_dict(self.cfg), "fields": self.fields, "vocab_sizes": self.vocab_sizes, "seed": self.seed}


def build_student(cfg: ModelConfig, fields: tuple[str, ...], vocab_sizes: dict[str, int], seed: int = 0,
                  embedding: Optional[FieldEmbedding] = None) -> DAGFMStudent:
    """Build and create the variables (one dummy batch in inference mode)."""
    model = DAGFMStudent(cfg, fields, vocab_sizes, seed=seed, embedding=embedding, name="kd_dagfm")
    model({f: tf.zeros([1], tf.int64) for f in fields}, training=False)
    return model

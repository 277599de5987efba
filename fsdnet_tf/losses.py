"""The self-distillation losses of SPEC §2, as pure functions plus the task that combines them.

Every function returns *per-example* values (shape (B,)) so that the caller can
average over the global batch under a distribution strategy.

Notation: z_l are head logits (B,), z_L the teacher (deepest head), T the temperature,
σ the sigmoid, logσ the log-sigmoid.

- BCE per head:      bce_l = −[y log σ(z_l) + (1 − y) log(1 − σ(z_l))]
- Bernoulli KL:      KL_l = q_T (log q_T − log q_l) + (1 − q_T)(log(1 − q_T) − log(1 − q_l)),
                     q = σ(z/T), log q = logσ(z/T), log(1 − q) = logσ(−z/T)
- Reference KD:      as KL_l but the negative class uses n = σ(1 − z/T) in place of 1 − σ(z/T):
                     q_T (log q_T − log q_l) + n_T (log n_T − log n_l)   (the authors' code)
- Hint:              hint_l = mean over features of (f_L − f_l)²
- Total (full):      α Σ_l BCE_l + (1 − α) Σ_{l<L} KL_l + β Σ_{l<L} hint_l
  no_soft_labels:    Σ_l BCE_l + β Σ_{l<L} hint_l
  no_hint:           α Σ_l BCE_l + (1 − α) Σ_{l<L} KL_l
  single head:       α BCE (FSDNet with L = 1), or BCE for the DCNv2 baseline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import tensorflow as tf


def binary_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype), logits=logits)


def bernoulli_kl(teacher_logits: tf.Tensor, student_logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """KL(Bernoulli(σ(z_L/T)) ‖ Bernoulli(σ(z_l/T))) per example; ≥ 0, = 0 iff z_l = z_L."""
    zt, zs = teacher_logits / temperature, student_logits / temperature
    q_t = tf.sigmoid(zt)
    positive = q_t * (tf.math.log_sigmoid(zt) - tf.math.log_sigmoid(zs))
    negative = (1.0 - q_t) * (tf.math.log_sigmoid(-zt) - tf.math.log_sigmoid(-zs))
    return positive + negative


def reference_kd(teacher_logits: tf.Tensor, student_logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """The authors' variant: negative class σ(1 − z/T). Not a divergence (can be < 0)."""
    zt, zs = teacher_logits / temperature, student_logits / temperature
    q_t, n_t = tf.sigmoid(zt), tf.sigmoid(1.0 - zt)
    positive = q_t * (tf.math.log_sigmoid(zt) - tf.math.log_sigmoid(zs))
    negative = n_t * (tf.math.log_sigmoid(1.0 - zt) - tf.math.log_sigmoid(1.0 - zs))
    return positive + negative


def hint_mse(teacher_fused: tf.Tensor, student_fused: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of fused vectors per example, (B, d) → (B,)."""
    return tf.reduce_mean(tf.square(teacher_fused - student_fused), axis=-1)


@dataclass(frozen=True)
class LossTerms:
    total: tf.Tensor
    bce: tf.Tensor           # Σ_l mean BCE_l (unweighted)
    kl: tf.Tensor            # Σ_{l<L} mean KL_l
    hint: tf.Tensor          # Σ_{l<L} mean hint_l
    head_bce: list           # mean BCE per head

    def as_dict(self) -> dict:
        out = {"loss": self.total, "bce": self.bce, "kl": self.kl, "hint": self.hint}
        out.update({f"bce_head_{i}": v for i, v in enumerate(self.head_bce)})
        return out


class DistillationTask:
    """Combines the SPEC §2 losses; owns the loss, the model only produces logits and fused vectors.

    ``global_batch_size`` makes the batch means correct under a distribution strategy
    (each replica sums its examples and divides by the global batch size).
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 1.0, beta: float = 0.01,
                 distill: str = "full", kd_variant: str = "bernoulli", detach_teacher: bool = False,
                 plain_bce: bool = False):
        if distill not in ("full", "no_soft_labels", "no_hint"):
            raise ValueError(f"distill {distill!r} is not one of full, no_soft_labels, no_hint")
        if kd_variant not in ("bernoulli", "reference"):
            raise ValueError(f"kd_variant {kd_variant!r} is not one of bernoulli, reference")
        self.alpha, self.temperature, self.beta = alpha, temperature, beta
        self.distill, self.detach_teacher, self.plain_bce = distill, detach_teacher, plain_bce
        self.kd = bernoulli_kl if kd_variant == "bernoulli" else reference_kd

    @classmethod
    def from_config(cls, model_cfg) -> "DistillationTask":
        return cls(alpha=model_cfg.alpha, temperature=model_cfg.temperature, beta=model_cfg.beta,
                   distill=model_cfg.distill, kd_variant=model_cfg.kd_variant,
                   detach_teacher=model_cfg.detach_teacher, plain_bce=model_cfg.type == "dcnv2")

    def __call__(self, labels: tf.Tensor, logits: list, fused: list,
                 global_batch_size: Optional[int] = None) -> LossTerms:
        def mean(per_example: tf.Tensor) -> tf.Tensor:
            if global_batch_size is None:
                return tf.reduce_mean(per_example)
            return tf.reduce_sum(per_example) / tf.cast(global_batch_size, per_example.dtype)

        logits = [tf.cast(z, tf.float32) for z in logits]
        fused = [tf.cast(f, tf.float32) for f in fused]
        head_bce = [mean(binary_cross_entropy(labels, z)) for z in logits]
        bce = tf.add_n(head_bce)
        zero = tf.zeros([], tf.float32)
        if len(logits) == 1:
            total = bce if self.plain_bce else self.alpha * bce
            return LossTerms(total, bce, zero, zero, head_bce)
        teacher_logits, teacher_fused = logits[-1], fused[-1]
        if self.detach_teacher:
            teacher_logits, teacher_fused = tf.stop_gradient(teacher_logits), tf.stop_gradient(teacher_fused)
        kl = tf.add_n([mean(self.kd(teacher_logits, z, self.temperature)) for z in logits[:-1]])
        hint = tf.add_n([mean(hint_mse(teacher_fused, f)) for f in fused[:-1]])
        if self.distill == "full":
            total = self.alpha * bce + (1.0 - self.alpha) * kl + self.beta * hint
        elif self.distill == "no_soft_labels":
            total = bce + self.beta * hint
        else:
            total = self.alpha * bce + (1.0 - self.alpha) * kl
        return LossTerms(total, bce, kl, hint, head_bce)

"""The losses of SPEC §2 as pure per-example functions, and the objective that combines them.

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
- Twin focus (TF4CTR), p_t = y σ(z) + (1 − y)(1 − σ(z)):
                     easy (c + p_t)^γ · BCE(z_e),  hard ((2 − c) − p_t)^γ · BCE(z_h)
These totals are built as data (lists of weighted terms) by :func:`fsdnet_tf.presets.objective`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import tensorflow as tf

from fsdnet_tf.presets import LOGGED_AS, Term, objective


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


def hint_mse(teacher_fused, student_fused) -> tf.Tensor:
    """Mean squared difference of fused vectors per example, (B, d) → (B,).

    Either side may be given as the parts whose concatenation is the vector (the same
    widths on both sides), which spares building the concatenation and its gradient.
    """
    if not isinstance(teacher_fused, tuple) and not isinstance(student_fused, tuple):
        return tf.reduce_mean(tf.square(teacher_fused - student_fused), axis=-1)
    teacher_parts, (student_parts,) = _aligned_parts(teacher_fused, [student_fused])
    squares = tf.add_n([tf.reduce_sum(tf.square(t - s), axis=-1) for t, s in zip(teacher_parts, student_parts)])
    return squares / float(sum(int(t.shape[-1]) for t in teacher_parts))


def summed_hint(teacher_fused, students_fused: list) -> tf.Tensor:
    """Σ over examples and students of :func:`hint_mse` (teacher, student): one scalar.

    The same value as summing ``hint_mse`` per student, computed in fewer passes over the
    (B × d) tensors: each difference is formed once and read by both the value and the
    hand-written gradient, and the teacher's gradient from all students is one sum (autodiff
    also broadcast the per-example gradient, doubled the difference and negated it, each a
    pass of its own).
    """
    teacher_parts, students_parts = _aligned_parts(teacher_fused, students_fused)
    squares = tf.add_n([_squared_distances(teacher, *[parts[i] for parts in students_parts])
                        for i, teacher in enumerate(teacher_parts)])
    return squares / float(sum(int(t.shape[-1]) for t in teacher_parts))


def _aligned_parts(teacher_fused, students_fused: list) -> tuple[tuple, list]:
    """Teacher and students as parts of the same widths: as given, or each whole if the widths differ."""
    teacher_parts, students_parts = _as_parts(teacher_fused), [_as_parts(s) for s in students_fused]
    widths = [int(t.shape[-1]) for t in teacher_parts]
    if any([int(s.shape[-1]) for s in parts] != widths for parts in students_parts):
        return (tf.concat(teacher_parts, -1),), [(tf.concat(parts, -1),) for parts in students_parts]
    return teacher_parts, students_parts


@tf.custom_gradient
def _squared_distances(teacher: tf.Tensor, *students: tf.Tensor):
    """Σ_s Σ (teacher − s)² over all elements, with its gradient from the kept differences."""
    differences = [teacher - s for s in students]
    value = 2.0 * tf.add_n([tf.nn.l2_loss(d) for d in differences])   # l2_loss is Σ d² / 2 in one kernel

    def gradient(upstream):
        scale = 2.0 * upstream
        return [tf.add_n(differences) * scale] + [d * -scale for d in differences]
    return value, gradient


def _float32(value):
    """A tensor, or a tuple of parts, in float32."""
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), value)


def _as_parts(fused) -> tuple:
    return fused if isinstance(fused, tuple) else (fused,)


def _true_class_probability(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """p_t = y·σ(z) + (1 − y)·(1 − σ(z)) = σ((2y − 1)·z), never computing 1 − σ(z) in float."""
    return tf.sigmoid((2.0 * tf.cast(labels, logits.dtype) - 1.0) * logits)


def _focus_factor(base: tf.Tensor, gamma: float) -> tf.Tensor:
    if gamma == 0:
        return tf.ones_like(base)     # x**0 would give 0·x⁻¹ = NaN gradients at x = 0
    # base is 0 only for a saturated sample (c = 0 or c = 1 and p_t rounded to 0 or 1)
    return tf.pow(tf.maximum(base, 1e-12), gamma)


def twin_focus_easy(labels: tf.Tensor, logits: tf.Tensor, c: float, gamma: float) -> tf.Tensor:
    """(c + p_t)^γ · BCE: up-weights the samples the easy branch already fits (SPEC_WAVE2 §1.3)."""
    p_t = _true_class_probability(labels, logits)
    return _focus_factor(c + p_t, gamma) * binary_cross_entropy(labels, logits)


def twin_focus_hard(labels: tf.Tensor, logits: tf.Tensor, c: float, gamma: float) -> tf.Tensor:
    """((2 − c) − p_t)^γ · BCE: up-weights the samples the hard branch misfits; c = 1 is focal loss."""
    p_t = _true_class_probability(labels, logits)
    return _focus_factor((2.0 - c) - p_t, gamma) * binary_cross_entropy(labels, logits)


FOCUS_LOSSES = {"focus_easy": twin_focus_easy, "focus_hard": twin_focus_hard}


@dataclass(frozen=True)
class ObjectiveValues:
    total: tf.Tensor
    logged: dict             # each term's unweighted value under its loss name (LOGGED_AS), bce per head

    def as_dict(self) -> dict:
        return {"loss": self.total, **self.logged}


class Objective:
    """Evaluates a list of weighted :class:`~fsdnet_tf.presets.Term` s on a model's named outputs.

    The task owns the loss; the model only produces logits and representations.
    ``global_batch_size`` makes the batch means correct under a distribution strategy
    (each replica sums its examples and divides by the global batch size).
    """

    def __init__(self, terms: tuple[Term, ...]):
        kinds = [t.loss for t in terms]
        duplicated = sorted({k for k in kinds if kinds.count(k) > 1})
        if duplicated:
            raise ValueError(f"two {duplicated[0]} terms would log under one name")
        self.terms = tuple(terms)

    @classmethod
    def from_config(cls, model_cfg) -> "Objective":
        return cls(objective(model_cfg))

    def logged_keys(self) -> tuple[str, ...]:
        """The keys of a training step's values: the total, the regulariser, each term, BCE per head."""
        keys = ["loss", "regulariser"]
        for term in self.terms:
            keys.append(LOGGED_AS.get(term.loss, term.loss))
            if term.loss == "bce":
                keys += [f"bce_head_{i}" for i in range(len(term.students))]
        return tuple(keys)

    def __call__(self, labels: tf.Tensor, outputs, global_batch_size: Optional[int] = None) -> ObjectiveValues:
        def mean(per_example: tf.Tensor) -> tf.Tensor:
            if global_batch_size is None:
                return tf.reduce_mean(per_example)
            return tf.reduce_sum(per_example) / tf.cast(global_batch_size, per_example.dtype)

        def batch_mean(summed: tf.Tensor) -> tf.Tensor:
            """A sum over this replica's examples as a share of the batch mean (as ``mean``)."""
            examples = tf.shape(labels)[0] if global_batch_size is None else global_batch_size
            return summed / tf.cast(examples, summed.dtype)

        logged, total = {}, None
        for term in self.terms:
            source = {**outputs.reps, **outputs.fused_parts} if term.loss == "hint" else outputs.logits
            missing = [n for n in (term.teacher, *term.students) if n is not None and n not in source]
            if missing:
                raise KeyError(f"{term.describe()} reads {missing[0]!r}, which the model does not output "
                               f"(it has {', '.join(source)})")
            students = [_float32(source[name]) for name in term.students]
            if term.loss == "bce":
                means = [mean(binary_cross_entropy(labels, z)) for z in students]
                logged.update({f"bce_head_{i}": m for i, m in enumerate(means)})
            elif term.loss in FOCUS_LOSSES:
                focus = FOCUS_LOSSES[term.loss]
                means = [mean(focus(labels, z, term.focus_c, term.focus_gamma)) for z in students]
            else:
                teacher = _float32(source[term.teacher])
                if term.detach_teacher:
                    teacher = tf.nest.map_structure(tf.stop_gradient, teacher)
                if term.loss == "kl":
                    kd = bernoulli_kl if term.kd_variant == "bernoulli" else reference_kd
                    means = [mean(kd(teacher, z, term.temperature)) for z in students]
                else:
                    means = [batch_mean(summed_hint(teacher, students))]
            key = LOGGED_AS.get(term.loss, term.loss)
            logged[key] = tf.add_n(means)
            if term.in_total:
                weighted = term.weight * logged[key]
                total = weighted if total is None else total + weighted
        if total is None:
            raise ValueError("the objective has no term in its total")
        return ObjectiveValues(total, logged)

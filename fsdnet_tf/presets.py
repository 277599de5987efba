"""Model presets and objectives as data (no TensorFlow import, so configs resolve anywhere).

A preset names the explicit tower and the readout of the parallel model (SPEC_WAVE2 §5):

    field embedding → explicit tower ∥ DeepTower → readout

Readouts:
  per_layer_heads  FSD: f_l = fuse(e_l, h_l), one Dense(1) head per layer, ŷ = mean of the
                   heads' probabilities; the deepest head is the teacher.
  final_concat     DCN, DCNv2: Dense(1) on concat(e_L, h_L).
  sum_of_logits    xDeepFM, AutoInt+: z = z_LR + Dense(1)(explicit summary) + Dense(1)(h_L),
                   the summary being every CIN layer's pooled maps or the last attention layer.

An objective is a tuple of :class:`Term` s, each naming the model outputs it reads; the
loss functions that evaluate them live in :mod:`fsdnet_tf.losses`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

TERM_LOSSES = ("bce", "kl", "hint", "focus_easy", "focus_hard")
LOGGED_AS = {"focus_easy": "tf_easy", "focus_hard": "tf_hard"}


@dataclass(frozen=True)
class Preset:
    explicit_tower: str
    readout: str
    summary: str
    twin_focus: bool = False   # auxiliary easy/hard heads trained by the twin-focus loss


PRESETS = {
    "fsdnet": Preset("cross_v2", "per_layer_heads", "FSDNet: cross v2 ∥ deep, a head per fused layer, self-distillation"),
    "dcnv2": Preset("cross_v2", "final_concat", "DCNv2: cross v2 ∥ deep, Dense(1) on concat(c_L, h_L)"),
    "dcn": Preset("cross_v1", "final_concat", "DCN: cross v1 ∥ deep, Dense(1) on concat(x_L, h_L)"),
    "dcn_fsd": Preset("cross_v1", "per_layer_heads", "DCN + FSD: cross v1 ∥ deep with per-layer heads"),
    "xdeepfm": Preset("cin", "sum_of_logits", "xDeepFM: LR + CIN + deep, logits summed"),
    "xdeepfm_fsd": Preset("cin", "per_layer_heads", "xDeepFM + FSD: CIN ∥ deep with per-layer heads"),
    "autoint": Preset("self_attention", "sum_of_logits", "AutoInt+: LR + self-attention + deep, logits summed"),
    "autoint_fsd": Preset("self_attention", "per_layer_heads", "AutoInt+ + FSD: self-attention ∥ deep, per-layer heads"),
    "tf4ctr": Preset("mlp", "twin_heads", "TF4CTR: easy MLP ∥ hard MLP, twin-focus loss, dynamic fusion", True),
    "tf4ctr_dcnv2": Preset("cross_v2", "twin_heads", "TF4CTR on DCNv2: easy cross ∥ hard deep, twin-focus loss, "
                           "dynamic fusion", True),
    "tf4ctr_fsd": Preset("cross_v2", "per_layer_heads", "TF4CTR + FSD: FSDNet with the easy branch inputs and "
                         "twin-focus terms on cross-only and deep-only auxiliary heads", True),
}
# Which per-type config section each explicit tower reads.
TOWER_SECTIONS = {"cin": "cin", "self_attention": "attention", "mlp": "tf4ctr"}
SERVED_OUTPUTS = {"per_layer_heads": ("prediction", "teacher_head"), "final_concat": ("prediction",),
                  "sum_of_logits": ("prediction",), "twin_heads": ("prediction",)}


@dataclass(frozen=True)
class Term:
    """weight · Σ_students mean loss(teacher → student); ``bce`` and the twin-focus losses take no teacher.

    ``students`` and ``teacher`` name logits (``bce``, ``kl``, focus) or representations
    (``hint``) of the model's outputs. ``in_total=False`` logs the term without training on
    it. ``focus_c`` / ``focus_gamma``: c and γ of the twin-focus factors (SPEC_WAVE2 §1.3).
    """
    loss: Literal["bce", "kl", "hint", "focus_easy", "focus_hard"]
    weight: float
    students: tuple[str, ...]
    teacher: Optional[str] = None
    detach_teacher: bool = False
    temperature: float = 1.0
    kd_variant: Literal["bernoulli", "reference"] = "bernoulli"
    in_total: bool = True
    focus_c: float = 1.0
    focus_gamma: float = 0.0

    def __post_init__(self):
        if self.loss not in TERM_LOSSES:
            raise ValueError(f"term loss {self.loss!r} is not one of {TERM_LOSSES}")
        pairwise = self.loss in ("kl", "hint")
        if pairwise == (self.teacher is None):
            raise ValueError(f"a {self.loss} term {'needs a' if pairwise else 'takes no'} teacher")
        if not self.students:
            raise ValueError(f"a {self.loss} term needs at least one student")

    def describe(self) -> str:
        reads = ", ".join(self.students)
        if self.teacher:
            reads = f"{'sg(' + self.teacher + ')' if self.detach_teacher else self.teacher} → {reads}"
        extra = {"kl": f", T={self.temperature:g}",
                 "focus_easy": f", c={self.focus_c:g}, γ={self.focus_gamma:g}",
                 "focus_hard": f", c={self.focus_c:g}, γ={self.focus_gamma:g}"}.get(self.loss, "")
        return f"{self.weight:g}·{self.loss}({reads}{extra})" + ("" if self.in_total else " [logged only]")


def head_names(model_cfg) -> tuple[str, ...]:
    """The logits reported as heads in metrics, in order (the teacher last for per-layer heads)."""
    if model_cfg.readout_kind == "per_layer_heads":
        layers = tuple(f"head_{layer}" for layer in range(model_cfg.num_layers))
        return layers + (("easy", "hard") if model_cfg.twin_focus else ())
    if model_cfg.readout_kind == "twin_heads":
        return ("final", "easy", "hard")
    return ("final",)


def prediction_heads(model_cfg) -> tuple[str, ...]:
    """The heads whose mean probability is the served prediction ŷ."""
    if model_cfg.readout_kind == "per_layer_heads":
        return tuple(f"head_{layer}" for layer in range(model_cfg.num_layers))
    return ("final",)


def twin_focus_terms(model_cfg) -> tuple[Term, ...]:
    """α · focus_easy on the easy (explicit) head + (1 − α) · focus_hard on the hard (deep) head."""
    t = model_cfg.tf4ctr
    return (Term("focus_easy", t.alpha, ("easy",), focus_c=t.c, focus_gamma=t.gamma),
            Term("focus_hard", 1.0 - t.alpha, ("hard",), focus_c=t.c, focus_gamma=t.gamma))


def objective(model_cfg) -> tuple[Term, ...]:
    """SPEC §2's FSD loss and its ablations for per-layer heads; BCE on the final logit otherwise;
    the twin-focus terms added for TF4CTR models (SPEC_WAVE2 §1.3)."""
    focus = twin_focus_terms(model_cfg) if model_cfg.twin_focus else ()
    if model_cfg.readout_kind != "per_layer_heads":
        return (Term("bce", 1.0, ("final",)),) + focus
    return fsd_terms(model_cfg) + focus


def fsd_terms(model_cfg) -> tuple[Term, ...]:
    heads = prediction_heads(model_cfg)
    alpha, beta = model_cfg.alpha, model_cfg.beta
    if len(heads) == 1:
        return (Term("bce", alpha, heads),)
    teacher, students = heads[-1], heads[:-1]
    fused = tuple(f"fused/{layer}" for layer in range(len(heads)))
    detach = model_cfg.detach_teacher
    kl = Term("kl", 1.0 - alpha, students, teacher, detach, model_cfg.temperature, model_cfg.kd_variant,
              in_total=model_cfg.distill != "no_soft_labels")
    hint = Term("hint", beta, fused[:-1], fused[-1], detach, in_total=model_cfg.distill != "no_hint")
    bce = Term("bce", 1.0 if model_cfg.distill == "no_soft_labels" else alpha, heads)
    return (bce, kl, hint)


def describe(model_cfg) -> dict:
    """What a resolved model config builds, for ``fsdnet-train --print-config``."""
    if model_cfg.type == "kd_dagfm":
        d = model_cfg.dagfm
        if d.teacher_type == "none":
            teacher = None
        elif d.teacher_run:
            teacher = f"the finished run {d.teacher_run}"
        else:
            teacher = describe(dataclasses.replace(model_cfg, type=d.teacher_type, dagfm=None))
        return {"preset": "KD-DAGFM: a DAGFM student distilled from a teacher sharing its embedding",
                "phases": ["train"] if teacher is None else ["teacher", "distill", "finetune"], "teacher": teacher,
                "student": f"DAGFM {d.kind}, depth {d.depth}" + (f", states into deep {list(model_cfg.deep_units)}"
                                                                 if d.deep else ", per-layer sum readout"),
                "objective": ({"train": "bce(student); trains the student and a fresh embedding"} if teacher is None else
                              {"distill": f"{d.alpha:g}·bce(student) + {d.beta:g}·mean (sg(z_T) − z_S)² "
                                          f"[z_T: teacher {d.teacher_output}]; trains the student only",
                               "finetune": "bce(student); trains the student and the embedding"}),
                "served_outputs": ["prediction"]}
    if model_cfg.type == "optfusion":
        o, layers = model_cfg.optfusion, model_cfg.cross_layers
        return {"preset": "OptFusion: cross v1 and Dense blocks wired by learned gates and fusion operations",
                "phases": ["retrain"] if o.search_run or o.architecture else ["search", "derive", "retrain"],
                **({"architecture": o.architecture} if o.architecture else {}),
                "search_space": f"x0, C0, {layers} cross v1 + {layers} Dense blocks of width d0 = F·D "
                                f"(Dense {o.block_width or 'd0'}), {1 + 2 * layers * (layers + 1) + 2 * layers + 2} "
                                f"gates, {2 * layers + 1} fusion points of add/prod/concat/att",
                "objective": {"search": f"bce(final) + embedding penalty; network Adam lr {o.learning_rate:g}, "
                                        f"architecture Adam lr {o.arch_lr:g} ({o.arch_step})",
                              "retrain": f"bce(final); OptFusion-{o.mode}, {o.retrain_init} weights"},
                "served_outputs": ["prediction"]}
    return {"preset": PRESETS[model_cfg.type].summary,
            "explicit_tower": None if model_cfg.fusion == "none" else model_cfg.tower_kind,
            "implicit_tower": f"deep {list(model_cfg.deep_units)}",
            "readout": model_cfg.readout_kind, "heads": list(head_names(model_cfg)),
            "objective": [t.describe() for t in objective(model_cfg)],
            "served_outputs": list(SERVED_OUTPUTS[model_cfg.readout_kind])}

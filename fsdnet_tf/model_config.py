"""The model section of the configuration: presets, tower settings and their checks.

Re-exported by :mod:`fsdnet_tf.config`; errors name the dotted key (``model.cin.units``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

from fsdnet_tf.config_error import ConfigError
from fsdnet_tf.presets import PRESETS, TOWER_SECTIONS

PARALLEL_TYPES = ("fsdnet", "dcnv2", "dcn", "dcn_fsd", "xdeepfm", "xdeepfm_fsd", "autoint", "autoint_fsd",
                  "tf4ctr", "tf4ctr_dcnv2", "tf4ctr_fsd")
MODEL_TYPES = PARALLEL_TYPES + ("kd_dagfm", "optfusion")
EXPLICIT_TOWERS = ("cross_v2", "cross_v1", "cin", "self_attention", "mlp")
READOUTS = ("per_layer_heads", "final_concat", "sum_of_logits", "twin_heads")


@dataclass(frozen=True)
class CINConfig:
    """xDeepFM's compressed interaction network: feature maps per layer (SPEC_WAVE2 §4.3)."""
    units: tuple[int, ...] = (64, 64, 64)


@dataclass(frozen=True)
class AttentionConfig:
    """AutoInt's multi-head self-attention tower (SPEC_WAVE2 §4.4)."""
    layers: int = 3
    dim: int = 128
    heads: int = 2
    attention_dropout: float = 0.0


@dataclass(frozen=True)
class TF4CTRConfig:
    """TF4CTR (SPEC_WAVE2 §1): the explicit tower is the easy branch, the deep tower the hard one.

    ssem: each branch's input — shared x0, separate_tables (the easy branch reads its own
    table set of width D/2), scalar_gate (x_e = g·x0, x_h = (1 − g)·x0), mmoe (two experts,
    two gates). dfm: the dynamic fusion of the twin_heads readout — sum, wsf (weighted sum),
    cf (Dense on [h_e; h_h]), moef (mixture of two experts), vf (Gumbel-softmax gate,
    deterministic softmax(π/τ) at inference). Twin-focus loss with c, gamma, alpha.
    """
    easy_units: tuple[int, ...] = (400, 400)
    ssem: Literal["shared", "separate_tables", "scalar_gate", "mmoe"] = "separate_tables"
    dfm: Literal["sum", "wsf", "cf", "moef", "vf"] = "wsf"
    c: float = 0.7
    gamma: float = 1.0
    alpha: float = 0.25


@dataclass(frozen=True)
class DAGFMConfig:
    """KD-DAGFM (SPEC_WAVE2 §2): a DAGFM student distilled from a teacher that shares its embedding.

    The teacher is a finished run directory (``teacher_run``) or is trained in the run's own
    ``teacher`` phase as ``teacher_type`` with the flat model keys; ``none`` trains the student
    and its own embedding from scratch with BCE (one phase ``train``: the no-distillation
    baseline). ``teacher_output``: the
    KD target is logit(ŷ) of the teacher's served prediction, or its deepest head's logit.
    The ``distill`` phase (student only) minimises α·BCE + β·mean over the batch of
    (z_T − z_S)²; ``finetune`` (student and embedding) BCE alone. Both add (l2/2)·Σ‖θ‖² over
    their trainable variables and run at ``learning_rate`` (``finetune_learning_rate`` for
    finetune when set) / ``batch_size`` with no schedule, stopping after ``patience`` epochs
    without a better valid AUC. ``mixing_init``: the field-mixing matrix C starts as I (the
    paper), or ``rescaled`` as I / RMS(E) of the teacher's embeddings on a valid batch, so that
    h^(0) has unit scale however strongly the teacher's tables were regularised (ours: layer t
    scales as ‖E‖^(t+1), and tiny tables leave the higher orders near zero). ``deep``: KD-DAGFM+, the
    states summed into a deep tower of ``model.deep_units`` instead of the per-layer readout.
    """
    kind: Literal["inner", "outer"] = "outer"
    depth: int = 3
    deep: bool = False
    mixing_init: Literal["identity", "rescaled"] = "identity"
    alpha: float = 0.1
    beta: float = 921.6
    teacher_type: Literal[PARALLEL_TYPES + ("none",)] = "fsdnet"
    teacher_run: Optional[str] = None
    teacher_output: Literal["served", "deepest_head"] = "served"
    learning_rate: float = 3e-3
    finetune_learning_rate: Optional[float] = None
    l2: float = 1e-6
    batch_size: int = 1024
    patience: int = 10
    max_epochs: int = 1000


@dataclass(frozen=True)
class OptFusionConfig:
    """OptFusion (SPEC_WAVE2 §3): ``model.cross_layers`` = L cross v1 and L Dense blocks plus C0,
    all of width d0 = F·D, wired by learned gates, one fusion point per destination.

    ``search`` trains the supernet and the architecture together, Adam at ``learning_rate`` on
    the network and at ``arch_lr`` on the connection logits (init ``init_constant``) and the
    operation logits, both stepped on every batch (``arch_step: same_batch``, the paper's
    single-level search) or the architecture on a batch of the held-out rows
    (``held_out``: the last ``held_out_fraction`` of the training rows, which the network then
    never trains on). ``derive`` writes architecture.json (``mode``: hard = argmax operation,
    soft = the fixed softmax mixture, add = add everywhere). ``retrain`` trains the derived
    network from the search's best weights (``retrain_init: inherit``, its start competing as
    epoch 0) or from a fresh initialisation (``reinit``); unset, it inherits when there is a
    search. ``search_run``: a finished OptFusion run whose search this run derives from and
    inherits (one search, several re-trains). ``architecture``: no search at all; train this
    wiring from a fresh initialisation: ``parallel`` (the hand-wired parallel DCN pattern, concat
    at the output) or the path of an architecture.json (another run's derived wiring).
    ``lr_decay``: multiply the network's learning rate by it after every epoch without a valid
    improvement, down to ``train.min_lr`` (1.0, the default: none, as the authors; the
    hand-wired models' runs use ``train.lr_decay``); ``retrain_lr_decay``: the same for the
    re-train (null: ``lr_decay``), as ``retrain_learning_rate`` is to ``learning_rate``.
    ``product``: filtered (ours, both phases) or authors (plain in search and soft re-train).
    ``block_width``: the Dense blocks' width; null is d0, another width gets a linear adapter
    back to d0 (``width_adapter: project``) or is refused (``reject``). ``batch_norm`` and
    ``dropout`` regularise the Dense blocks as the zoo's deep towers are (Dense → BatchNorm →
    ReLU → Dropout, in search and re-train); the authors' blocks have neither (the defaults).
    """
    mode: Literal["hard", "soft", "add"] = "hard"
    product: Literal["filtered", "authors"] = "filtered"
    arch_lr: float = 0.1
    init_constant: float = 0.5
    emb_std: float = 0.01
    arch_step: Literal["same_batch", "held_out"] = "same_batch"
    held_out_fraction: float = 0.1
    retrain_init: Optional[Literal["inherit", "reinit"]] = None
    search_run: Optional[str] = None
    architecture: Optional[str] = None
    block_width: Optional[int] = None
    width_adapter: Literal["project", "reject"] = "reject"
    batch_norm: bool = False
    dropout: float = 0.0
    batch_size: int = 4096
    learning_rate: float = 1e-3
    retrain_learning_rate: Optional[float] = None
    lr_decay: float = 1.0
    retrain_lr_decay: Optional[float] = None
    patience: int = 2
    max_epochs: int = 20


@dataclass(frozen=True)
class ModelConfig:
    """``type`` is a preset naming the explicit tower and the readout (:mod:`fsdnet_tf.presets`);
    ``explicit_tower`` / ``readout`` replace the preset's choice when set. They stay null in a
    saved config, so ``--set model.type=...`` on it still picks that preset's parts."""
    type: Literal[MODEL_TYPES] = "fsdnet"
    explicit_tower: Optional[Literal[EXPLICIT_TOWERS]] = None
    readout: Optional[Literal[READOUTS]] = None
    embedding_dim: int = 16
    embedding_l2: float = 1e-5
    cross_layers: int = 3
    projection_dim: Optional[int] = None
    deep_units: tuple[int, ...] = (400, 400, 400)
    batch_norm: bool = True
    dropout: float = 0.2
    fusion: Literal["concat", "hadamard", "add", "attention", "none"] = "concat"
    alpha: float = 0.5
    temperature: float = 1.0
    beta: float = 0.01
    distill: Literal["full", "no_soft_labels", "no_hint"] = "full"
    kd_variant: Literal["bernoulli", "reference"] = "bernoulli"
    detach_teacher: bool = False
    cin: Optional[CINConfig] = None
    attention: Optional[AttentionConfig] = None
    tf4ctr: Optional[TF4CTRConfig] = None
    dagfm: Optional[DAGFMConfig] = None
    optfusion: Optional[OptFusionConfig] = None

    @property
    def twin_focus(self) -> bool:
        """Twin-focus auxiliary heads on the two branches (TF4CTR and TF4CTR + FSD)."""
        return PRESETS[self.type].twin_focus or self.readout_kind == "twin_heads"

    @property
    def tower_kind(self) -> str:
        return self.explicit_tower or PRESETS[self.type].explicit_tower

    @property
    def readout_kind(self) -> str:
        return self.readout or PRESETS[self.type].readout

    @property
    def num_layers(self) -> int:
        """Depth of the explicit tower (the per-layer heads pair layer l of each tower)."""
        if self.tower_kind == "cin" and self.cin is not None:
            return len(self.cin.units)
        if self.tower_kind == "self_attention" and self.attention is not None:
            return self.attention.layers
        if self.tower_kind == "mlp" and self.tf4ctr is not None:
            return len(self.tf4ctr.easy_units)
        return self.cross_layers


def resolve_preset(m: ModelConfig) -> ModelConfig:
    """Fill the section of the explicit tower's own settings; refuse sections it does not read."""
    defaults = {"cin": CINConfig(), "attention": AttentionConfig(), "tf4ctr": TF4CTRConfig()}
    for section, default in defaults.items():
        used = TOWER_SECTIONS.get(m.tower_kind) == section or (section == "tf4ctr" and m.twin_focus)
        if used and getattr(m, section) is None:
            m = dataclasses.replace(m, **{section: default})
        elif not used and getattr(m, section) is not None:
            raise ConfigError(f"model.{section}: not used by model.type={m.type} "
                              f"(explicit tower {m.tower_kind}, readout {m.readout_kind}); remove it")
    return m


def _validate_explicit_tower(m: ModelConfig) -> None:
    heads = m.readout_kind == "per_layer_heads"
    if m.tower_kind in ("cross_v1", "cross_v2") and len(m.deep_units) != m.cross_layers:
        raise ConfigError(
            f"model.deep_units: {len(m.deep_units)} deep layers but model.cross_layers is "
            f"{m.cross_layers}; fusion pairs layer l of each, so the counts must be equal")
    if m.projection_dim is not None and m.tower_kind != "cross_v2":
        raise ConfigError(f"model.projection_dim: only the cross_v2 tower has a low-rank projection, "
                          f"not {m.tower_kind}")
    if m.cin is not None:
        if not m.cin.units or min(m.cin.units) < 1:
            raise ConfigError("model.cin.units: needs at least one layer, every width >= 1")
        if heads and len(m.cin.units) != len(m.deep_units):
            raise ConfigError(f"model.cin.units: {len(m.cin.units)} CIN layers but {len(m.deep_units)} "
                              "deep layers; per-layer heads pair layer l of each, so the counts must be equal")
        if heads and len(set(m.cin.units)) != 1:
            raise ConfigError(f"model.cin.units: widths {list(m.cin.units)} differ; the hint loss compares "
                              "fused vectors of every layer, so all widths must be equal")
    if m.tower_kind == "mlp" and heads and (len(m.tf4ctr.easy_units) != len(m.deep_units)
                                             or len(set(m.tf4ctr.easy_units)) != 1):
        raise ConfigError(f"model.tf4ctr.easy_units: per-layer heads need {len(m.deep_units)} layers of one width "
                          f"(as model.deep_units), not {list(m.tf4ctr.easy_units)}")
    if m.attention is not None:
        a = m.attention
        if a.layers < 1 or a.dim < 1 or a.heads < 1:
            raise ConfigError("model.attention.layers / dim / heads: must be >= 1")
        if a.dim % a.heads:
            raise ConfigError(f"model.attention.dim: {a.dim} does not split into {a.heads} heads "
                              "(model.attention.heads)")
        if not 0.0 <= a.attention_dropout < 1.0:
            raise ConfigError("model.attention.attention_dropout: must be in [0, 1)")
        if heads and a.layers != len(m.deep_units):
            raise ConfigError(f"model.attention.layers: {a.layers} attention layers but {len(m.deep_units)} "
                              "deep layers; per-layer heads pair layer l of each, so the counts must be equal")


def _validate_tf4ctr(m: ModelConfig) -> None:
    t = m.tf4ctr
    if not 0.0 <= t.c <= 1.0:
        raise ConfigError(f"model.tf4ctr.c: {t.c} is outside [0, 1] (c > 1 makes the hard focus base negative)")
    if t.gamma < 0:
        raise ConfigError("model.tf4ctr.gamma: must be >= 0")
    if not 0.0 <= t.alpha <= 1.0:
        raise ConfigError("model.tf4ctr.alpha: must be in [0, 1]")
    if t.ssem == "separate_tables" and m.embedding_dim % 2:
        raise ConfigError(f"model.embedding_dim: {m.embedding_dim} is odd; model.tf4ctr.ssem=separate_tables "
                          "gives the easy branch a table of half that width")
    if not t.easy_units or min(t.easy_units) < 1:
        raise ConfigError("model.tf4ctr.easy_units: needs at least one layer, every width >= 1")
    if m.fusion == "none":
        raise ConfigError("model.fusion: 'none' drops the easy branch, which the twin-focus loss trains")
    if t.ssem != "shared" and not m.twin_focus:
        raise ConfigError(f"model.tf4ctr.ssem: {t.ssem} needs a TF4CTR model (the easy and hard branches)")


def teacher_config(m: ModelConfig) -> ModelConfig:
    """The model the teacher phase of a ``kd_dagfm`` config trains: the flat keys as ``teacher_type``."""
    return dataclasses.replace(m, type=m.dagfm.teacher_type, dagfm=None)


def _validate_kd_dagfm(m: ModelConfig) -> ModelConfig:
    d = m.dagfm or DAGFMConfig()
    if d.depth < 1:
        raise ConfigError("model.dagfm.depth: must be >= 1")
    if d.alpha < 0 or d.beta < 0 or d.alpha + d.beta == 0:
        raise ConfigError("model.dagfm.alpha / model.dagfm.beta: must be >= 0 and not both 0")
    if d.learning_rate <= 0 or d.l2 < 0 or (d.finetune_learning_rate is not None and d.finetune_learning_rate <= 0):
        raise ConfigError("model.dagfm.learning_rate / finetune_learning_rate must be > 0 and model.dagfm.l2 >= 0")
    if d.batch_size < 1 or d.patience < 1 or d.max_epochs < 1:
        raise ConfigError("model.dagfm.batch_size / patience / max_epochs: must be >= 1")
    if d.teacher_type == "none":
        if d.teacher_run is not None:
            raise ConfigError("model.dagfm.teacher_run: set, but model.dagfm.teacher_type is none (no teacher)")
        return dataclasses.replace(m, dagfm=d)
    teacher = validate_model(teacher_config(dataclasses.replace(m, dagfm=d)))
    if d.teacher_output == "deepest_head" and teacher.readout_kind != "per_layer_heads" and d.teacher_run is None:
        raise ConfigError(f"model.dagfm.teacher_output: deepest_head needs a teacher with per-layer heads, "
                          f"not {teacher.type}")
    return dataclasses.replace(teacher, type="kd_dagfm", dagfm=d)


def _validate_optfusion(m: ModelConfig) -> ModelConfig:
    o = m.optfusion or OptFusionConfig()
    for section in ("cin", "attention", "tf4ctr", "dagfm"):
        if getattr(m, section) is not None:
            raise ConfigError(f"model.{section}: not used by model.type=optfusion; remove it")
    if m.cross_layers < 1 or m.embedding_dim < 1:
        raise ConfigError("model.cross_layers / model.embedding_dim: must be >= 1")
    if o.arch_lr <= 0 or o.learning_rate <= 0 or (o.retrain_learning_rate is not None and o.retrain_learning_rate <= 0):
        raise ConfigError("model.optfusion.arch_lr / learning_rate / retrain_learning_rate: must be > 0")
    if o.emb_std <= 0 or m.embedding_l2 < 0:
        raise ConfigError("model.optfusion.emb_std must be > 0 and model.embedding_l2 >= 0")
    if o.batch_size < 1 or o.patience < 1 or o.max_epochs < 1:
        raise ConfigError("model.optfusion.batch_size / patience / max_epochs: must be >= 1")
    if o.block_width is not None and o.block_width < 1:
        raise ConfigError("model.optfusion.block_width: must be >= 1 or null (d0 = fields × embedding_dim)")
    if not 0.0 < o.held_out_fraction < 0.5:
        raise ConfigError("model.optfusion.held_out_fraction: must be in (0, 0.5)")
    if not 0 <= o.dropout < 1:
        raise ConfigError(f"model.optfusion.dropout: {o.dropout} is not in [0, 1)")
    for key in ("lr_decay", "retrain_lr_decay"):
        value = getattr(o, key)
        if value is not None and not 0 < value <= 1:
            raise ConfigError(f"model.optfusion.{key}: {value} is not in (0, 1] (1.0 is no decay)")
    if o.architecture is not None:
        if o.search_run is not None:
            raise ConfigError("model.optfusion.search_run: a given model.optfusion.architecture has no search to "
                              "inherit; set one of the two")
        if o.retrain_init == "inherit":
            raise ConfigError("model.optfusion.retrain_init: inherit needs a search, and a given "
                              "model.optfusion.architecture trains from a fresh initialisation; use reinit")
        o = dataclasses.replace(o, retrain_init="reinit")
    elif o.retrain_init is None:
        o = dataclasses.replace(o, retrain_init="inherit")
    return dataclasses.replace(m, optfusion=o)


def validate_model(m: ModelConfig) -> ModelConfig:
    if m.type == "kd_dagfm":
        return _validate_kd_dagfm(m)
    if m.type == "optfusion":
        return _validate_optfusion(m)
    if m.optfusion is not None:
        raise ConfigError(f"model.optfusion: not used by model.type={m.type}; remove it")
    if m.dagfm is not None:
        raise ConfigError(f"model.dagfm: not used by model.type={m.type}; remove it")
    m = resolve_preset(m)
    if m.cross_layers < 1:
        raise ConfigError("model.cross_layers: must be >= 1")
    _validate_explicit_tower(m)
    if m.tf4ctr is not None:
        _validate_tf4ctr(m)
    if len(set(m.deep_units)) != 1:
        raise ConfigError(f"model.deep_units: widths {list(m.deep_units)} differ; the hint loss "
                          "compares fused vectors of every layer, so all widths must be equal")
    if m.deep_units[0] < 1 or m.embedding_dim < 1:
        raise ConfigError("model.deep_units / model.embedding_dim: must be positive")
    if m.projection_dim is not None and m.projection_dim < 1:
        raise ConfigError("model.projection_dim: must be >= 1 or null (full rank)")
    if not 0.0 <= m.dropout < 1.0:
        raise ConfigError("model.dropout: must be in [0, 1)")
    if not 0.0 <= m.alpha <= 1.0:
        raise ConfigError("model.alpha: must be in [0, 1]")
    if m.temperature <= 0:
        raise ConfigError("model.temperature: must be > 0")
    if m.beta < 0 or m.embedding_l2 < 0:
        raise ConfigError("model.beta / model.embedding_l2: must be >= 0")
    if m.readout_kind != "per_layer_heads" and m.fusion != "concat":
        raise ConfigError(f"model.fusion: the {m.readout_kind} readout ({m.type}) has no per-layer fusion; "
                          "fusion must stay 'concat'")
    return m

"""Typed, strict configuration.

One YAML file (a shipped name such as ``frappe`` or a path) describes a dataset,
a model and a training run. Every key is checked against the dataclasses below:
unknown keys, wrong types and inconsistent values raise :class:`ConfigError`
with the dotted path of the offending key, so a typo never silently falls back
to a default.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional

import yaml

from fsdnet_tf.config_error import ConfigError
from fsdnet_tf.dataset_config import (SPLITS, ColumnConfig, DatasetConfig, LabelConfig,  # noqa: F401  (re-exported)
                                      MovieLensConfig, SplitConfig, SyntheticConfig, validate_dataset)
from fsdnet_tf.model_config import (MODEL_TYPES, PARALLEL_TYPES, AttentionConfig,  # noqa: F401  (re-exported)
                                    CINConfig, DAGFMConfig, ModelConfig, OptFusionConfig, teacher_config,
                                    validate_model)

SHIPPED_CONFIG_DIR = pathlib.Path(__file__).parent / "configs"


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 4096
    eval_batch_size: int = 20000
    learning_rate: float = 1e-3
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    clip_norm: float = 10.0
    max_epochs: int = 100
    patience: int = 2
    lr_decay: float = 0.1
    min_lr: float = 1e-6
    min_delta: float = 1e-6
    in_memory: bool = True
    shuffle_buffer: int = 1_000_000
    label_noise: float = 0.0
    mixed_precision: bool = False
    jit_compile: bool = False
    max_steps_per_epoch: Optional[int] = None
    steps_per_execution: int = 1
    ps_min_shard_bytes: int = 256 << 10     # ParameterServerStrategy: variables above this are split
    monitor: dict[str, float] = dataclasses.field(default_factory=lambda: {"auc": 1.0})   # valid score: Σ w·metric


@dataclass(frozen=True)
class Config:
    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 2023


# --------------------------------------------------------------------------- parsing

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to ``tp`` strictly, naming ``path`` on failure."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        key_tp, val_tp = args
        return {_convert(k, key_tp, path): _convert(v, val_tp, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and SCIENTIFIC.match(value):
            return float(value)     # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {_type_name(tp)} at {path}")


def _build(cls: type, data: dict, path: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown key '{where}{unknown[0]}' (known keys: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key_path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{key_path}'")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain YAML-serialisable form of a config object (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- validation

def validate_train(t: TrainConfig) -> TrainConfig:
    for key in ("batch_size", "eval_batch_size", "max_epochs", "patience", "shuffle_buffer", "steps_per_execution",
                "ps_min_shard_bytes"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key}: must be >= 1")
    if t.learning_rate <= 0 or t.min_lr <= 0 or t.min_lr > t.learning_rate:
        raise ConfigError("train.learning_rate / train.min_lr: need 0 < min_lr <= learning_rate")
    if not 0 < t.lr_decay <= 1:
        raise ConfigError("train.lr_decay: must be in (0, 1]")
    if not 0.0 <= t.label_noise < 0.5:
        raise ConfigError("train.label_noise: must be in [0, 0.5)")
    if t.clip_norm <= 0:
        raise ConfigError("train.clip_norm: must be > 0")
    if t.max_steps_per_epoch is not None and t.max_steps_per_epoch < 1:
        raise ConfigError("train.max_steps_per_epoch: must be >= 1 or null")
    unknown = sorted(set(t.monitor) - {"auc", "gauc"})
    if unknown or not t.monitor or min(t.monitor.values()) < 0 or sum(t.monitor.values()) <= 0:
        raise ConfigError("train.monitor: weights of auc and/or gauc, >= 0 and not all 0"
                          + (f" ({unknown[0]!r} is not a metric)" if unknown else ""))
    return t


def config_from_dict(data: dict) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a mapping with keys dataset, model, train, seed")
    cfg = _build(Config, data, "")
    cfg = dataclasses.replace(cfg, dataset=validate_dataset(cfg.dataset),
                              model=validate_model(cfg.model), train=validate_train(cfg.train))
    if "gauc" in cfg.train.monitor and cfg.dataset.group_field is None:
        raise ConfigError("train.monitor: gauc needs dataset.group_field (the user field to group by)")
    return cfg


def same_experiment(a: Config, b: Config) -> bool:
    """Equal but for settings that change only how a step is executed, and so float rounding
    alone, like thread counts do (``train.steps_per_execution``): a run saved with one of them
    resumes, and counts as the same run, under the other."""
    def normalised(cfg: Config) -> Config:
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps_per_execution=1))
    return normalised(a) == normalised(b)


def shipped_config_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED_CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> pathlib.Path:
    path = pathlib.Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    shipped = SHIPPED_CONFIG_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"unknown config '{name_or_path}': not a file and not one of "
                          f"{', '.join(shipped_config_names())}")
    return shipped


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides (value parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(name_or_path: str, overrides: Optional[list[str]] = None) -> Config:
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return config_from_dict(apply_overrides(data, list(overrides or [])))


def dump_config(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def dataset_from_yaml(text: str) -> DatasetConfig:
    return validate_dataset(_build(DatasetConfig, yaml.safe_load(text), "dataset"))

"""The dataset section of the configuration: columns, label, splits, formats, and their checks.

Re-exported by :mod:`fsdnet_tf.config`; errors name the dotted key (``dataset.splits.ratios``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

from fsdnet_tf.config_error import ConfigError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ColumnConfig:
    """One column of the raw data, in file order.

    kind: ``categorical`` (string token), ``integer`` (Criteo-style integer turned
    into a token by SPEC §5), ``label`` or ``ignore``.
    """
    name: str
    kind: Literal["categorical", "integer", "label", "ignore"]


@dataclass(frozen=True)
class LabelConfig:
    """How a raw label value becomes 0/1.

    Either explicit value lists (``positive``/``negative``) or a numeric
    ``threshold`` (value >= threshold is positive). Anything else is a bad row.
    """
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    threshold: Optional[float] = None


@dataclass(frozen=True)
class SplitConfig:
    """Where train/valid/test come from: separate ``files`` or one ``source``
    split by seeded ``ratios``. Paths are relative to ``--data-dir``."""
    files: Optional[dict[str, str]] = None
    source: Optional[str] = None
    ratios: Optional[tuple[float, float, float]] = None
    seed: int = 2023


@dataclass(frozen=True)
class MovieLensConfig:
    """MovieLens-1M ``.dat`` join: ratings are the rows, users/movies are joined."""
    ratings: str = "ratings.dat"
    users: str = "users.dat"
    movies: str = "movies.dat"
    encoding: str = "latin-1"


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in generated dataset (see fsdnet_tf.data.synthetic)."""
    rows: int = 60000
    fields: int = 8
    seed: int = 7
    min_cardinality: int = 20
    max_cardinality: int = 2000


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    format: Literal["csv", "tsv", "criteo", "libsvm", "movielens", "synthetic"]
    columns: tuple[ColumnConfig, ...] = ()
    label: LabelConfig = LabelConfig(positive=("1",), negative=("0",))
    header: bool = False
    delimiter: Optional[str] = None
    min_frequency: int = 2
    num_oov_buckets: int = 1
    splits: SplitConfig = SplitConfig()
    field_map: Optional[dict[str, tuple[int, int]]] = None
    movielens: Optional[MovieLensConfig] = None
    synthetic: Optional[SyntheticConfig] = None
    group_field: Optional[str] = None      # the user field gAUC groups by (train.monitor)

    @property
    def feature_columns(self) -> tuple[ColumnConfig, ...]:
        return tuple(c for c in self.columns if c.kind in ("categorical", "integer"))

    @property
    def field_delimiter(self) -> str:
        if self.delimiter is not None:
            return self.delimiter
        return "," if self.format in ("csv", "synthetic") else "\t"


CRITEO_COLUMNS = (
    (ColumnConfig("label", "label"),)
    + tuple(ColumnConfig(f"I{i}", "integer") for i in range(1, 14))
    + tuple(ColumnConfig(f"C{i}", "categorical") for i in range(1, 27)))
MOVIELENS_COLUMNS = (
    ColumnConfig("rating", "label"), ColumnConfig("user_id", "categorical"),
    ColumnConfig("movie_id", "categorical"), ColumnConfig("gender", "categorical"),
    ColumnConfig("age", "categorical"), ColumnConfig("occupation", "categorical"),
    ColumnConfig("zip", "categorical"), ColumnConfig("genres", "categorical"))


def _with_format_defaults(ds: DatasetConfig) -> DatasetConfig:
    """Fill the columns a fixed format implies; a given list must agree with it."""
    fixed = {"criteo": CRITEO_COLUMNS, "movielens": MOVIELENS_COLUMNS}.get(ds.format)
    if fixed is not None:
        if not ds.columns:
            ds = dataclasses.replace(ds, columns=fixed)
        elif len(ds.columns) != len(fixed):
            raise ConfigError(f"dataset.columns: format {ds.format} has {len(fixed)} columns, "
                              f"the config lists {len(ds.columns)}")
    if ds.format == "synthetic":
        syn = ds.synthetic or SyntheticConfig()
        cols = ((ColumnConfig("label", "label"),)
                + tuple(ColumnConfig(f"f{i}", "categorical") for i in range(syn.fields)))
        ds = dataclasses.replace(ds, synthetic=syn, columns=ds.columns or cols)
    if ds.format == "movielens" and ds.movielens is None:
        ds = dataclasses.replace(ds, movielens=MovieLensConfig())
    return ds


def validate_dataset(ds: DatasetConfig) -> DatasetConfig:
    ds = _with_format_defaults(ds)
    names = [c.name for c in ds.columns]
    if not names:
        raise ConfigError("dataset.columns: at least one column is required")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"dataset.columns: column name '{dupes[0]}' appears twice")
    labels = [c.name for c in ds.columns if c.kind == "label"]
    if len(labels) != 1:
        raise ConfigError(f"dataset.columns: exactly one column must have kind label, found {len(labels)}")
    if not ds.feature_columns:
        raise ConfigError("dataset.columns: no categorical or integer feature column")
    for c in ds.feature_columns:
        if not c.name.replace("_", "").isalnum():
            raise ConfigError(f"dataset.columns: feature name '{c.name}' must be letters, digits and _")
    lab = ds.label
    if lab.threshold is None and not (lab.positive and lab.negative):
        raise ConfigError("dataset.label: give both 'positive' and 'negative' value lists, or 'threshold'")
    if lab.threshold is not None and (lab.positive or lab.negative):
        raise ConfigError("dataset.label: 'threshold' excludes 'positive'/'negative' lists")
    if set(lab.positive) & set(lab.negative):
        raise ConfigError("dataset.label: a value is listed as both positive and negative")
    if ds.min_frequency < 1:
        raise ConfigError("dataset.min_frequency: must be >= 1")
    if ds.num_oov_buckets < 1:
        raise ConfigError("dataset.num_oov_buckets: must be >= 1 (0 would map unseen values to -1)")
    if ds.format == "libsvm":
        if not ds.field_map:
            raise ConfigError("dataset.field_map: required for format libsvm (field -> [first, last] index)")
        for name, (lo, hi) in ds.field_map.items():
            if name not in names:
                raise ConfigError(f"dataset.field_map.{name}: not a column in dataset.columns")
            if lo > hi:
                raise ConfigError(f"dataset.field_map.{name}: first index {lo} > last index {hi}")
        missing = [c.name for c in ds.feature_columns if c.name not in ds.field_map]
        if missing:
            raise ConfigError(f"dataset.field_map: no index range for feature '{missing[0]}'")
        if any(c.kind == "integer" for c in ds.feature_columns):
            raise ConfigError("dataset.columns: format libsvm carries categorical features only")
    elif ds.field_map is not None:
        raise ConfigError("dataset.field_map: only used with format libsvm")
    if ds.delimiter is not None and ds.format not in ("csv", "tsv"):
        raise ConfigError(f"dataset.delimiter: not used with format {ds.format}")
    if ds.group_field is not None and ds.group_field not in [c.name for c in ds.feature_columns]:
        raise ConfigError(f"dataset.group_field: {ds.group_field!r} is not a feature column")
    if ds.header and ds.format not in ("csv", "tsv"):
        raise ConfigError(f"dataset.header: format {ds.format} has no header line")
    sp = ds.splits
    if ds.format == "synthetic":
        if sp.files is not None or sp.source is not None:
            raise ConfigError("dataset.splits: the synthetic dataset is generated; give only 'ratios' and 'seed'")
        if sp.ratios is None:
            ds = dataclasses.replace(ds, splits=dataclasses.replace(sp, ratios=(0.8, 0.1, 0.1)))
    elif ds.format == "movielens":
        if sp.files is not None or sp.source is not None or sp.ratios is None:
            raise ConfigError("dataset.splits: format movielens splits its ratings file by 'ratios'")
    elif (sp.files is None) == (sp.source is None):
        raise ConfigError("dataset.splits: give either 'files' (train/valid/test) or 'source' with 'ratios'")
    if sp.files is not None and sorted(sp.files) != sorted(SPLITS):
        raise ConfigError(f"dataset.splits.files: needs exactly the keys {', '.join(SPLITS)}")
    if sp.source is not None and sp.ratios is None:
        raise ConfigError("dataset.splits.ratios: required with 'source'")
    ratios = ds.splits.ratios
    if ratios is not None and (min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-9 or ratios[0] == 0):
        raise ConfigError(f"dataset.splits.ratios: {list(ratios)} must be non-negative, sum to 1, train > 0")
    return ds

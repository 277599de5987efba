"""Reading what the tf.Transform pipeline wrote (see pipelines/transform.py)."""
from __future__ import annotations

import json
import pathlib

from fsdnet_tf.config import SPLITS, ConfigError, DatasetConfig, dataset_from_yaml, to_dict
from fsdnet_tf.features import FeatureContract
from fsdnet_tf.preflight import require_transform_output


# Dataset keys that only say how a split is evaluated, not how it was transformed.
EVALUATION_ONLY = ("group_field",)

class TransformDir:
    def __init__(self, path: str | pathlib.Path):
        self.path = require_transform_output(path)
        self.stats = json.loads((self.path / "stats.json").read_text())
        self.dataset: DatasetConfig = dataset_from_yaml((self.path / "config.yaml").read_text())
        self.contract = FeatureContract.from_dataset(self.dataset)

    @property
    def transform_fn_dir(self) -> pathlib.Path:
        return self.path / "transform_fn"

    def vocab_sizes(self) -> dict[str, int]:
        """Embedding rows per field: vocabulary plus OOV buckets."""
        return {f: self.stats["vocab_size"][f] + self.dataset.num_oov_buckets for f in self.contract.fields}

    def files(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        found = sorted(str(p) for p in (self.path / "data").glob(f"{split}-*.tfrecord.gz"))
        if not found:
            raise ConfigError(f"{self.path}/data has no {split} files")
        return found

    def check_matches(self, dataset: DatasetConfig) -> None:
        """The training config's dataset section must be the one the transform used."""
        ours, theirs = to_dict(self.dataset), to_dict(dataset)
        for key in ours:
            if key not in EVALUATION_ONLY and ours[key] != theirs.get(key):
                raise ConfigError(f"dataset.{key}: the config says {theirs.get(key)!r} but {self.path} "
                                  f"was transformed with {ours[key]!r}")

"""Evaluation of a model's served ŷ and heads on a split of the transform output."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from fsdnet_tf.config import TrainConfig
from fsdnet_tf.data.input import cast_features, parsed_dataset
from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.features import LABEL_KEY
from fsdnet_tf.metrics import evaluate


def predictions(model, features: dict) -> tuple[tf.Tensor, tf.Tensor]:
    """The served ŷ and the (B, heads) head probabilities, in inference mode."""
    out = model.named_outputs(features, training=False)
    return out.prediction, tf.sigmoid(tf.stack([out.logits[name] for name in model.head_names], axis=-1))


class SplitEvaluator:
    """``evaluator(predict, split)``: AUC / logloss of ŷ and of every head, and ŷ's gAUC over
    ``group_field`` when given; the parsed split is cached in memory when ``train.in_memory``."""

    def __init__(self, transform: TransformDir, train: TrainConfig, group_field: Optional[str] = None):
        self.transform, self.train, self.group_field = transform, train, group_field
        self._cache: dict = {}

    def dataset(self, split: str) -> tf.data.Dataset:
        if split not in self._cache:
            ds = parsed_dataset(self.transform.files(split), self.transform.contract,
                                self.train.eval_batch_size).map(cast_features)
            self._cache[split] = ds.cache() if self.train.in_memory else ds
        return self._cache[split]

    def __call__(self, predict: Callable[[dict], tuple], split: str) -> dict:
        labels, served, heads, groups = [], [], [], []
        fields = self.transform.contract.fields
        for batch in self.dataset(split):
            labels.append(batch[LABEL_KEY].numpy())
            if self.group_field:
                groups.append(batch[self.group_field].numpy())
            prediction, head_probabilities = predict({f: batch[f] for f in fields})
            served.append(prediction.numpy())
            heads.append(head_probabilities.numpy())
        return evaluate(np.concatenate(labels), np.concatenate(served), np.concatenate(heads),
                        np.concatenate(groups) if groups else None)

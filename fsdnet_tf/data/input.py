"""tf.data input for training and evaluation from the transformed TFRecords."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import tensorflow as tf

from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.features import LABEL_KEY

log = logging.getLogger(__name__)
_READ_BATCH = 50_000


def parsed_dataset(files: list[str], contract, batch_size: int) -> tf.data.Dataset:
    spec = contract.transformed_feature_spec()
    return (tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
            .batch(batch_size)
            .map(lambda records: tf.io.parse_example(records, spec), num_parallel_calls=tf.data.AUTOTUNE))


def load_arrays(transform: TransformDir, split: str) -> dict[str, np.ndarray]:
    """A whole split in memory: {field: int32 ids, label: float32}. Ordered as written."""
    parts: dict[str, list] = {}
    for batch in parsed_dataset(transform.files(split), transform.contract, _READ_BATCH):
        for key, value in batch.items():
            parts.setdefault(key, []).append(value.numpy())
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    for field in transform.contract.fields:
        arrays[field] = arrays[field].astype(np.int32)
    arrays[LABEL_KEY] = arrays[LABEL_KEY].astype(np.float32)
    return arrays


def flip_labels(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Label-noise study: flip each label with probability ``rate`` (seeded)."""
    if rate == 0:
        return labels
    flip = np.random.default_rng([seed, 0x401]).random(labels.shape[0]) < rate
    return np.where(flip, 1.0 - labels, labels).astype(labels.dtype)


class TrainInput:
    """Per-epoch shuffled training batches, reproducible from (seed, epoch).

    In memory the permutation is drawn with numpy from (seed, epoch); streaming uses a
    shuffle buffer seeded the same way. Either way an epoch restarted after a crash
    sees the same batches, which is what makes resume reproducible.

    In memory the columns live in (CPU) variables and every batch is a ``tf.gather`` of
    the permutation's next rows inside tf.data: no Python runs per batch. (A generator
    feeding tf.data needs the GIL for every element while the training thread holds it,
    and waited Python's 5 ms switch interval thousands of times an epoch: epochs took
    multiples of 20.48 s = 4096 × 5 ms.)
    """

    def __init__(self, transform: TransformDir, batch_size: int, seed: int, in_memory: bool,
                 shuffle_buffer: int, label_noise: float = 0.0):
        self.transform, self.batch_size, self.seed = transform, batch_size, seed
        self.in_memory, self.shuffle_buffer = in_memory, shuffle_buffer
        self.columns: Optional[dict] = None
        self.rows: Optional[np.ndarray] = None      # the rows epochs cover, when some are held out
        if in_memory:
            arrays = load_arrays(transform, "train")
            arrays[LABEL_KEY] = flip_labels(arrays[LABEL_KEY], label_noise, seed)
            self.num_examples = len(arrays[LABEL_KEY])
            # Variables, not constants: a graph constant is limited to 2 GB, a Criteo-sized table is not.
            with tf.init_scope(), tf.device("/cpu:0"):
                self.columns = {k: tf.Variable(v, trainable=False, name=f"train_{k}") for k, v in arrays.items()}
        else:
            if label_noise:
                raise ValueError("train.label_noise needs train.in_memory: true")
            self.num_examples = transform.stats["splits"]["train"]["written"]

    def add_column(self, name: str, values: np.ndarray) -> None:
        """One more per-row training column (in memory), gathered into every batch as ``name``."""
        if not self.in_memory:
            raise ValueError("extra training columns need train.in_memory: true")
        if len(values) != self.num_examples:
            raise ValueError(f"column {name!r} has {len(values)} rows, the training split {self.num_examples}")
        with tf.init_scope(), tf.device("/cpu:0"):
            self.columns[name] = tf.Variable(values, trainable=False, name=f"train_{name}")

    def hold_out(self, fraction: float) -> np.ndarray:
        """Set aside ``fraction`` of the rows (a permutation seeded by ``seed``) and return them;
        from then on epochs cover only the others."""
        if not self.in_memory:
            raise ValueError("held-out training rows need train.in_memory: true")
        if self.rows is not None:
            raise ValueError("rows are already held out")
        order = np.random.default_rng([self.seed, 0x4E1D]).permutation(self.num_examples)
        held = max(1, int(round(fraction * self.num_examples)))
        self.rows, self.num_examples = np.sort(order[held:]), self.num_examples - held
        return np.sort(order[:held])

    def steps_per_epoch(self, max_steps: Optional[int] = None) -> int:
        """Batches in an epoch (the last may be short), at most ``max_steps``."""
        steps = -(-self.num_examples // self.batch_size)
        return steps if max_steps is None else min(steps, max_steps)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The epoch's permutation of the training rows (in memory), from (seed, epoch)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
        return order if self.rows is None else self.rows[order]

    def gather(self, rows: tf.Tensor) -> dict:
        """The batch of the given rows, gathered from the in-memory columns (inside a graph)."""
        return {k: tf.gather(v, rows) for k, v in self.columns.items()}

    def dataset(self, epoch: int, input_context: Optional[tf.distribute.InputContext] = None,
                max_steps: Optional[int] = None, seeded_shuffle: bool = True) -> tf.data.Dataset:
        """``seeded_shuffle=False`` (streaming only): each reader draws its own order, so that
        parameter-server workers reading every file do not train on the same batches."""
        shards = input_context.num_input_pipelines if input_context else 1
        index = input_context.input_pipeline_id if input_context else 0
        batch = (input_context.get_per_replica_batch_size(self.batch_size)
                 if input_context else self.batch_size)
        if self.in_memory:
            ds = tf.data.Dataset.from_tensor_slices(self.epoch_order(epoch)).batch(self.batch_size)
            if shards > 1:
                # Worker k takes every k-th example of each global batch so that shards stay aligned.
                ds = ds.map(lambda rows: rows[index::shards])
            ds = ds.map(self.gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            ds = (tf.data.TFRecordDataset(self.transform.files("train"), compression_type="GZIP")
                  .shard(shards, index)
                  .shuffle(self.shuffle_buffer, seed=self.seed * 100_003 + epoch if seeded_shuffle else None))
            spec = self.transform.contract.transformed_feature_spec()
            ds = ds.batch(batch).map(lambda r: tf.io.parse_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
            ds = ds.map(cast_features)
        if max_steps is not None:
            ds = ds.take(max_steps)
        return ds.prefetch(tf.data.AUTOTUNE)


def cast_features(batch: dict) -> dict:
    return {k: (tf.cast(v, tf.float32) if k == LABEL_KEY else tf.cast(v, tf.int32)) for k, v in batch.items()}

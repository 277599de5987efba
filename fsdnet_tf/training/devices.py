"""Choosing where training runs: GPUs when present, workers from TF_CONFIG, else the CPU."""
from __future__ import annotations

import json
import logging
import os

import tensorflow as tf
import tf_keras

log = logging.getLogger(__name__)


def cluster_workers() -> int:
    spec = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return len(spec.get("worker", [])) + len(spec.get("chief", []))


def choose_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored from TF_CONFIG; Mirrored on several GPUs; one GPU; else the CPU."""
    if cluster_workers() > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
        elif gpus:
            strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
        else:
            strategy = tf.distribute.get_strategy()
    log.info("distribution: %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def set_precision(mixed: bool) -> None:
    tf_keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")

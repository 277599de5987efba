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


# Split the CPU into this many logical devices and mirror over them: the multi-GPU code path
# (MirroredStrategy, per-replica batches, all-reduce), exercised on a machine without GPUs.
CPU_REPLICAS_ENV = "FSDNET_CPU_REPLICAS"


def cpu_replicas() -> int:
    value = os.environ.get(CPU_REPLICAS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{CPU_REPLICAS_ENV}={value!r}: expected a whole number >= 1")
    return int(value)


def mirrored_cpu_strategy(replicas: int) -> tf.distribute.Strategy:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as err:
        raise RuntimeError(f"{CPU_REPLICAS_ENV}={replicas}: TensorFlow's devices are already initialised in "
                           "this process; set it before the process starts") from err
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])


def choose_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored from TF_CONFIG; Mirrored on several GPUs; one GPU; Mirrored over
    ``FSDNET_CPU_REPLICAS`` logical CPUs when set; else the CPU."""
    if cluster_workers() > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
        elif gpus:
            strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
        elif cpu_replicas() > 1:
            strategy = mirrored_cpu_strategy(cpu_replicas())
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

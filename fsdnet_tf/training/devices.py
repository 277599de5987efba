"""Choosing where training runs: GPUs when present, workers from TF_CONFIG, else the CPU."""
from __future__ import annotations

import json
import logging
import os

import tensorflow as tf
import tf_keras

log = logging.getLogger(__name__)


def tf_config() -> dict:
    return json.loads(os.environ.get("TF_CONFIG", "{}"))


def cluster_workers() -> int:
    spec = tf_config().get("cluster", {})
    return len(spec.get("worker", [])) + len(spec.get("chief", []))


def parameter_servers() -> int:
    """The ``ps`` tasks of TF_CONFIG's cluster: with any, the chief coordinates ParameterServerStrategy."""
    return len(tf_config().get("cluster", {}).get("ps", []))


def serves_parameter_server_cluster() -> bool:
    """A worker or parameter-server task of a ParameterServerStrategy cluster: it runs a server, not a loop."""
    return parameter_servers() > 0 and tf_config().get("task", {}).get("type") in ("worker", "ps")


def run_cluster_server() -> None:
    """Serve this TF_CONFIG task (a worker runs the chief's scheduled steps, a ps holds variable
    shards) until the process is stopped."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    log.info("serving %s %d of a parameter-server cluster", resolver.task_type, resolver.task_id)
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, protocol=resolver.rpc_layer or "grpc", start=True)
    server.join()


def parameter_server_strategy(min_shard_bytes: int) -> tf.distribute.Strategy:
    """The chief of a TF_CONFIG cluster with ps tasks: variables live on the parameter servers, every
    one larger than ``min_shard_bytes`` split across them (embedding tables row-wise), and steps are
    scheduled on the workers by a ClusterCoordinator."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=parameter_servers())
    return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def coordinator_of(strategy: tf.distribute.Strategy):
    """The ClusterCoordinator that schedules steps for a ParameterServerStrategy, else None."""
    if not isinstance(strategy, tf.distribute.ParameterServerStrategy):
        return None
    return tf.distribute.coordinator.ClusterCoordinator(strategy)     # one per strategy: created once, then shared


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


def choose_strategy(min_shard_bytes: int = 256 << 10) -> tf.distribute.Strategy:
    """ParameterServer from TF_CONFIG with ps tasks; MultiWorkerMirrored from TF_CONFIG; Mirrored on
    several GPUs; one GPU; Mirrored over ``FSDNET_CPU_REPLICAS`` logical CPUs when set; else the CPU."""
    if parameter_servers():
        strategy = parameter_server_strategy(min_shard_bytes)
    elif cluster_workers() > 1:
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

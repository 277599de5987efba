"""The training step and the epoch loop around it.

In memory on one replica (a CPU, one GPU) batches do not pass through tf.data at all:
each batch is gathered from the training columns by the epoch's permutation, so no Python
generator has to keep up with the device. Otherwise (streaming, several replicas or
workers) the loop pulls from the distributed tf.data iterator. Either way the batches and
their order are those of the epoch's permutation (or seeded shuffle).

``train.steps_per_execution`` = 1 (the default) calls the step once per batch, with the
logged terms summed on the device and no host sync until the progress bar or the epoch's
end: results are bit-identical to the step-by-step loop the studies were trained with.
K > 1 runs K steps per ``tf.function`` call in an in-graph loop (for accelerators, where
the per-call dispatch weighs): the same computation, but compiled inside a loop its float
rounding differs, so runs are reproducible among themselves but not bit-identical to K = 1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.data.input import TrainInput
from fsdnet_tf.features import LABEL_KEY
from fsdnet_tf.losses import Objective
from fsdnet_tf.training import devices

PROGRESS_EVERY = 5       # steps between progress-bar updates (each one waits for the device)


def make_train_step(model, objective: Objective, optimizer, strategy: tf.distribute.Strategy,
                    mixed_precision: bool = False, jit_compile: bool = False):
    """One optimiser step on a global batch: objective + the model's regularisers, clipped Adam."""
    def loss_fn(batch, replicas: int):
        labels = batch[LABEL_KEY]
        features = {f: batch[f] for f in model.fields}
        global_batch = tf.shape(labels)[0] * replicas
        values = objective(labels, model.named_outputs(features, training=True), global_batch_size=global_batch)
        regulariser = tf.add_n(model.losses) / replicas if model.losses else tf.zeros([])
        return {**values.as_dict(), "regulariser": regulariser}, values.total + regulariser
    return make_step(loss_fn, model.trainable_variables, optimizer, strategy, mixed_precision, jit_compile)


@dataclass(frozen=True)
class SecondGroup:
    """Variables stepped by their own optimiser in the same step (OptFusion's architecture):
    with ``loss_fn`` None, by the gradient of the same forward pass as the network's; else by
    that of ``loss_fn(batch, replicas) -> (logged values, total)``, taken before the network's step."""
    variables: list
    optimizer: object
    loss_fn: Optional[Callable] = None


def make_step(loss_fn, variables: list, optimizer, strategy: tf.distribute.Strategy,
              mixed_precision: bool = False, jit_compile: bool = False, second: Optional[SecondGroup] = None):
    """A ``tf.function`` step: ``loss_fn(batch, replicas) -> (logged values, total)`` on each
    replica, gradients of ``variables`` only, values summed over replicas (plus ``loss``)."""
    replicas = strategy.num_replicas_in_sync
    if second is not None and mixed_precision:
        raise ValueError("a second variable group has no loss scale of its own: train it in float32")
    same_pass = second is not None and second.loss_fn is None
    stepped = variables + second.variables if same_pass else variables

    def replica_step(batch):
        logged = {}
        if second is not None and not same_pass:
            with tf.GradientTape() as tape:
                second_values, second_total = second.loss_fn(batch, replicas)
            second.optimizer.apply_gradients(zip(tape.gradient(second_total, second.variables), second.variables))
            logged = {f"second_{k}": v for k, v in second_values.items()}
        with tf.GradientTape() as tape:
            values, total = loss_fn(batch, replicas)
            scaled = optimizer.get_scaled_loss(total) if mixed_precision else total
        grads = tape.gradient(scaled, stepped)
        if mixed_precision:
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.apply_gradients(zip(grads[:len(variables)], variables))
        if same_pass:
            second.optimizer.apply_gradients(zip(grads[len(variables):], second.variables))
        return {**values, **logged, "loss": total}

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
    return train_step


class EpochRunner:
    """Runs one epoch of ``train_step`` in chunks; returns the summed logged values and the step count."""

    def __init__(self, train_step, train_input: TrainInput, strategy: tf.distribute.Strategy,
                 steps_per_execution: int, logged_keys: tuple[str, ...]):
        self.train_step, self.train_input, self.strategy = train_step, train_input, strategy
        self.steps_per_execution, self.keys = steps_per_execution, tuple(logged_keys)
        self.coordinator = devices.coordinator_of(strategy)
        self.in_graph_rows = (train_input.in_memory and strategy.num_replicas_in_sync == 1
                              and self.coordinator is None)
        self._gather = tf.function(train_input.gather) if train_input.in_memory else None
        sums_spec = {k: tf.TensorSpec([], tf.float32) for k in self.keys}
        self._run_rows = tf.function(self._rows_chunk, input_signature=[tf.TensorSpec([None, None], tf.int64),
                                                                        sums_spec])
        self._run_iterator = tf.function(self._iterator_chunk)

    def _accumulate(self, sums: dict, values: dict) -> dict:
        return {k: sums[k] + tf.cast(values[k], tf.float32) for k in self.keys}

    def _rows_chunk(self, rows: tf.Tensor, sums: dict):
        last = sums
        for i in tf.range(tf.shape(rows)[0]):
            last = self.train_step(self.train_input.gather(rows[i]))
            last = {k: tf.cast(last[k], tf.float32) for k in self.keys}
            sums = self._accumulate(sums, last)
        return sums, last

    def _iterator_chunk(self, iterator, steps: tf.Tensor, sums: dict):
        last = sums
        for _ in tf.range(steps):
            last = self.train_step(next(iterator))
            last = {k: tf.cast(last[k], tf.float32) for k in self.keys}
            sums = self._accumulate(sums, last)
        return sums, last

    def run(self, epoch: int, max_steps: Optional[int],
            progress: Optional[Callable[[int, dict], None]] = None) -> tuple[dict, int]:
        if self.coordinator is not None:
            return self._run_scheduled(epoch, max_steps, progress)
        sums = {k: tf.zeros([], tf.float32) for k in self.keys}
        done = 0
        if self.steps_per_execution == 1:
            for batch in self._batches(epoch, max_steps):
                last = self.train_step(batch)
                sums = self._accumulate(sums, last)
                done += 1
                if progress and done % PROGRESS_EVERY == 0:
                    progress(done, last)
            if progress and done % PROGRESS_EVERY:
                progress(done, last)
            return sums, done
        for chunk in self._chunks(epoch, max_steps):
            if self.in_graph_rows:
                sums, last = self._run_rows(tf.constant(chunk), sums)
                done += chunk.shape[0]
            else:
                iterator, steps = chunk
                sums, last = self._run_iterator(iterator, tf.constant(steps, tf.int64), sums)
                done += steps
            if progress:
                progress(done, last)
        return sums, done

    def _run_scheduled(self, epoch: int, max_steps: Optional[int], progress) -> tuple[dict, int]:
        """ParameterServerStrategy: the epoch's steps, ``steps_per_execution`` per call, scheduled on
        whichever worker is free; each worker streams its own shuffle of the TFRecords (asynchronous
        training: neither the batches nor their order are reproducible)."""
        steps, k = self.train_input.steps_per_epoch(max_steps), self.steps_per_execution
        dataset = self.coordinator.create_per_worker_dataset(
            lambda: self.train_input.dataset(epoch, seeded_shuffle=False).repeat())
        iterator, zeros = iter(dataset), {key: tf.zeros([], tf.float32) for key in self.keys}
        scheduled = [self.coordinator.schedule(self._run_iterator,
                                               args=(iterator, tf.constant(min(k, steps - start), tf.int64), zeros))
                     for start in range(0, steps, k)]
        self.coordinator.join()
        sums, last = {key: 0.0 for key in self.keys}, None
        for remote in scheduled:
            chunk, last = remote.fetch()
            sums = {key: sums[key] + float(chunk[key]) for key in self.keys}
        if progress:
            progress(steps, last)
        return sums, steps

    def epoch_record(self, epoch: int, learning_rate: float, max_steps: Optional[int], progress_bar: bool) -> dict:
        """Run one epoch (with a progress bar if asked); its timing and mean logged values."""
        steps = self.train_input.steps_per_epoch(max_steps)
        bar = tf_keras.utils.Progbar(steps, unit_name="step") if progress_bar else None
        if bar:
            print(f"epoch {epoch} (lr {learning_rate:.0e})")

        def progress(done: int, last: dict) -> None:
            bar.update(done, [("loss", float(last["loss"])), ("bce", float(last["bce"]))])

        start = time.perf_counter()
        sums, count = self.run(epoch, max_steps, progress if bar else None)
        train_seconds = time.perf_counter() - start
        examples = min(count * self.train_input.batch_size, self.train_input.num_examples)
        return {"epoch": epoch, "train_seconds": round(train_seconds, 3),
                "train_examples_per_second": round(examples / train_seconds, 1),
                "train": {k: float(v) / count for k, v in sums.items()}}

    def _batches(self, epoch: int, max_steps: Optional[int]):
        if self.in_graph_rows:
            for chunk in self._chunks(epoch, max_steps):
                for rows in chunk:
                    yield self._gather(tf.constant(rows))
            return
        yield from self.strategy.distribute_datasets_from_function(
            lambda ctx: self.train_input.dataset(epoch, ctx, max_steps))

    def _chunks(self, epoch: int, max_steps: Optional[int]):
        batch, k = self.train_input.batch_size, self.steps_per_execution
        if self.in_graph_rows:
            order = self.train_input.epoch_order(epoch)[:self.train_input.steps_per_epoch(max_steps) * batch]
            full = len(order) // batch
            rows = order[:full * batch].reshape(full, batch)
            for start in range(0, full, k):
                yield rows[start:start + k]
            if len(order) > full * batch:       # the last, smaller batch as a chunk of its own
                yield order[full * batch:][None, :]
            return
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.train_input.dataset(epoch, ctx, max_steps))
        steps = self.train_input.steps_per_epoch(max_steps)
        iterator = iter(dataset)
        for start in range(0, steps, k):
            yield iterator, min(k, steps - start)

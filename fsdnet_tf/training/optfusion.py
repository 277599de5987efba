"""OptFusion runs: search → derive → retrain (SPEC_WAVE2 §3.4–3.5).

``search``: the supernet and its architecture (connection logits A, operation logits φ) learn
together, BCE plus the embedding penalty; the network's Adam and the architecture's Adam
step on every batch from one forward and backward pass (``arch_step: same_batch``), or the
architecture on a batch of held-out training rows first (``held_out``). After every epoch,
valid AUC; the best epoch's weights are kept; no learning-rate schedule.
``derive``: g* = 1[A > 0] and the operation of every fusion point from the best search
checkpoint → ``architecture.json`` and ``architecture.png`` (a function of A and φ alone).
``retrain``: the derived network, without the blocks the output does not reach, inheriting
the search's weights (its start competing as epoch 0) or freshly initialised. Run directory::

    config.yaml run.json progress.json metrics.json architecture.json architecture.png
    checkpoints/search/{last,best}  checkpoints/retrain/{last,best}  tensorboard/

``progress.json`` holds each phase's state, so a killed run resumes in its phase and epoch.
With ``model.optfusion.search_run`` the search of that finished run is derived and inherited;
with ``model.optfusion.architecture`` there is no search: the given wiring (a pattern or an
architecture.json) is trained from a fresh initialisation.
"""
from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ConfigError, load_config
from fsdnet_tf.data.input import TrainInput
from fsdnet_tf.features import LABEL_KEY
from fsdnet_tf.models import count_parameters
from fsdnet_tf.models.architecture import (OPERATIONS, Architecture, derive, draw, fusion_destinations,
                                           given_architecture, used_gates)
from fsdnet_tf.models.optfusion import OUTPUT_HEAD, build_optfusion
from fsdnet_tf.preflight import require_finished_run
from fsdnet_tf.training.epoch_loop import EpochRunner, SecondGroup, make_step
from fsdnet_tf.training.evaluation import SplitEvaluator, predictions
from fsdnet_tf.training.phase_loop import PhaseLoop, Schedule, initial_state, log_epoch, write_json_atomic
from fsdnet_tf.training.trainer import Trainer, run_transform

log = logging.getLogger(__name__)

ARCHITECTURE_FILE, ARCHITECTURE_PLOT = "architecture.json", "architecture.png"
# Settings a search_run must share with this run for its weights to fit the derived network.
SEARCH_SHAPE_KEYS = ("embedding_dim", "cross_layers")
SEARCH_SHAPE_OPTFUSION_KEYS = ("product", "block_width", "width_adapter", "emb_std", "batch_norm")


def bce_loss(model, batch: dict, replicas: int) -> tuple[dict, tf.Tensor]:
    labels = tf.cast(batch[LABEL_KEY], tf.float32)
    logit = model.named_outputs({f: batch[f] for f in model.fields}, training=True).logits[OUTPUT_HEAD]
    global_batch = tf.cast(tf.shape(labels)[0] * replicas, tf.float32)
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logit)) / global_batch


def bce_objective(model):
    """``loss_fn(batch, replicas)`` of both phases: BCE of the output and the embedding penalty."""
    def loss_fn(batch, replicas):
        bce = bce_loss(model, batch, replicas)
        regulariser = tf.add_n(model.losses) / replicas if model.losses else tf.zeros([])
        return {"bce": bce, "regulariser": regulariser}, bce + regulariser
    return loss_fn


def architecture_summary(model) -> dict:
    """The wiring the supernet would derive now: open gates and argmax operation per fusion point."""
    network = model.network
    a, phi = network.connection_logits.numpy(), network.operation_logits.numpy()
    return {"open_gates": int(sum(a[r, k] > 0 for r, k in used_gates(network.num_layers))),
            "operations": [OPERATIONS[int(np.argmax(row))] for row in phi]}


def check_search_run(search_dir: pathlib.Path, config, fields: tuple) -> dict:
    """The finished OptFusion run whose search this run inherits; returns its metrics."""
    require_finished_run(search_dir)
    other = load_config(str(search_dir / "config.yaml"))
    if other.model.type != "optfusion":
        raise ConfigError(f"model.optfusion.search_run: {search_dir} is a {other.model.type} run, not optfusion")
    for key in SEARCH_SHAPE_KEYS:
        if getattr(other.model, key) != getattr(config.model, key):
            raise ConfigError(f"model.{key}: {getattr(config.model, key)}, but the search in {search_dir} used "
                              f"{getattr(other.model, key)}; the inherited weights would not fit")
    for key in SEARCH_SHAPE_OPTFUSION_KEYS:
        if getattr(other.model.optfusion, key) != getattr(config.model.optfusion, key):
            raise ConfigError(f"model.optfusion.{key}: differs from the search in {search_dir}")
    if tuple(run_transform(search_dir).contract.fields) != tuple(fields):
        raise ConfigError(f"model.optfusion.search_run: {search_dir} was trained on other fields")
    metrics = json.loads((search_dir / "metrics.json").read_text())
    if "search" not in metrics.get("phases", {}):
        raise ConfigError(f"model.optfusion.search_run: {search_dir} has no search phase of its own")
    return metrics


def phase_summary(state: dict) -> dict:
    """What metrics.json keeps of a finished phase."""
    return {"best_epoch": state["best_epoch"], "epochs": len(state["epochs"]),
            "best_checkpoint": state["best_checkpoint"], "seconds": state["phase_seconds"], **state["result"]}


class OptFusionTrainer(Trainer):
    """Runs the phases of an ``optfusion`` config; ``run()`` returns the re-trained model's metrics."""

    def run(self) -> dict:
        progress, started, finished = self._start_phases()
        if finished:
            return finished
        o = self.config.model.optfusion
        if self.config.train.mixed_precision:
            raise ConfigError("train.mixed_precision: the OptFusion search steps two optimisers with one loss "
                              "scale; train it in float32")
        if o.arch_step == "held_out" and not self.config.train.in_memory:
            raise ConfigError("model.optfusion.arch_step: held_out needs train.in_memory: true")
        self.evaluator = SplitEvaluator(self.transform, self.config.train, self.config.dataset.group_field)
        self._writer = tf.summary.create_file_writer(str(self.write_dir / "tensorboard"))
        self._started, self._progress = started, progress
        search, search_checkpoint = None, None
        if o.architecture:
            architecture = self._given_architecture()
        else:
            if o.search_run:
                search_dir = pathlib.Path(o.search_run)
                metrics = check_search_run(search_dir, self.config, self.transform.contract.fields)
                search = dict(metrics["phases"]["search"], run_dir=str(search_dir.resolve()))
            else:
                search_dir = self.write_dir
                if "result" not in progress["phases"].get("search", {}):
                    progress["phases"]["search"] = self._search(progress["phases"].get("search"))
                search = phase_summary(progress["phases"]["search"])
            search_checkpoint = search_dir / search["best_checkpoint"]
            architecture = self._derive(search_checkpoint)
        if "result" not in progress["phases"].get("retrain", {}):
            progress["phases"]["retrain"] = self._retrain(architecture, search_checkpoint,
                                                          progress["phases"].get("retrain"))
        return self._finish_optfusion(architecture, search, time.perf_counter() - started)

    # ------------------------------------------------------------------ shared
    def _save_state(self, phase: str, state: dict) -> None:
        self._progress["phases"][phase] = state
        self._progress["seconds"] = time.perf_counter() - self._started
        write_json_atomic(self.write_dir / "progress.json", self._progress)

    def _schedule(self, learning_rate: float, lr_decay: float, eval_at_start: bool) -> Schedule:
        o, t = self.config.model.optfusion, self.config.train
        return Schedule(learning_rate, lr_decay, min(t.min_lr, learning_rate), o.patience, o.max_epochs, t.min_delta,
                        eval_at_start=eval_at_start, monitor=tuple(t.monitor.items()))

    def _network_optimizer(self, learning_rate: float, variables: list):
        optimizer = tf_keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=self.config.train.clip_norm)
        optimizer.build(variables)
        return optimizer

    def _run_phase(self, phase: str, model, optimizer, step, train_input: TrainInput, schedule: Schedule,
                   state: Optional[dict], extra_state: Optional[dict] = None, after_epoch=None) -> dict:
        cfg = self.config
        keys = ("bce", "regulariser", "loss") + (("second_bce",) if cfg.model.optfusion.arch_step == "held_out"
                                                 and phase == "search" else ())
        runner = EpochRunner(step, train_input, self.strategy, cfg.train.steps_per_execution, keys)
        predict = tf.function(lambda features: predictions(model, features))

        def train_epoch(epoch: int, lr: float) -> dict:
            record = runner.epoch_record(epoch, lr, cfg.train.max_steps_per_epoch, self.progress_bar and self.chief)
            return {**record, **(after_epoch() if after_epoch else {})}

        loop = PhaseLoop(self.write_dir, f"checkpoints/{phase}", model, optimizer, schedule, train_epoch,
                         lambda: self.evaluator(predict, "valid"), lambda s: self._save_state(phase, s),
                         lambda record: log_epoch(self._writer, record, prefix=f"{phase}/"), extra_state)
        if state is not None:
            loop.restore_last(state)
            log.info("resuming phase %s after epoch %d", phase, len(state["epochs"]))
        phase_started = time.perf_counter() - (state or {}).get("phase_seconds", 0.0)
        state = loop.run(state or initial_state(schedule))
        loop.restore_best(state)
        state["phase_seconds"] = round(time.perf_counter() - phase_started, 2)
        state["result"] = {split: self.evaluator(predict, split) for split in ("valid", "test")}
        self._save_state(phase, state)
        return state

    def _train_input(self) -> TrainInput:
        cfg = self.config
        return TrainInput(self.transform, cfg.model.optfusion.batch_size, cfg.seed, cfg.train.in_memory,
                          cfg.train.shuffle_buffer, cfg.train.label_noise)

    # ------------------------------------------------------------------ phases
    def _search(self, state: Optional[dict]) -> dict:
        cfg, o = self.config, self.config.model.optfusion
        fields, vocab = self.transform.contract.fields, self.transform.vocab_sizes()
        with self.strategy.scope():
            tf_keras.utils.set_random_seed(cfg.seed)
            model = build_optfusion(cfg.model, fields, vocab, cfg.seed)
            network = model.network_variables
            optimizer = self._network_optimizer(o.learning_rate, network)
            arch_optimizer = tf_keras.optimizers.Adam(learning_rate=o.arch_lr)
            arch_optimizer.build(model.architecture_variables)
        train_input = self._train_input()

        arch_loss = None
        if o.arch_step == "held_out":
            held = tf.constant(train_input.hold_out(o.held_out_fraction), tf.int64)

            def held_out_loss(batch, replicas):
                # Rows drawn from (seed, step), so a resumed search sees the same architecture batches.
                seed = tf.stack([tf.constant(cfg.seed, tf.int64), tf.cast(arch_optimizer.iterations, tf.int64)])
                rows = tf.random.stateless_uniform([o.batch_size], seed,
                                                   maxval=tf.shape(held, out_type=tf.int64)[0], dtype=tf.int64)
                bce = bce_loss(model, train_input.gather(tf.gather(held, rows)), replicas)
                return {"bce": bce}, bce
            arch_loss = held_out_loss
            log.info("search: the architecture steps on %d held-out training rows", int(held.shape[0]))
        step = make_step(bce_objective(model), network, optimizer, self.strategy,
                         second=SecondGroup(model.architecture_variables, arch_optimizer, arch_loss))
        log.info("phase search: supernet of %d network and %d architecture parameters",
                 count_parameters(model) - sum(int(np.prod(v.shape)) for v in model.architecture_variables),
                 sum(int(np.prod(v.shape)) for v in model.architecture_variables))
        return self._run_phase("search", model, optimizer, step, train_input,
                               self._schedule(o.learning_rate, o.lr_decay, False), state,
                               {"architecture_optimizer": arch_optimizer}, after_epoch=lambda: architecture_summary(model))

    def _derive(self, checkpoint: pathlib.Path) -> Architecture:
        cfg, o = self.config, self.config.model.optfusion
        fields, vocab = self.transform.contract.fields, self.transform.vocab_sizes()
        supernet = build_optfusion(cfg.model, fields, vocab, cfg.seed)
        tf.train.Checkpoint(model=supernet).read(str(checkpoint)).expect_partial().assert_existing_objects_matched()
        network = supernet.network
        architecture = derive(network.connection_logits.numpy(), network.operation_logits.numpy(),
                              network.num_layers, network.width, o.mode, o.product)
        architecture.write(self.write_dir / ARCHITECTURE_FILE)
        draw(architecture, self.write_dir / ARCHITECTURE_PLOT)
        names = architecture.names
        log.info("derived: %d open gates, %d blocks reachable; operations %s", len(architecture.open_gates),
                 len(architecture.reachable()) - 1,
                 ", ".join(f"{names[r]} {architecture.operations[r] if o.mode != 'soft' else 'mix'}"
                           for r in fusion_destinations(network.num_layers)))
        return architecture

    def _given_architecture(self) -> Architecture:
        """``model.optfusion.architecture``: a pattern or another run's wiring, kept in this run
        directory as if derived here."""
        cfg, o = self.config, self.config.model.optfusion
        width = len(self.transform.contract.fields) * cfg.model.embedding_dim
        architecture = given_architecture(o.architecture, cfg.model.cross_layers, width, o.product)
        if (architecture.mode, architecture.product) != (o.mode, o.product):
            raise ConfigError(f"model.optfusion.mode / product: {o.mode} / {o.product}, but the architecture "
                              f"{o.architecture} is {architecture.mode} / {architecture.product}")
        architecture.write(self.write_dir / ARCHITECTURE_FILE)
        draw(architecture, self.write_dir / ARCHITECTURE_PLOT)
        log.info("given architecture %s: %d open gates, %d blocks reachable", o.architecture,
                 len(architecture.open_gates), len(architecture.reachable()) - 1)
        return architecture

    def _retrain(self, architecture: Architecture, search_checkpoint: Optional[pathlib.Path],
                 state: Optional[dict]) -> dict:
        cfg, o = self.config, self.config.model.optfusion
        fields, vocab = self.transform.contract.fields, self.transform.vocab_sizes()
        learning_rate = o.retrain_learning_rate or o.learning_rate
        lr_decay = o.lr_decay if o.retrain_lr_decay is None else o.retrain_lr_decay
        with self.strategy.scope():
            tf_keras.utils.set_random_seed(cfg.seed)
            model = build_optfusion(cfg.model, fields, vocab, cfg.seed, architecture)
            optimizer = self._network_optimizer(learning_rate, model.trainable_variables)
        inherit = o.retrain_init == "inherit"
        if inherit and state is None:
            tf.train.Checkpoint(model=model).read(str(search_checkpoint)).expect_partial() \
                .assert_existing_objects_matched()
        train_input = self._train_input()

        step = make_step(bce_objective(model), model.trainable_variables, optimizer, self.strategy)
        log.info("phase retrain: OptFusion-%s, %d parameters, %s weights", o.mode, count_parameters(model),
                 "inherited" if inherit else "fresh")
        return self._run_phase("retrain", model, optimizer, step, train_input,
                               self._schedule(learning_rate, lr_decay, inherit), state)

    # ------------------------------------------------------------------ result
    def _finish_optfusion(self, architecture: Architecture, search: dict, seconds: float) -> dict:
        from fsdnet_tf.training.trainer import restore_model
        phases = self._progress["phases"]
        model = restore_model(self.write_dir, self.config, self.transform,
                              best_checkpoint=phases["retrain"]["best_checkpoint"])[0]
        metrics = self._phases_metrics(self._progress, [p for p in ("search", "retrain") if p in phases], model,
                                       seconds)
        metrics.update(architecture=architecture.to_json(),
                       phases={**({"search": search} if search else {}), "retrain": phase_summary(phases["retrain"])})
        return self._publish_phases(metrics, self._progress)


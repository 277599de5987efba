"""Training protocol of SPEC §4 with checkpoints and resume.

One phase (:mod:`fsdnet_tf.training.phase_loop`): per epoch a shuffled pass over train,
then ŷ on valid; the best valid AUC is kept, the learning rate decays on a plateau, and the
run stops after ``patience`` epochs without improvement. At the end the best weights are
restored and ŷ and every head are evaluated on valid and test.

Run directory::

    config.yaml run.json progress.json metrics.json training_curves.png
    checkpoints/last/ (model + optimizer, every epoch)  checkpoints/best/ (model)
    tensorboard/

A killed run started again with the same arguments continues after the last
completed epoch: the input order of every epoch depends only on (seed, epoch), and
the dropout generator state is part of the checkpoint, so the result equals an
uninterrupted run's.
"""
from __future__ import annotations

import json
import logging
import pathlib
import shutil
import tempfile
import time
from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf import __version__
from fsdnet_tf.config import Config, ConfigError, dump_config, load_config, same_experiment, to_dict
from fsdnet_tf.data.input import TrainInput
from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.preflight import require_finished_run
from fsdnet_tf.losses import Objective
from fsdnet_tf.models import build_model, count_parameters
from fsdnet_tf.training import devices
from fsdnet_tf.training.epoch_loop import EpochRunner, make_train_step
from fsdnet_tf.training.evaluation import SplitEvaluator, predictions
from fsdnet_tf.training.phase_loop import PhaseLoop, Schedule, initial_state, log_epoch, write_json_atomic

log = logging.getLogger(__name__)


def run_transform(run_dir: str | pathlib.Path) -> TransformDir:
    """The transform output a run was trained on (recorded in its run.json)."""
    return TransformDir(json.loads((pathlib.Path(run_dir) / "run.json").read_text())["transform_dir"])


def restore_model(run_dir: str | pathlib.Path, config: Optional[Config] = None,
                  transform: Optional[TransformDir] = None, for_serving: bool = False,
                  best_checkpoint: Optional[str] = None) -> tuple[tf_keras.Model, Config, TransformDir]:
    """Rebuild a finished run's model with its best weights (for export and evaluation);
    ``for_serving`` leaves out the auxiliary heads the served prediction does not read. A
    KD-DAGFM run gives its student (own embedding, no teacher), an OptFusion run its derived network."""
    run_dir = pathlib.Path(run_dir)
    if best_checkpoint is None:
        require_finished_run(run_dir)
    config = config or load_config(str(run_dir / "config.yaml"))
    transform = transform or run_transform(run_dir)
    devices.set_precision(False)
    fields, vocab = transform.contract.fields, transform.vocab_sizes()
    if config.model.type == "kd_dagfm":
        from fsdnet_tf.models.student import build_student
        model = build_student(config.model, fields, vocab, seed=config.seed)
    elif config.model.type == "optfusion":
        from fsdnet_tf.models.architecture import Architecture
        from fsdnet_tf.models.optfusion import build_optfusion
        model = build_optfusion(config.model, fields, vocab, seed=config.seed,
                                architecture=Architecture.read(run_dir / "architecture.json"))
    else:
        model = build_model(config.model, fields, vocab, seed=config.seed, for_serving=for_serving)
    best = best_checkpoint or json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]
    tf.train.Checkpoint(model=model).read(str(run_dir / best)).expect_partial().assert_existing_objects_matched()
    return model, config, transform


class Trainer:
    def __init__(self, config: Config, transform_dir: str, run_dir: str, progress_bar: bool = True):
        self.config, self.progress_bar = config, progress_bar
        self.transform = TransformDir(transform_dir)
        self.transform.check_matches(config.dataset)
        self.run_dir = pathlib.Path(run_dir)
        self.strategy = devices.choose_strategy(config.train.ps_min_shard_bytes)
        if devices.coordinator_of(self.strategy) is not None and config.train.in_memory:
            raise ConfigError("train.in_memory: the workers of a parameter-server cluster read the TFRecords "
                              "themselves; set train.in_memory=false")
        self.chief = devices.is_chief(self.strategy)
        # Non-chief workers must take part in every save, but into a scratch directory.
        self.write_dir = self.run_dir if self.chief else pathlib.Path(tempfile.mkdtemp(prefix="fsdnet-worker-"))

    # ------------------------------------------------------------------ set-up
    def _prepare_run_dir(self) -> Optional[dict]:
        """Write config.yaml/run.json, or check them and load progress when resuming."""
        self.write_dir.mkdir(parents=True, exist_ok=True)
        config_text = dump_config(self.config)
        saved = self.write_dir / "config.yaml"
        progress = self.write_dir / "progress.json"
        if saved.exists():
            # Compared resolved, so a run saved before a new (defaulted) key existed still resumes.
            try:
                same = same_experiment(load_config(str(saved)), self.config)
            except ConfigError:
                same = False
            if not same:
                raise ConfigError(f"{self.write_dir} holds a run with a different config; "
                                  "use a new --run-dir (or the same config to resume)")
            if progress.exists():
                return json.loads(progress.read_text())
        saved.write_text(config_text)
        write_json_atomic(self.write_dir / "run.json", {
            "transform_dir": str(self.transform.path.resolve()), "fsdnet_tf": __version__,
            "tensorflow": tf.__version__, "replicas": self.strategy.num_replicas_in_sync})
        return None

    def _build(self) -> None:
        cfg = self.config
        tf_keras.utils.set_random_seed(cfg.seed)
        devices.set_precision(cfg.train.mixed_precision)
        with self.strategy.scope():
            self.model = build_model(cfg.model, self.transform.contract.fields, self.transform.vocab_sizes(),
                                     seed=cfg.seed)
            optimizer = tf_keras.optimizers.Adam(
                learning_rate=cfg.train.learning_rate, beta_1=cfg.train.adam_beta_1,
                beta_2=cfg.train.adam_beta_2, epsilon=cfg.train.adam_epsilon,
                global_clipnorm=cfg.train.clip_norm)
            if cfg.train.mixed_precision:
                optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
            # Slot variables exist before any step, so a resumed checkpoint restores them all.
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
            self.objective = Objective.from_config(cfg.model)
        shards = [v.name for v in self.model.variables if "/part_" in v.name]
        if shards:
            split = {name.split("/part_")[0] for name in shards}
            tables = {v.name.split(":")[0] for v in self.model.embedding.variables}
            log.info("variables on %d parameter servers: %d split into %d shards, %d of the %d embedding tables "
                     "among them", devices.parameter_servers(), len(split), len(shards),
                     sum(any(name.startswith(t.split("/part_")[0]) for t in tables) for name in split),
                     len({t.split("/part_")[0] for t in tables}))
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.train_input = TrainInput(self.transform, cfg.train.batch_size, cfg.seed, cfg.train.in_memory,
                                      cfg.train.shuffle_buffer, cfg.train.label_noise)
        self._train_step = make_train_step(self.model, self.objective, self.optimizer, self.strategy,
                                           cfg.train.mixed_precision, cfg.train.jit_compile)
        self.epoch_runner = EpochRunner(self._train_step, self.train_input, self.strategy,
                                        cfg.train.steps_per_execution, self.objective.logged_keys())
        self._predict = tf.function(lambda features: predictions(self.model, features))
        self.evaluator = SplitEvaluator(self.transform, cfg.train, cfg.dataset.group_field)

    def evaluate_split(self, split: str) -> dict:
        return self.evaluator(self._predict, split)

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        progress = self._prepare_run_dir()
        self._build()
        tcfg = self.config.train
        schedule = Schedule(tcfg.learning_rate, tcfg.lr_decay, tcfg.min_lr, tcfg.patience, tcfg.max_epochs,
                            tcfg.min_delta, monitor=tuple(tcfg.monitor.items()))
        loop = PhaseLoop(self.write_dir, "checkpoints", self.model, self.optimizer, schedule, self._train_epoch,
                         lambda: self.evaluate_split("valid"),
                         lambda state: write_json_atomic(self.write_dir / "progress.json", state), self._log_epoch)
        state = progress or initial_state(schedule)
        if progress:
            loop.restore_last(state)
            log.info("resuming %s after epoch %d", self.run_dir, len(state["epochs"]))
        if state["stopped"] and (self.write_dir / "metrics.json").exists():
            log.info("%s already finished", self.run_dir)
            return json.loads((self.write_dir / "metrics.json").read_text())
        started = time.perf_counter() - sum(e["seconds"] for e in state["epochs"])
        self._writer = tf.summary.create_file_writer(str(self.write_dir / "tensorboard"))
        state = loop.run(state)
        loop.restore_best(state)
        return self._finish(state, time.perf_counter() - started)

    def _train_epoch(self, epoch: int, learning_rate: float) -> dict:
        return self.epoch_runner.epoch_record(epoch, learning_rate, self.config.train.max_steps_per_epoch,
                                              self.progress_bar and self.chief)

    def _log_epoch(self, record: dict) -> None:
        log_epoch(self._writer, record)

    # ------------------------------------------------------------------ runs of several phases
    def _start_phases(self) -> tuple[dict, float, Optional[dict]]:
        """A run of several phases: its progress (``phases`` so far), its start (earlier sessions'
        seconds counted) and, when it had already finished, its metrics."""
        progress = self._prepare_run_dir() or {"phases": {}}
        if progress.get("finished") and (self.write_dir / "metrics.json").exists():
            log.info("%s already finished", self.run_dir)
            return progress, 0.0, json.loads((self.write_dir / "metrics.json").read_text())
        return progress, time.perf_counter() - progress.get("seconds", 0.0), None

    def _phases_metrics(self, progress: dict, names: list[str], model, seconds: float) -> dict:
        """What every run of several phases reports: the last phase's result and best checkpoint,
        the epochs of ``names`` tagged with their phase, the served model's size."""
        phases, final = progress["phases"], progress["phases"][names[-1]]
        epochs = [dict(e, phase=p) for p in names for e in phases[p]["epochs"]]
        train_seconds = sum(e["train_seconds"] for e in epochs)
        examples = sum(e["train_examples_per_second"] * e["train_seconds"] for e in epochs)
        return {"model": self.config.model.type, "dataset": self.config.dataset.name, "seed": self.config.seed,
                "test": final["result"]["test"], "valid": final["result"]["valid"],
                "best_epoch": final["best_epoch"], "best_checkpoint": final["best_checkpoint"], "epochs": epochs,
                "train_examples_per_second": round(examples / max(train_seconds, 1e-9), 1),
                "seconds": round(seconds, 2), "replicas": self.strategy.num_replicas_in_sync,
                "parameters": count_parameters(model), "head_names": list(model.head_names),
                "config": to_dict(self.config)}

    def _publish_phases(self, metrics: dict, progress: dict) -> dict:
        write_json_atomic(self.write_dir / "metrics.json", metrics)
        progress["finished"] = True
        write_json_atomic(self.write_dir / "progress.json", progress)
        if not self.chief:      # a non-chief worker's scratch directory
            shutil.rmtree(self.write_dir, ignore_errors=True)
        return metrics

    def _finish(self, state: dict, seconds: float) -> dict:
        train_seconds = sum(e["train_seconds"] for e in state["epochs"])
        examples = sum(e["train_examples_per_second"] * e["train_seconds"] for e in state["epochs"])
        metrics = {
            "model": self.config.model.type, "dataset": self.config.dataset.name, "seed": self.config.seed,
            "test": self.evaluate_split("test"), "valid": self.evaluate_split("valid"),
            "best_epoch": state["best_epoch"], "best_checkpoint": state["best_checkpoint"],
            "epochs": state["epochs"], "train_examples_per_second": round(examples / train_seconds, 1),
            "seconds": round(seconds, 2), "replicas": self.strategy.num_replicas_in_sync,
            "parameters": count_parameters(self.model), "head_names": list(self.model.head_names),
            "config": to_dict(self.config)}
        write_json_atomic(self.write_dir / "metrics.json", metrics)
        if self.chief:
            from fsdnet_tf.training.plots import plot_training_curves
            plot_training_curves(metrics, self.write_dir / "training_curves.png")
        else:
            shutil.rmtree(self.write_dir, ignore_errors=True)
        return metrics

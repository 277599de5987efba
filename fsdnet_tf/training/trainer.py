"""Training protocol of SPEC §4 with checkpoints and resume.

Per epoch: one shuffled pass over train, then ŷ on valid in inference mode. Valid AUC
improved by more than ``min_delta``: keep these weights (the "best" checkpoint) and
reset the counter; otherwise multiply the learning rate by ``lr_decay`` (floor
``min_lr``) and count; stop when the counter reaches ``patience``. At the end the
best weights are restored and ŷ and every head are evaluated on valid and test.

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
import os
import pathlib
import shutil
import tempfile
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from fsdnet_tf import __version__
from fsdnet_tf.config import Config, ConfigError, dump_config, load_config, same_experiment, to_dict
from fsdnet_tf.data.input import TrainInput, cast_features, parsed_dataset
from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.features import LABEL_KEY
from fsdnet_tf.losses import Objective
from fsdnet_tf.metrics import evaluate
from fsdnet_tf.models import ParallelCTRModel, build_model, count_parameters
from fsdnet_tf.training import devices
from fsdnet_tf.training.epoch_loop import EpochRunner, make_train_step

log = logging.getLogger(__name__)


def write_json_atomic(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def prune_checkpoints(run_dir: pathlib.Path, keep: set) -> None:
    """Delete the files of every checkpoint under ``run_dir/checkpoints`` whose prefix
    (relative to ``run_dir``, e.g. ``checkpoints/best/epoch-3``) is not in ``keep``."""
    for kind in ("last", "best"):
        for path in (run_dir / "checkpoints" / kind).glob("epoch-*"):
            # Only the file name is split: directory names may contain dots (runs/dropout0.5).
            prefix = os.path.relpath(path.parent / path.name.split(".")[0], run_dir)
            if prefix not in keep:
                path.unlink()


def restore_model(run_dir: str | pathlib.Path, config: Optional[Config] = None,
                  transform: Optional[TransformDir] = None,
                  for_serving: bool = False) -> tuple[ParallelCTRModel, Config, TransformDir]:
    """Rebuild a finished run's model with its best weights (for export and evaluation);
    ``for_serving`` leaves out the auxiliary heads the served prediction does not read."""
    run_dir = pathlib.Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise ConfigError(f"{run_dir} is not a finished training run (no metrics.json)")
    config = config or load_config(str(run_dir / "config.yaml"))
    run_info = json.loads((run_dir / "run.json").read_text())
    transform = transform or TransformDir(run_info["transform_dir"])
    devices.set_precision(False)
    model = build_model(config.model, transform.contract.fields, transform.vocab_sizes(), seed=config.seed,
                        for_serving=for_serving)
    best = json.loads(metrics_path.read_text())["best_checkpoint"]
    tf.train.Checkpoint(model=model).read(str(run_dir / best)).expect_partial().assert_existing_objects_matched()
    return model, config, transform


def predictions(model: ParallelCTRModel, features: dict) -> tuple[tf.Tensor, tf.Tensor]:
    """The served ŷ and the (B, heads) head probabilities, in inference mode."""
    out = model.named_outputs(features, training=False)
    return out.prediction, tf.sigmoid(tf.stack([out.logits[name] for name in model.head_names], axis=-1))


class Trainer:
    def __init__(self, config: Config, transform_dir: str, run_dir: str, progress_bar: bool = True):
        self.config, self.progress_bar = config, progress_bar
        self.transform = TransformDir(transform_dir)
        self.transform.check_matches(config.dataset)
        self.run_dir = pathlib.Path(run_dir)
        self.strategy = devices.choose_strategy()
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
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.train_input = TrainInput(self.transform, cfg.train.batch_size, cfg.seed, cfg.train.in_memory,
                                      cfg.train.shuffle_buffer, cfg.train.label_noise)
        self._train_step = make_train_step(self.model, self.objective, self.optimizer, self.strategy,
                                           cfg.train.mixed_precision, cfg.train.jit_compile)
        self.epoch_runner = EpochRunner(self._train_step, self.train_input, self.strategy,
                                        cfg.train.steps_per_execution, self.objective.logged_keys())
        self._predict = tf.function(lambda features: predictions(self.model, features))
        self._eval_cache: dict = {}

    # ------------------------------------------------------------------ evaluation
    def _eval_dataset(self, split: str) -> tf.data.Dataset:
        if split not in self._eval_cache:
            ds = parsed_dataset(self.transform.files(split), self.transform.contract,
                                self.config.train.eval_batch_size).map(cast_features)
            self._eval_cache[split] = ds.cache() if self.config.train.in_memory else ds
        return self._eval_cache[split]

    def evaluate_split(self, split: str) -> dict:
        labels, served, heads = [], [], []
        for batch in self._eval_dataset(split):
            labels.append(batch[LABEL_KEY].numpy())
            prediction, head_probabilities = self._predict({f: batch[f] for f in self.model.fields})
            served.append(prediction.numpy())
            heads.append(head_probabilities.numpy())
        return evaluate(np.concatenate(labels), np.concatenate(served), np.concatenate(heads))

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        progress = self._prepare_run_dir()
        self._build()
        tcfg = self.config.train
        state = progress or {"epochs": [], "best_auc": -np.inf, "best_epoch": None, "wait": 0,
                             "learning_rate": tcfg.learning_rate, "best_checkpoint": None,
                             "last_checkpoint": None, "stopped": False}
        if progress:
            self.checkpoint.read(str(self.write_dir / state["last_checkpoint"])).assert_consumed()
            log.info("resuming %s after epoch %d", self.run_dir, len(state["epochs"]))
        if state["stopped"] and (self.write_dir / "metrics.json").exists():
            log.info("%s already finished", self.run_dir)
            return json.loads((self.write_dir / "metrics.json").read_text())
        started = time.perf_counter() - sum(e["seconds"] for e in state["epochs"])
        writer = tf.summary.create_file_writer(str(self.write_dir / "tensorboard"))
        while not state["stopped"]:
            epoch = len(state["epochs"]) + 1
            epoch_start = time.perf_counter()
            record = self._train_epoch(epoch, state["learning_rate"])
            valid = self.evaluate_split("valid")
            record.update(valid_auc=valid["auc"], valid_logloss=valid["logloss"],
                          valid_heads=valid["heads"], learning_rate=state["learning_rate"])
            if valid["auc"] > state["best_auc"] + tcfg.min_delta:
                state.update(best_auc=valid["auc"], best_epoch=epoch, wait=0)
                state["best_checkpoint"] = self._save_best(epoch)
            else:
                state["wait"] += 1
                state["learning_rate"] = max(state["learning_rate"] * tcfg.lr_decay, tcfg.min_lr)
                self.optimizer.learning_rate.assign(state["learning_rate"])
            state["stopped"] = state["wait"] >= tcfg.patience or epoch >= tcfg.max_epochs
            record["seconds"] = round(time.perf_counter() - epoch_start, 3)
            state["epochs"].append(record)
            state["last_checkpoint"] = os.path.relpath(
                self.checkpoint.write(str(self.write_dir / "checkpoints" / "last" / f"epoch-{epoch}")),
                self.write_dir)
            write_json_atomic(self.write_dir / "progress.json", state)
            prune_checkpoints(self.write_dir, {state["last_checkpoint"], state["best_checkpoint"]})
            self._log_epoch(writer, record)
        return self._finish(state, time.perf_counter() - started)

    def _train_epoch(self, epoch: int, learning_rate: float) -> dict:
        tcfg = self.config.train
        self.optimizer.learning_rate.assign(learning_rate)
        steps = self.train_input.steps_per_epoch(tcfg.max_steps_per_epoch)
        bar = tf_keras.utils.Progbar(steps, unit_name="step") if self.progress_bar and self.chief else None
        if bar:
            print(f"epoch {epoch} (lr {learning_rate:.0e})")

        def progress(done: int, last: dict) -> None:
            if bar:
                bar.update(done, [("loss", float(last["loss"])), ("bce", float(last["bce"]))])

        start = time.perf_counter()
        sums, count = self.epoch_runner.run(epoch, tcfg.max_steps_per_epoch, progress if bar else None)
        train_seconds = time.perf_counter() - start
        examples = min(count * tcfg.batch_size, self.train_input.num_examples)
        return {"epoch": epoch, "train_seconds": round(train_seconds, 3),
                  "train_examples_per_second": round(examples / train_seconds, 1),
                  "train": {k: float(v) / count for k, v in sums.items()}}

    def _save_best(self, epoch: int) -> str:
        path = tf.train.Checkpoint(model=self.model).write(
            str(self.write_dir / "checkpoints" / "best" / f"epoch-{epoch}"))
        return os.path.relpath(path, self.write_dir)

    def _log_epoch(self, writer, record: dict) -> None:
        with writer.as_default(step=record["epoch"]):
            for key, value in record["train"].items():
                tf.summary.scalar(f"train/{key}", value)
            tf.summary.scalar("valid/auc", record["valid_auc"])
            tf.summary.scalar("valid/logloss", record["valid_logloss"])
            for i, head in enumerate(record["valid_heads"]):
                tf.summary.scalar(f"valid/auc_head_{i}", head["auc"])
            tf.summary.scalar("learning_rate", record["learning_rate"])
        writer.flush()
        log.info("epoch %d: loss %.5f, valid AUC %.5f, logloss %.5f, %.0f examples/s",
                 record["epoch"], record["train"]["loss"], record["valid_auc"], record["valid_logloss"],
                 record["train_examples_per_second"])

    def _finish(self, state: dict, seconds: float) -> dict:
        tf.train.Checkpoint(model=self.model).read(
            str(self.write_dir / state["best_checkpoint"])).assert_existing_objects_matched()
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

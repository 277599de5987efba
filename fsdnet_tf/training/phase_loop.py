"""The epoch loop of one training phase: train, evaluate, keep the best, decay, stop.

Per epoch: one pass over train, then valid in inference mode. Valid AUC improved by more
than ``min_delta``: keep these weights (the phase's "best" checkpoint) and reset the
counter; otherwise multiply the learning rate by ``lr_decay`` (floor ``min_lr``; 1.0 is no
schedule) and count; stop when the counter reaches ``patience`` or at ``max_epochs``.
After every epoch the model and optimizer go to ``<checkpoint_dir>/last`` and the state
to the caller's ``save_state``, so a killed phase resumes after its last completed epoch.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from fsdnet_tf.metrics import monitored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    learning_rate: float
    lr_decay: float
    min_lr: float
    patience: int
    max_epochs: int
    min_delta: float
    eval_at_start: bool = False   # epoch 0: the starting weights compete for "best"
    monitor: tuple[tuple[str, float], ...] = (("auc", 1.0),)   # the valid score: Σ weight·metric


def prune_checkpoints(write_dir: pathlib.Path, keep: set, checkpoint_dir: str = "checkpoints") -> None:
    """Delete the files of every checkpoint under ``write_dir/checkpoint_dir/{last,best}`` whose
    prefix (relative to ``write_dir``, e.g. ``checkpoints/best/epoch-3``) is not in ``keep``."""
    for kind in ("last", "best"):
        for path in (write_dir / checkpoint_dir / kind).glob("epoch-*"):
            # Only the file name is split: directory names may contain dots (runs/dropout0.5).
            prefix = os.path.relpath(path.parent / path.name.split(".")[0], write_dir)
            if prefix not in keep:
                path.unlink()


def initial_state(schedule: Schedule) -> dict:
    return {"epochs": [], "best_auc": -np.inf, "best_epoch": None, "wait": 0,
            "learning_rate": schedule.learning_rate, "best_checkpoint": None,
            "last_checkpoint": None, "stopped": False}


class PhaseLoop:
    """``train_epoch(epoch, lr) -> record`` and ``evaluate() -> {auc, logloss, heads}`` are the
    phase's own; the loop owns the schedule, the checkpoints and the state."""

    def __init__(self, write_dir: pathlib.Path, checkpoint_dir: str, model, optimizer, schedule: Schedule,
                 train_epoch: Callable[[int, float], dict], evaluate: Callable[[], dict],
                 save_state: Callable[[dict], None], log_epoch: Callable[[dict], None],
                 extra_state: Optional[dict] = None):
        """``extra_state``: more trackables resumed with the model (e.g. a second optimiser)."""
        self.write_dir, self.checkpoint_dir, self.schedule = write_dir, checkpoint_dir, schedule
        self.model, self.optimizer = model, optimizer
        self.train_epoch, self.evaluate, self.save_state, self.log_epoch = train_epoch, evaluate, save_state, log_epoch
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **(extra_state or {}))

    def restore_last(self, state: dict) -> None:
        self.checkpoint.read(str(self.write_dir / state["last_checkpoint"])).assert_consumed()

    def restore_best(self, state: dict) -> None:
        tf.train.Checkpoint(model=self.model).read(
            str(self.write_dir / state["best_checkpoint"])).assert_existing_objects_matched()

    def run(self, state: dict) -> dict:
        s = self.schedule
        if s.eval_at_start and state["best_checkpoint"] is None:
            valid = self.evaluate()
            state.update(best_auc=monitored(valid, dict(s.monitor)), best_epoch=0, start_valid_auc=valid["auc"])
            state["best_checkpoint"] = self._save_best(0)
            log.info("%s: starting weights, valid AUC %.5f", self.checkpoint_dir, valid["auc"])
        while not state["stopped"]:
            epoch = len(state["epochs"]) + 1
            epoch_start = time.perf_counter()
            self.optimizer.learning_rate.assign(state["learning_rate"])
            record = self.train_epoch(epoch, state["learning_rate"])
            valid = self.evaluate()
            record.update(valid_auc=valid["auc"], valid_logloss=valid["logloss"],
                          valid_heads=valid["heads"], learning_rate=state["learning_rate"])
            if "gauc" in valid:
                record["valid_gauc"] = valid["gauc"]
            score = monitored(valid, dict(s.monitor))
            # "best_auc" is the best monitored score: the valid AUC unless train.monitor adds gAUC.
            if score > state["best_auc"] + s.min_delta:
                state.update(best_auc=score, best_epoch=epoch, wait=0)
                state["best_checkpoint"] = self._save_best(epoch)
            else:
                state["wait"] += 1
                state["learning_rate"] = max(state["learning_rate"] * s.lr_decay, s.min_lr)
                self.optimizer.learning_rate.assign(state["learning_rate"])
            state["stopped"] = state["wait"] >= s.patience or epoch >= s.max_epochs
            record["seconds"] = round(time.perf_counter() - epoch_start, 3)
            state["epochs"].append(record)
            state["last_checkpoint"] = os.path.relpath(
                self.checkpoint.write(str(self.write_dir / self.checkpoint_dir / "last" / f"epoch-{epoch}")),
                self.write_dir)
            self.save_state(state)
            prune_checkpoints(self.write_dir, {state["last_checkpoint"], state["best_checkpoint"]},
                              self.checkpoint_dir)
            self.log_epoch(record)
        return state

    def _save_best(self, epoch: int) -> str:
        path = tf.train.Checkpoint(model=self.model).write(
            str(self.write_dir / self.checkpoint_dir / "best" / f"epoch-{epoch}"))
        return os.path.relpath(path, self.write_dir)


def write_json_atomic(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def log_epoch(writer, record: dict, prefix: str = "") -> None:
    """TensorBoard scalars and one log line for an epoch record."""
    with writer.as_default(step=record["epoch"]):
        for key, value in record["train"].items():
            tf.summary.scalar(f"{prefix}train/{key}", value)
        tf.summary.scalar(f"{prefix}valid/auc", record["valid_auc"])
        tf.summary.scalar(f"{prefix}valid/logloss", record["valid_logloss"])
        if "valid_gauc" in record:
            tf.summary.scalar(f"{prefix}valid/gauc", record["valid_gauc"])
        for i, head in enumerate(record["valid_heads"]):
            tf.summary.scalar(f"{prefix}valid/auc_head_{i}", head["auc"])
        tf.summary.scalar(f"{prefix}learning_rate", record["learning_rate"])
    writer.flush()
    log.info("%sepoch %d: loss %.5f, valid AUC %.5f, logloss %.5f, %.0f examples/s", prefix, record["epoch"],
             record["train"]["loss"], record["valid_auc"], record["valid_logloss"], record["train_examples_per_second"])

"""KD-DAGFM runs: teacher → distill → finetune (SPEC_WAVE2 §2.6).

``teacher``: a finished run directory (``model.dagfm.teacher_run``), or a normal run of
``model.dagfm.teacher_type`` trained into ``<run_dir>/teacher``. ``distill``: the DAGFM
student alone learns α·BCE(z_S) + β·mean (sg(z_T) − z_S)², reading the teacher's embedding
with its gradient stopped; the teacher, in inference mode, scores the training rows once
(in memory; per batch when streaming) and never sees valid or test.
``finetune``: the student and the embedding, BCE alone, starting from distill's best (which
competes as epoch 0). Without a teacher (``teacher_type: none``) one phase, ``train``, fits
the student and a fresh embedding with BCE: the no-distillation baseline. Both phases add (l2/2)·Σ‖θ‖² over what they train and have no
learning-rate schedule. Run directory::

    config.yaml run.json progress.json metrics.json [teacher/]
    checkpoints/distill/{last,best}  checkpoints/finetune/{last,best}  tensorboard/

``progress.json`` holds each phase's state, so a killed run resumes in its phase and epoch.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ConfigError, load_config, teacher_config
from fsdnet_tf.data.input import TrainInput
from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.features import LABEL_KEY
from fsdnet_tf.models.student import STUDENT_HEAD, build_student
from fsdnet_tf.preflight import require_finished_teacher
from fsdnet_tf.training.epoch_loop import EpochRunner, make_step
from fsdnet_tf.training.evaluation import SplitEvaluator, predictions
from fsdnet_tf.training.phase_loop import PhaseLoop, Schedule, initial_state, log_epoch, write_json_atomic
from fsdnet_tf.training.trainer import Trainer, restore_model, run_transform

log = logging.getLogger(__name__)

TEACHER_LOGIT = "teacher_logit"


def student_phases(dagfm) -> tuple[str, ...]:
    return ("train",) if dagfm.teacher_type == "none" else ("distill", "finetune")
PROBABILITY_CLIP = 1e-7


def teacher_logit(teacher, features: dict, output: str) -> tf.Tensor:
    """The KD target: logit(ŷ) of the served prediction (a one-head model's own logit), or the deepest head's."""
    out = teacher.named_outputs(features, training=False)
    heads = teacher.prediction_heads
    if output == "deepest_head" or len(heads) == 1:
        return out.logits[heads[-1]]
    p = tf.clip_by_value(tf.cast(out.prediction, tf.float32), PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    return tf.math.log(p) - tf.math.log1p(-p)


def check_teacher(teacher_dir: pathlib.Path, transform: TransformDir, embedding_dim: int, output: str) -> None:
    """The student reads the teacher's tables: same fields in the same order, same width."""
    require_finished_teacher(teacher_dir)
    cfg = load_config(str(teacher_dir / "config.yaml"))
    if cfg.model.type == "kd_dagfm":
        raise ConfigError(f"model.dagfm.teacher_run: {teacher_dir} is itself a KD-DAGFM run")
    fields = run_transform(teacher_dir).contract.fields
    if tuple(fields) != tuple(transform.contract.fields):
        raise ConfigError(f"model.dagfm.teacher_run: the teacher's fields {list(fields)} differ from this "
                          f"transform's {list(transform.contract.fields)} (the student shares its tables)")
    if cfg.model.embedding_dim != embedding_dim:
        raise ConfigError(f"model.embedding_dim: {embedding_dim}, but the teacher in {teacher_dir} embeds at "
                          f"{cfg.model.embedding_dim}; the student shares its tables, so the widths must be equal")
    if output == "deepest_head" and cfg.model.readout_kind != "per_layer_heads":
        raise ConfigError(f"model.dagfm.teacher_output: deepest_head needs per-layer heads, the teacher is "
                          f"{cfg.model.type}")


class KDTrainer(Trainer):
    """Runs the three phases of a ``kd_dagfm`` config; ``run()`` returns the student's metrics."""

    def run(self) -> dict:
        progress, started, finished = self._start_phases()
        if finished:
            return finished
        d = self.config.model.dagfm
        self.evaluator = SplitEvaluator(self.transform, self.config.train, self.config.dataset.group_field)
        teacher_dir = self._teacher_phase()
        if teacher_dir is not None:
            check_teacher(teacher_dir, self.transform, self.config.model.embedding_dim, d.teacher_output)
        self._writer = tf.summary.create_file_writer(str(self.write_dir / "tensorboard"))
        for phase in student_phases(d):
            state = progress["phases"].get(phase)
            if state is None or "result" not in state:
                progress["phases"][phase] = self._student_phase(phase, teacher_dir, state, progress, started)
        return self._finish_kd(teacher_dir, progress, time.perf_counter() - started)

    # ------------------------------------------------------------------ phases
    def _teacher_phase(self) -> Optional[pathlib.Path]:
        d = self.config.model.dagfm
        if d.teacher_type == "none":
            return None
        if d.teacher_run:
            return pathlib.Path(d.teacher_run)
        teacher_dir = self.run_dir / "teacher"
        config = dataclasses.replace(self.config, model=teacher_config(self.config.model))
        log.info("phase teacher: %s into %s", config.model.type, teacher_dir)
        Trainer(config, str(self.transform.path), str(teacher_dir), self.progress_bar).run()
        return teacher_dir

    def _student_phase(self, phase: str, teacher_dir: Optional[pathlib.Path], state, progress: dict,
                       started: float) -> dict:
        cfg, d = self.config, self.config.model.dagfm
        fields, vocab = self.transform.contract.fields, self.transform.vocab_sizes()
        teacher = None
        with self.strategy.scope():
            if phase == "distill":
                teacher = restore_model(teacher_dir, transform=self.transform)[0]
                tf_keras.utils.set_random_seed(cfg.seed)
                student = build_student(cfg.model, fields, vocab, cfg.seed, embedding=teacher.embedding)
                trainable = student.student_variables
            else:       # finetune from distill's best; train (no teacher) from the initial weights
                tf_keras.utils.set_random_seed(cfg.seed)
                student = build_student(cfg.model, fields, vocab, cfg.seed)
                trainable = student.trainable_variables
            learning_rate = (d.finetune_learning_rate or d.learning_rate) if phase == "finetune" else d.learning_rate
            optimizer = tf_keras.optimizers.Adam(learning_rate=learning_rate)
            optimizer.build(trainable)
        schedule = Schedule(learning_rate, 1.0, learning_rate, d.patience, d.max_epochs, cfg.train.min_delta,
                            eval_at_start=phase == "finetune", monitor=tuple(cfg.train.monitor.items()))
        train_input = TrainInput(self.transform, d.batch_size, cfg.seed, cfg.train.in_memory,
                                 cfg.train.shuffle_buffer, cfg.train.label_noise)
        if teacher is not None and train_input.in_memory:
            train_input.add_column(TEACHER_LOGIT, self._teacher_logits(teacher, train_input))
        step = make_step(self._loss_fn(phase, student, teacher, trainable), trainable, optimizer, self.strategy)
        keys = ("bce", "kd_mse", "regulariser", "loss") if phase == "distill" else ("bce", "regulariser", "loss")
        runner = EpochRunner(step, train_input, self.strategy, cfg.train.steps_per_execution, keys)
        predict = tf.function(lambda features: predictions(student, features))

        def save_state(phase_state: dict) -> None:
            progress["phases"][phase] = phase_state
            progress["seconds"] = time.perf_counter() - started
            write_json_atomic(self.write_dir / "progress.json", progress)

        loop = PhaseLoop(self.write_dir, f"checkpoints/{phase}", student, optimizer, schedule,
                         lambda epoch, lr: runner.epoch_record(epoch, lr, cfg.train.max_steps_per_epoch,
                                                               self.progress_bar and self.chief),
                         lambda: self.evaluator(predict, "valid"), save_state,
                         lambda record: log_epoch(self._writer, record, prefix=f"{phase}/"))
        if state is not None:
            loop.restore_last(state)
            log.info("resuming phase %s after epoch %d", phase, len(state["epochs"]))
        else:
            state = initial_state(schedule)
            if phase == "finetune":
                distilled = progress["phases"]["distill"]["best_checkpoint"]
                tf.train.Checkpoint(model=student).read(
                    str(self.write_dir / distilled)).assert_existing_objects_matched()
            elif phase == "distill":
                if d.mixing_init == "rescaled":
                    state["mixing_scale"] = self._rescale_mixing(student)
                state["layer_mean_abs_r"] = self._log_layer_scale(student)
        log.info("phase %s: %s student, %d trainable variables", phase, d.kind, len(trainable))
        state = loop.run(state)
        loop.restore_best(state)
        state["result"] = {split: self.evaluator(predict, split) for split in ("valid", "test")}
        save_state(state)
        return state

    def _loss_fn(self, phase: str, student, teacher, trainable: list):
        d = self.config.model.dagfm
        distill = phase == "distill"

        def loss_fn(batch, replicas: int):
            labels = tf.cast(batch[LABEL_KEY], tf.float32)
            features = {f: batch[f] for f in student.fields}
            global_batch = tf.cast(tf.shape(labels)[0] * replicas, tf.float32)
            z_s = student.named_outputs(features, training=True, freeze_embedding=distill).logits[STUDENT_HEAD]
            bce = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=z_s)) / global_batch
            regulariser = d.l2 / 2.0 * tf.add_n([tf.reduce_sum(tf.square(v)) for v in trainable]) / replicas
            if not distill:
                return {"bce": bce, "regulariser": regulariser}, bce + regulariser
            z_t = (batch[TEACHER_LOGIT] if TEACHER_LOGIT in batch
                   else tf.stop_gradient(teacher_logit(teacher, features, d.teacher_output)))
            kd = tf.reduce_sum(tf.square(z_t - z_s)) / global_batch
            return ({"bce": bce, "kd_mse": kd, "regulariser": regulariser},
                    d.alpha * bce + d.beta * kd + regulariser)
        return loss_fn

    def _teacher_logits(self, teacher, train_input: TrainInput) -> np.ndarray:
        """z_T of every training row, once: the frozen teacher in inference mode is a fixed function
        of the row, so distill epochs need not run it again (SPEC_WAVE2 §2.6 runs it per batch)."""
        output, size = self.config.model.dagfm.teacher_output, self.config.train.eval_batch_size
        logits = tf.function(lambda rows: teacher_logit(teacher, train_input.gather(rows), output))
        n = train_input.num_examples
        started = time.perf_counter()
        values = np.concatenate([logits(tf.range(i, min(n, i + size), dtype=tf.int64)).numpy()
                                 for i in range(0, n, size)])
        log.info("teacher logits of %d training rows in %.1f s", n, time.perf_counter() - started)
        return values.astype(np.float32)

    def _valid_features(self, student) -> dict:
        """The first valid batch's features (read once), for the start-of-distillation scale checks."""
        if not hasattr(self, "_first_valid"):
            batch = next(iter(self.evaluator.dataset("valid")))
            self._first_valid = {f: batch[f] for f in student.fields}
        return self._first_valid

    def _rescale_mixing(self, student) -> float:
        """C = I / RMS(E) over a valid batch's embeddings: h^(0) of unit scale (``mixing_init: rescaled``)."""
        rms = float(tf.sqrt(tf.reduce_mean(tf.square(student.embedding(self._valid_features(student))))))
        student.dagfm.connect.assign(tf.eye(len(student.fields)) / rms)
        log.info("field mixing C = I / %.3g (the embeddings' RMS)", rms)
        return 1.0 / rms

    def _log_layer_scale(self, student) -> list[float]:
        """mean |r^(t)| per DAGFM layer on a valid batch: r^(t) scales as ‖E‖^(t+1) (SPEC_WAVE2 §2.3)."""
        reps = student.named_outputs(self._valid_features(student), training=False).reps
        scale = [float(np.mean(np.abs(reps[f"dagfm/{t}"].numpy()))) for t in range(student.cfg.dagfm.depth + 1)]
        log.info("distill starts: mean |r^(t)| per layer %s", ", ".join(f"{v:.3g}" for v in scale))
        return scale

    # ------------------------------------------------------------------ result
    def _finish_kd(self, teacher_dir: Optional[pathlib.Path], progress: dict, seconds: float) -> dict:
        phases, names = progress["phases"], student_phases(self.config.model.dagfm)
        student = restore_model(self.write_dir, self.config, self.transform,
                                best_checkpoint=phases[names[-1]]["best_checkpoint"])[0]
        metrics = self._phases_metrics(progress, list(names), student, seconds)
        metrics.update(interaction_multiply_adds=student.interaction_multiply_adds(),
                       phases={p: {"best_epoch": phases[p]["best_epoch"], "epochs": len(phases[p]["epochs"]),
                                   "best_checkpoint": phases[p]["best_checkpoint"], **phases[p]["result"]}
                               for p in names})
        if teacher_dir is not None:
            teacher = json.loads((teacher_dir / "metrics.json").read_text())
            metrics["phases"] = {"teacher": {"run_dir": str(teacher_dir.resolve()), "model": teacher["model"],
                                             "test": teacher["test"], "valid": teacher["valid"],
                                             "parameters": teacher["parameters"]}, **metrics["phases"]}
            for key in ("layer_mean_abs_r", "mixing_scale"):
                metrics["phases"]["distill"][key] = phases["distill"].get(key)
        return self._publish_phases(metrics, progress)


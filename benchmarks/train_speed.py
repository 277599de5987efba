"""Training throughput (examples/s) of the models on Frappe: steps only, and real epochs.

    .venv/bin/python benchmarks/train_speed.py --transform-dir DIR [--steps 30] [--models all]
                                               [--output FILE.json]

The models (default FSDNet and DCNv2; ``all``: every preset) are timed in one run,
alternating, with the shipped frappe settings (batch 10000), and their trainable
parameters counted; for --real-epochs models (default FSDNet and DCNv2) epochs 2–4 also run
through fsdnet-train's own epoch loop. It also measures this machine's fp32 matmul rate and FSDNet's and
DCNv2's multiply-add count, which bound the throughput any implementation can reach here.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import tf_keras


def matmul_gflops() -> float:
    a, w = tf.random.normal([10000, 400]), tf.random.normal([400, 400])
    f = tf.function(lambda a, w: tf.matmul(a, w))
    f(a, w)
    started = time.perf_counter()
    for _ in range(30):
        out = f(a, w)
    out.numpy()
    return 2 * 10000 * 400 * 400 * 30 / (time.perf_counter() - started) / 1e9


def model_flops_per_example(cfg, fields: int) -> float:
    """Forward multiply-adds ×2 (FLOPs) ×3 (forward + both backward products)."""
    d0 = fields * cfg.embedding_dim
    width = cfg.deep_units[0]
    cross = cfg.cross_layers * d0 * d0
    deep = d0 * width + (len(cfg.deep_units) - 1) * width * width
    heads = (1 if cfg.type == "dcnv2" else cfg.cross_layers) * (d0 + width)
    return 2 * 3 * (cross + deep + heads)


XLA_SUFFIX = "+xla"
# The deep blocks with Keras' own BatchNormalization (unfused on (B, H) inputs), the layer
# FlatBatchNorm replaced: its cost, measured in the same run.
KERAS_BN_SUFFIX = "+keras_bn"
SUFFIXES = (XLA_SUFFIX, KERAS_BN_SUFFIX)


def model_type_of(name: str) -> str:
    return name.split("+")[0]


def trainer_for(name: str, transform_dir: str):
    """A built trainer for ``name``: a model type, with ``+xla`` (train.jit_compile) and/or
    ``+keras_bn`` (Keras' unfused BatchNormalization in the deep blocks) appended."""
    from fsdnet_tf.config import load_config
    from fsdnet_tf.layers import towers
    from fsdnet_tf.training.trainer import Trainer
    model_type = model_type_of(name)
    overrides = [f"model.type={model_type}"] + (["train.jit_compile=true"] if XLA_SUFFIX in name else [])
    trainer = Trainer(load_config("frappe", overrides), transform_dir,
                      tempfile.mkdtemp(prefix=f"speed-{model_type}-"), progress_bar=False)
    trainer._prepare_run_dir()
    flat = towers.FlatBatchNorm
    if KERAS_BN_SUFFIX in name:
        towers.FlatBatchNorm = tf_keras.layers.BatchNormalization
    try:
        trainer._build()
    finally:
        towers.FlatBatchNorm = flat
    return trainer


def real_epoch_rate(trainer, steps_per_execution: int) -> float:
    """Examples/s of epochs 2–4 through the trainer's own epoch loop (epoch 1 traces and warms up)."""
    trainer.epoch_runner.steps_per_execution = steps_per_execution
    seconds, examples = 0.0, 0
    for epoch in range(1, 5):
        started = time.perf_counter()
        sums, steps = trainer.epoch_runner.run(epoch, None)
        float(sums["loss"])
        if epoch > 1:
            seconds += time.perf_counter() - started
            examples += min(steps * trainer.config.train.batch_size, trainer.train_input.num_examples)
    return examples / seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transform-dir", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="fsdnet,dcnv2",
                        help="comma-separated model types (TYPE+xla: with train.jit_compile; TYPE+keras_bn: Keras' "
                             "unfused BatchNormalization in the deep blocks), or all")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    parser.add_argument("--real-epochs", default="fsdnet,dcnv2",
                        help="models whose real epochs 2–4 (fsdnet-train's own loop) are timed too; '' for none")
    parser.add_argument("--steps-per-execution", default="1",
                        help="comma-separated train.steps_per_execution values for the real epochs")
    args = parser.parse_args()
    from fsdnet_tf.config import PARALLEL_TYPES as MODEL_TYPES
    from fsdnet_tf.models import count_parameters
    models = list(MODEL_TYPES) if args.models == "all" else [m.strip() for m in args.models.split(",")]
    unknown = sorted({model_type_of(m) for m in models} - set(MODEL_TYPES)
                     | {f"+{s}" for m in models for s in m.split("+")[1:]} - set(SUFFIXES)
                     | ({"fsdnet", "dcnv2"} - set(models)))
    if unknown:
        parser.error(f"--models: {unknown[0]!r} is not a model type or variant (+xla, +keras_bn), or is missing (fsdnet and dcnv2 are required)")
    trainers = {t: trainer_for(t, args.transform_dir) for t in models}
    # Full batches only, cycling over epochs: one Frappe epoch has 20 full batches and a short one, so
    # "steps × batch size" over an epoch's batches overstated the rate 1.48× (fixed 2026-12-01).
    def full_batches(trainer) -> list:
        per_epoch = trainer.train_input.num_examples // trainer.config.train.batch_size
        return [b for epoch in range(1, 1 + -(-args.steps // per_epoch)) for b in trainer.train_input.dataset(epoch)
                if int(b["label"].shape[0]) == trainer.config.train.batch_size][:args.steps]
    batches = {t: full_batches(tr) for t, tr in trainers.items()}
    if any(len(b) < args.steps for b in batches.values()):
        parser.error(f"--steps {args.steps}: not enough full batches")
    for t, tr in trainers.items():          # trace and warm up
        tr._train_step(batches[t][0])
    seconds = {t: [] for t in trainers}
    for _ in range(args.rounds):
        for t, tr in trainers.items():
            started = time.perf_counter()
            for batch in batches[t]:
                values = tr._train_step(batch)
            float(values["loss"])
            seconds[t].append(time.perf_counter() - started)
    batch_size = trainers["fsdnet"].config.train.batch_size
    rates = {t: batch_size * len(batches[t]) / float(np.median(s)) for t, s in seconds.items()}
    chunks = [int(k) for k in args.steps_per_execution.split(",")]
    epochs = {t if k == 1 else f"{t}, K={k}": real_epoch_rate(trainers[t], k)
              for t in filter(None, args.real_epochs.split(",")) for k in chunks}
    gflops = matmul_gflops()
    fields = len(trainers["fsdnet"].transform.contract.fields)
    flops = {t: model_flops_per_example(trainers[t].config.model, fields) for t in ("fsdnet", "dcnv2")}
    result = {
        "measured": f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "examples_per_second": {t: round(r) for t, r in rates.items()},
        "real_epoch_examples_per_second": {t: round(r) for t, r in epochs.items()},
        "real_epoch_over_steps_only": {t: round(r / rates[t.split(",")[0]], 3) for t, r in epochs.items()},
        "parameters": {t: count_parameters(tr.model) for t, tr in trainers.items() if t == model_type_of(t)},
        "fsdnet_overhead_over_dcnv2": round(rates["dcnv2"] / rates["fsdnet"] - 1, 4),
        **{f"fsdnet_overhead_over_dcnv2_with_{suffix[1:]}": round(rates[f"dcnv2{suffix}"] / rates[f"fsdnet{suffix}"] - 1, 4)
           for suffix in SUFFIXES if {f"fsdnet{suffix}", f"dcnv2{suffix}"} <= set(rates)},
        "speedup_over_keras_batch_norm": {t: round(rates[t] / rates[t + KERAS_BN_SUFFIX], 3)
                                          for t in rates if t + KERAS_BN_SUFFIX in rates},
        "matmul_gflops": round(gflops, 1),
        "mflop_per_example": {t: round(f / 1e6, 3) for t, f in flops.items()},
        "matmul_ceiling_examples_per_second": {t: round(gflops * 1e9 / f) for t, f in flops.items()},
        "fraction_of_ceiling": {t: round(rates[t] * flops[t] / (gflops * 1e9), 3) for t in flops},
        "steps": args.steps, "rounds": args.rounds, "batch_size": batch_size,
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput (examples/s) of the models on Frappe: steps only, and real epochs.

    .venv/bin/python benchmarks/train_speed.py --transform-dir DIR [--rounds 12] [--steps 5]
                                               [--models all] [--output FILE.json]

The models (default FSDNet and DCNv2; ``all``: every preset) run with the shipped frappe
settings (batch 10000), their trainable parameters counted. Shared machines drift by tens of
percent within a minute, so every figure is paired: each round runs ``--steps`` full batches
of every model back to back, then times this machine's fp32 matmul (a 10000×400×400 product);
ratios (FSDNet's overhead over DCNv2, each model's share of the matmul ceiling its multiply-adds
allow, the share of its step its own products take when timed alone) are taken within a round and reported as the median over rounds with their quartiles.
For --real-epochs models (default FSDNet and DCNv2) each of epochs 2–4 runs through
fsdnet-train's own epoch loop and is followed at once by the same number of full batches
stepped alone; the real ÷ steps-only ratio is the median of those pairs.
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


def matmul_probe():
    """A callable timing this machine's fp32 matmul rate (GFLOP/s) over ``products`` products."""
    a, w = tf.random.normal([10000, 400]), tf.random.normal([400, 400])
    product = tf.function(lambda a, w: tf.matmul(a, w))
    product(a, w).numpy()

    def gflops(products: int = 10) -> float:
        started = time.perf_counter()
        for _ in range(products):
            out = product(a, w)
        out.numpy()
        return 2 * 10000 * 400 * 400 * products / (time.perf_counter() - started) / 1e9
    return gflops


def median_and_quartiles(values: list) -> dict:
    low, median, high = np.percentile(values, [25, 50, 75])
    return {"median": round(float(median), 4), "quartiles": [round(float(low), 4), round(float(high), 4)]}


def model_products(cfg, fields: int) -> list:
    """(input width, output width) of every weight product of FSDNet's or DCNv2's forward pass."""
    d0 = fields * cfg.embedding_dim
    widths = [d0, *cfg.deep_units]
    heads = 1 if cfg.type == "dcnv2" else cfg.cross_layers
    return ([(d0, d0)] * cfg.cross_layers + list(zip(widths[:-1], widths[1:]))
            + [(d0 + cfg.deep_units[-1], 1)] * heads)


def model_flops_per_example(cfg, fields: int) -> float:
    """Forward multiply-adds ×2 (FLOPs) ×3 (forward + both backward products)."""
    return 2 * 3 * sum(k * n for k, n in model_products(cfg, fields))


def products_probe(cfg, fields: int, batch_size: int):
    """A callable timing (seconds) the model's own products for one batch, each forward and both
    backward (X·W, dY·Wᵀ, Xᵀ·dY) in float32: the step with every other op taken away."""
    shapes = model_products(cfg, fields)
    inputs = [(tf.random.normal([batch_size, k]), tf.random.normal([k, n]), tf.random.normal([batch_size, n]))
              for k, n in shapes]

    @tf.function
    def products():
        return [out for x, w, dy in inputs
                for out in (tf.matmul(x, w), tf.matmul(dy, w, transpose_b=True), tf.matmul(x, dy, transpose_a=True))]
    products()[-1].numpy()

    def seconds() -> float:
        started = time.perf_counter()
        products()[-1].numpy()
        return time.perf_counter() - started
    return seconds


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


def timed_steps(trainer, batches: list) -> float:
    """Seconds to step through ``batches``, waiting for the last step's result."""
    started = time.perf_counter()
    for batch in batches:
        values = trainer._train_step(batch)
    float(values["loss"])
    return time.perf_counter() - started


def paired_real_epochs(trainer, batches: list, steps_per_execution: int, gflops, flops: float | None,
                       epochs: int = 4) -> dict:
    """Examples/s of epochs 2..``epochs`` through the trainer's own epoch loop (epoch 1 traces and
    warms up), each paired with as many full batches stepped alone and a matmul probe right after it."""
    trainer.epoch_runner.steps_per_execution = steps_per_execution
    batch_size = trainer.config.train.batch_size
    real, alone, machine = [], [], []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        sums, steps = trainer.epoch_runner.run(epoch, None)
        float(sums["loss"])
        seconds = time.perf_counter() - started
        if epoch > 1:
            real.append(min(steps * batch_size, trainer.train_input.num_examples) / seconds)
            full = [batches[i % len(batches)] for i in range(trainer.train_input.num_examples // batch_size)]
            alone.append(len(full) * batch_size / timed_steps(trainer, full))
            machine.append(gflops())
    shares = {"fraction_of_ceiling": median_and_quartiles([r * flops / (g * 1e9) for r, g in zip(real, machine)])}
    return {"real_epoch_examples_per_second": round(float(np.median(real))),
            "steps_only_beside_it": round(float(np.median(alone))),
            "real_over_steps_only": median_and_quartiles([r / a for r, a in zip(real, alone)]),
            **(shares if flops else {})}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transform-dir", required=True)
    parser.add_argument("--steps", type=int, default=5, help="full batches per model per round")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--models", default="fsdnet,dcnv2",
                        help="comma-separated model types (TYPE+xla: with train.jit_compile; TYPE+keras_bn: Keras' "
                             "unfused BatchNormalization in the deep blocks), or all")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    parser.add_argument("--real-epochs", default="fsdnet,dcnv2",
                        help="models whose real epochs 2–4 (fsdnet-train's own loop) are timed too; '' for none")
    parser.add_argument("--steps-per-execution", default="1",
                        help="comma-separated train.steps_per_execution values for the real epochs")
    args = parser.parse_args()
    for flag in ("steps", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} {getattr(args, flag)}: must be at least 1")
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
        timed_steps(tr, batches[t][:2])
    gflops = matmul_probe()
    fields = len(trainers["fsdnet"].transform.contract.fields)
    # The multiply-add count is FSDNet's and DCNv2's shape; the zoo's other models have their own.
    flops = {t: model_flops_per_example(tr.config.model, fields) for t, tr in trainers.items()
             if model_type_of(t) in ("fsdnet", "dcnv2")}
    batch_size = trainers["fsdnet"].config.train.batch_size
    own_products = {t: products_probe(trainers[t].config.model, fields, batch_size) for t in ("fsdnet", "dcnv2")}
    rates, machine, products_share = {t: [] for t in trainers}, [], {t: [] for t in own_products}
    for round_ in range(args.rounds):
        # Alternating the order, so that neither model always runs right after the matmul probe.
        for t in (list(trainers) if round_ % 2 == 0 else list(trainers)[::-1]):
            rates[t].append(batch_size * args.steps / timed_steps(trainers[t], batches[t]))
        machine.append(gflops())
        for t, probe in own_products.items():
            products_share[t].append(probe() * rates[t][-1] / batch_size)
    chunks = [int(k) for k in args.steps_per_execution.split(",")]
    epochs = {t if k == 1 else f"{t}, K={k}": paired_real_epochs(trainers[t], batches[t], k, gflops, flops.get(t))
              for t in filter(None, args.real_epochs.split(",")) for k in chunks}

    def overhead(suffix: str = "") -> dict:
        return median_and_quartiles([d / f - 1 for d, f in zip(rates[f"dcnv2{suffix}"], rates[f"fsdnet{suffix}"])])
    result = {
        "measured": f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "examples_per_second": {t: round(float(np.median(r))) for t, r in rates.items()},
        "real_epochs": epochs,
        "parameters": {t: count_parameters(tr.model) for t, tr in trainers.items() if t == model_type_of(t)},
        "fsdnet_overhead_over_dcnv2": overhead(),
        **{f"fsdnet_overhead_over_dcnv2_with_{suffix[1:]}": overhead(suffix)
           for suffix in SUFFIXES if {f"fsdnet{suffix}", f"dcnv2{suffix}"} <= set(rates)},
        "speedup_over_keras_batch_norm": {t: median_and_quartiles([a / b for a, b in zip(r, rates[t + KERAS_BN_SUFFIX])])
                                          for t, r in rates.items() if t + KERAS_BN_SUFFIX in rates},
        "matmul_gflops": median_and_quartiles(machine),
        "mflop_per_example": {t: round(f / 1e6, 3) for t, f in flops.items()},
        "fraction_of_ceiling": {t: median_and_quartiles([r * flops[t] / (g * 1e9) for r, g in zip(rates[t], machine)])
                                for t in flops},
        # The model's own products timed alone, as a share of its step: what is left for every other op.
        "own_products_share_of_step": {t: median_and_quartiles(v) for t, v in products_share.items()},
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

"""Training throughput (examples/s, training steps only) of the models on Frappe.

    .venv/bin/python benchmarks/train_speed.py --transform-dir DIR [--steps 30] [--models all]
                                               [--output FILE.json]

The models (default FSDNet and DCNv2; ``all``: every preset) are timed in one run,
alternating, with the shipped frappe settings (batch 10000), and their trainable
parameters counted. It also measures this machine's fp32 matmul rate and FSDNet's and
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


def trainer_for(model_type: str, transform_dir: str):
    from fsdnet_tf.config import load_config
    from fsdnet_tf.training.trainer import Trainer
    trainer = Trainer(load_config("frappe", [f"model.type={model_type}"]), transform_dir,
                      tempfile.mkdtemp(prefix=f"speed-{model_type}-"), progress_bar=False)
    trainer._prepare_run_dir()
    trainer._build()
    return trainer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transform-dir", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="fsdnet,dcnv2", help="comma-separated model types, or all")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args()
    from fsdnet_tf.config import MODEL_TYPES
    from fsdnet_tf.models import count_parameters
    models = list(MODEL_TYPES) if args.models == "all" else [m.strip() for m in args.models.split(",")]
    unknown = sorted(set(models) - set(MODEL_TYPES) | ({"fsdnet", "dcnv2"} - set(models)))
    if unknown:
        parser.error(f"--models: {unknown[0]!r} is not a model type or is missing (fsdnet and dcnv2 are required)")
    trainers = {t: trainer_for(t, args.transform_dir) for t in models}
    batches = {t: list(tr.train_input.dataset(1).take(args.steps)) for t, tr in trainers.items()}
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
    rates = {t: batch_size * args.steps / float(np.median(s)) for t, s in seconds.items()}
    gflops = matmul_gflops()
    fields = len(trainers["fsdnet"].transform.contract.fields)
    flops = {t: model_flops_per_example(trainers[t].config.model, fields) for t in ("fsdnet", "dcnv2")}
    result = {
        "measured": f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "examples_per_second": {t: round(r) for t, r in rates.items()},
        "parameters": {t: count_parameters(tr.model) for t, tr in trainers.items()},
        "fsdnet_overhead_over_dcnv2": round(rates["dcnv2"] / rates["fsdnet"] - 1, 4),
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

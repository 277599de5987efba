"""Where a training step's time goes: TF profiler op time per step, by op type and by model part.

    .venv/bin/python benchmarks/step_profile.py --transform-dir DIR [--models fsdnet,dcnv2] [--steps 5]
                                                [--top 25] [--output FILE.json]

Each model (the names of train_speed.py, e.g. ``fsdnet``, ``dcnv2+xla``) runs ``--steps`` full
Frappe batches of the shipped config under ``tf.profiler`` after two warm-up steps. The wall time
of every TF op on TF's compute threads is summed by op type and by the model part its name
starts with (``gradient_tape/`` folded into the part it differentiates), per step. Ops on the
two compute threads can overlap, so the sums may exceed the step's wall time, also printed; with
``--one-thread`` they do not, and an op's time is the CPU time it costs.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import collections
import glob
import json
import sys
import tempfile
import time

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from train_speed import trainer_for

COMPUTE_THREADS = "tf_Compute"
BACKWARD_PREFIX = "gradient_tape/"


def op_events(logdir: str):
    """(op name, op type, milliseconds) of every TF op run on the compute threads of a trace."""
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as trace:
        space.ParseFromString(trace.read())
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith(COMPUTE_THREADS):
                continue
            for event in line.events:
                full_name = plane.event_metadata[event.metadata_id].name
                name, _, op_type = full_name.rpartition(":")
                if name and op_type and "::" not in full_name:     # not the executor's own events
                    yield name, op_type, event.duration_ps / 1e9


def part_of(op_name: str) -> str:
    """The model part (first name scope) an op belongs to, its backward ops with it."""
    backward = op_name.startswith(BACKWARD_PREFIX)
    scope = op_name.removeprefix(BACKWARD_PREFIX).split("/")[0]
    return f"{scope} (backward)" if backward else scope


def profile(name: str, transform_dir: str, steps: int, detail: set) -> dict:
    trainer = trainer_for(name, transform_dir)
    batch_size = trainer.config.train.batch_size
    batches = [b for b in trainer.train_input.dataset(1) if int(b["label"].shape[0]) == batch_size][:steps + 2]
    if len(batches) < steps + 2:
        raise SystemExit(f"--steps {steps}: one epoch has only {len(batches)} full batches")
    for batch in batches[:2]:
        float(trainer._train_step(batch)["loss"])
    logdir = tempfile.mkdtemp(prefix="step-profile-")
    tf.profiler.experimental.start(logdir)
    started = time.perf_counter()
    for batch in batches[2:]:
        values = trainer._train_step(batch)
    float(values["loss"])
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    by_type, by_part, by_op = collections.Counter(), collections.Counter(), collections.Counter()
    for op_name, op_type, ms in op_events(logdir):
        by_type[op_type] += ms / steps
        by_part[part_of(op_name)] += ms / steps
        if part_of(op_name) in detail:
            by_op[f"{op_name} ({op_type})"] += ms / steps
    return {"step_wall_ms": round(wall * 1000 / steps, 1), "op_ms_total": round(sum(by_type.values()), 1),
            "by_type": {k: round(v, 2) for k, v in by_type.most_common()},
            "by_part": {k: round(v, 2) for k, v in by_part.most_common()},
            "detail": {k: round(v, 2) for k, v in by_op.most_common()}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transform-dir", required=True)
    parser.add_argument("--models", default="fsdnet,dcnv2")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25, help="op types and parts printed per model")
    parser.add_argument("--detail", default="", help="comma-separated parts whose ops are also listed one by one, "
                                                     "e.g. 'head_0 (backward),AddN_19'")
    parser.add_argument("--one-thread", action="store_true", help="run TF on one thread (op times are CPU times)")
    parser.add_argument("--output", help="also write the full breakdown to this JSON file")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: must be at least 1")
    if args.one_thread:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    detail = set(filter(None, args.detail.split(",")))
    results = {m: profile(m, args.transform_dir, args.steps, detail) for m in args.models.split(",")}
    for model, result in results.items():
        print(f"\n{model}: step {result['step_wall_ms']} ms wall under the profiler, "
              f"ops {result['op_ms_total']} ms (ms per step)")
        for key in ("by_type", "by_part", "detail"):
            print(f"  {key.replace('_', ' ')}:")
            for label, ms in list(result[key].items())[:args.top]:
                print(f"    {ms:8.2f}  {label}")
    if args.output:
        with open(args.output, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

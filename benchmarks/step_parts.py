"""CPU time of four parts of a training step, each against the code it replaced (2026-12-02/03).

    .venv/bin/python benchmarks/step_parts.py [--rounds 5]

One thread, CPU time per call (forward + backward, batch 10000), the best of ``--rounds``:
BatchNorm of a 10000 × 400 layer (Keras' unfused ops vs FlatBatchNorm), dropout of one
(selecting between x·scale and 0 vs multiplying by a scale-or-zero mask) and FSDNet's hint over
two students on Frappe's fused parts (160 + 400 wide; per-student autodiff vs summed_hint), and
one prediction head on those parts (autodiff, whose part gradients are (B × 1)·(1 × width)
matmuls, vs PartsLogit's broadcast products).
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import json
import sys
import time

import tensorflow as tf
import tf_keras

BATCH, WIDTH, RATE = 10000, 400, 0.2


def select_dropout(x, rate, seed):
    """The dropout before 2026-12-02: the same mask, applied by selection."""
    from fsdnet_tf.layers.towers import MASK_LEVELS, keep_threshold
    threshold = keep_threshold(rate)
    size = tf.size(x)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32)
    keep = tf.reshape(tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size] < threshold, tf.shape(x))
    return tf.where(keep, x * tf.cast(MASK_LEVELS / threshold, x.dtype), tf.zeros([], x.dtype))


def autodiff_parts_logit(kernel, bias, *parts):
    """PartsLogit before 2026-12-03: the same logit, differentiated by autodiff."""
    kernels = tf.split(kernel, [int(x.shape[-1]) for x in parts], axis=0)
    logit = tf.add_n([tf.matmul(x, w) for x, w in zip(parts, kernels, strict=True)])
    return tf.squeeze(tf.nn.bias_add(logit, bias), axis=-1)


def cpu_ms(step, args, rounds: int, calls: int = 10) -> float:
    step(*args)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            out = step(*args)
        tf.nest.flatten(out)[0].numpy()
        best = min(best, (time.process_time() - started) / calls * 1000)
    return best


def gradient_step(fn, watched):
    @tf.function
    def step(*inputs):
        with tf.GradientTape() as tape:
            tape.watch([inputs[i] for i in watched])
            value = tf.reduce_sum(fn(*inputs))
        return value, tape.gradient(value, [inputs[i] for i in watched])
    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from fsdnet_tf import losses
    from fsdnet_tf.layers.batch_norm import FlatBatchNorm
    from fsdnet_tf.layers.fusion import _parts_logit
    from fsdnet_tf.layers.towers import stateless_dropout_16bit
    x = tf.nn.relu(tf.random.normal([BATCH, WIDTH]))
    layers = {"keras": tf_keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
              "flat": FlatBatchNorm(momentum=0.9, epsilon=1e-5)}
    seed = tf.constant([3, 4], tf.int64)
    teacher = (tf.random.normal([BATCH, 160]), tf.random.normal([BATCH, 400]))
    students = [(tf.random.normal([BATCH, 160]), tf.random.normal([BATCH, 400])) for _ in range(2)]

    kernel, bias, upstream = tf.random.normal([560, 1]), tf.zeros([1]), tf.random.normal([BATCH])

    def head(fn):
        return lambda kernel, bias, c, h: fn(kernel, bias, c, h) * upstream

    def per_student_hint(t, s1, s2):
        return tf.add_n([tf.reduce_sum(losses.hint_mse(t, s)) for s in (s1, s2)])

    def summed(t, s1, s2):
        return losses.summed_hint(t, [s1, s2])
    parts = {
        "batch_norm": {name: (gradient_step(lambda x, layer=layer: layer(x, training=True), [0]), (x,))
                       for name, layer in layers.items()},
        "dropout": {name: (gradient_step(lambda x, fn=fn: fn(x, RATE, seed), [0]), (x,))
                    for name, fn in (("select", select_dropout), ("mask", stateless_dropout_16bit))},
        "hint": {name: (gradient_step(fn, [0, 1, 2]), (teacher, *students))
                 for name, fn in (("per_student_autodiff", per_student_hint), ("summed_hint", summed))},
        "head": {name: (gradient_step(head(fn), [0, 1, 2, 3]), (kernel, bias, *teacher))
                 for name, fn in (("autodiff", autodiff_parts_logit), ("parts_logit", _parts_logit))}}
    result = {part: {name: round(cpu_ms(step, inputs, args.rounds), 1) for name, (step, inputs) in pair.items()}
              for part, pair in parts.items()}
    for part, times in result.items():
        old, new = times.values()
        times["new_over_old"] = round(new / old, 3)
    print(json.dumps({"cpu_ms_per_call_one_thread": result, "rounds": args.rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Check a trained FSDNet against SPEC §2 and §4 term by term, on real data.

    .venv/bin/python benchmarks/spec_check.py --run-dir RUN [--runs-dir benchmarks/results/frappe_runs]

On a fixed batch (the first ``train.batch_size`` train rows) of the run's transform
output it compares every loss term the trainer optimises with an independent numpy
computation of the SPEC formulas, checks that the KL and hint gradients reach the
teacher (SPEC: the teacher is not detached), that inference mode is deterministic
and leaves BatchNorm statistics alone while training mode drops units, and that the
embedding regulariser is (λ/2)·Σ‖E‖². Then it replays the SPEC §4 learning-rate and
stopping rule over every stored run's per-epoch valid AUCs. Writes a markdown table
(``--output``) and exits non-zero if any check fails.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fsdnet_tf.data.input import load_arrays  # noqa: E402
from fsdnet_tf.features import LABEL_KEY  # noqa: E402
from fsdnet_tf.losses import Objective  # noqa: E402
from fsdnet_tf.training.trainer import restore_model  # noqa: E402


def log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def numpy_terms(labels, logits, fused, alpha, temperature, beta) -> dict:
    """SPEC §2 written out in numpy (float64), independently of fsdnet_tf.losses."""
    y = labels.astype(np.float64)
    z = [l.astype(np.float64) for l in logits]
    bce = sum(np.mean(-(y * log_sigmoid(zl) + (1 - y) * log_sigmoid(-zl))) for zl in z)
    zt = z[-1] / temperature
    qt = 1 / (1 + np.exp(-zt))
    kl = sum(np.mean(qt * (log_sigmoid(zt) - log_sigmoid(zl / temperature))
                     + (1 - qt) * (log_sigmoid(-zt) - log_sigmoid(-zl / temperature))) for zl in z[:-1])
    hint = sum(np.mean((fused[-1].astype(np.float64) - f.astype(np.float64)) ** 2) for f in fused[:-1])
    return {"bce": bce, "kl": kl, "hint": hint, "loss": alpha * bce + (1 - alpha) * kl + beta * hint}


def replay_schedule(metrics: dict) -> list[str]:
    """Differences between a run's recorded epochs and the SPEC §4 rule replayed on its valid AUCs."""
    t = metrics["config"]["train"]
    lr, best, wait, best_epoch, problems = t["learning_rate"], -np.inf, 0, None, []
    for record in metrics["epochs"]:
        if not np.isclose(record["learning_rate"], lr, rtol=1e-9):
            problems.append(f"epoch {record['epoch']}: lr {record['learning_rate']:g}, rule says {lr:g}")
        if record["valid_auc"] > best + t["min_delta"]:
            best, wait, best_epoch = record["valid_auc"], 0, record["epoch"]
        else:
            wait += 1
            lr = max(lr * t["lr_decay"], t["min_lr"])
        stop = wait >= t["patience"] or record["epoch"] >= t["max_epochs"]
        if stop != (record is metrics["epochs"][-1]):
            problems.append(f"epoch {record['epoch']}: the rule {'stops' if stop else 'continues'} here")
            break
    if best_epoch != metrics["best_epoch"]:
        problems.append(f"best epoch {metrics['best_epoch']}, rule says {best_epoch}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a finished FSDNet run (fsdnet-train)")
    parser.add_argument("--runs-dir", default=str(REPO / "benchmarks" / "results" / "frappe_runs"),
                        help="stored metrics.json copies whose learning-rate schedules are replayed")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "frappe_spec_check.md"))
    args = parser.parse_args()
    model, config, transform = restore_model(args.run_dir)
    if config.model.type != "fsdnet" or config.model.distill != "full":
        parser.error("--run-dir must be an FSDNet run with the full loss")
    m = config.model
    arrays = load_arrays(transform, "train")
    rows = slice(0, config.train.batch_size)
    features = {f: tf.constant(arrays[f][rows]) for f in model.fields}
    labels = tf.constant(arrays[LABEL_KEY][rows])
    checks: list[tuple[str, bool, str]] = []

    # 1. Loss terms: trainer's task vs numpy, on inference-mode outputs (deterministic).
    task = Objective.from_config(m)
    outputs = model.training_outputs(features, training=False)
    named = model.named_outputs(features, training=False)
    ours = {k: float(v) for k, v in task(labels, named).as_dict().items()}
    reference = numpy_terms(labels.numpy(), [z.numpy() for z in outputs.logits], [f.numpy() for f in outputs.fused],
                            m.alpha, m.temperature, m.beta)
    for term in ("bce", "kl", "hint", "loss"):
        diff = abs(ours[term] - reference[term])
        checks.append((f"L_{term} = SPEC §2 formula (numpy, float64)", diff <= 1e-5 * max(1.0, abs(reference[term])),
                       f"ours {ours[term]:.7f}, numpy {reference[term]:.7f}, |Δ| {diff:.1e}"))

    # 2. Gradients reach the teacher through both distillation terms.
    teacher_head = model.heads[-1].kernel
    deep_kernels = [v for v in model.deep.trainable_variables if "kernel" in v.name]
    cross_kernels = [v for v in model.cross.trainable_variables if "kernel" in v.name]
    with tf.GradientTape(persistent=True) as tape:
        terms = task(labels, model.named_outputs(features, training=False)).logged
    kl_to_head = tf.norm(tape.gradient(terms["kl"], teacher_head))
    hint_to_deep = tf.norm(tape.gradient(terms["hint"], deep_kernels[-1]))
    hint_to_cross = tf.norm(tape.gradient(terms["hint"], cross_kernels[-1]))
    del tape
    checks.append(("KL gradient reaches the teacher head (not detached)", float(kl_to_head) > 0,
                   f"‖∂L_KL/∂W_head3‖ = {float(kl_to_head):.3e}"))
    checks.append(("hint gradient reaches the teacher's deep layer 3 and cross layer 3",
                   float(hint_to_deep) > 0 and float(hint_to_cross) > 0,
                   f"‖∂L_hint/∂W_deep3‖ = {float(hint_to_deep):.3e}, ‖∂L_hint/∂W_cross3‖ = {float(hint_to_cross):.3e}"))

    # 3. BatchNorm and dropout modes.
    moving = [v for v in model.deep.variables if "moving" in v.name]
    before = [v.numpy().copy() for v in moving]
    first = model.head_probabilities(features, training=False).numpy()
    second = model.head_probabilities(features, training=False).numpy()
    unchanged = all(np.array_equal(b, v.numpy()) for b, v in zip(before, moving))
    checks.append(("inference mode: deterministic, BatchNorm moving statistics untouched",
                   np.array_equal(first, second) and unchanged, f"{len(moving)} moving-statistics variables"))
    h_train = model.deep(model.embedding(features), training=True)[0].numpy()
    for v, b in zip(moving, before):   # undo the training-mode statistics update
        v.assign(b)
    zero_share = float(np.mean(h_train == 0))
    checks.append((f"training mode: dropout p = {m.dropout} active", zero_share > m.dropout * 0.9,
                   f"share of zeros in h_1 after ReLU + dropout: {zero_share:.3f}"))

    # 4. Embedding regulariser.
    tables = [t.embeddings.numpy().astype(np.float64) for t in model.embedding.tables]
    expected = m.embedding_l2 / 2 * sum(float(np.sum(t ** 2)) for t in tables)
    actual = float(tf.add_n(model.embedding.losses))
    checks.append((f"regulariser = (λ/2)·Σ‖E‖² with λ = {m.embedding_l2}", abs(actual - expected) <= 1e-5 * max(1.0, expected),
                   f"model {actual:.6f}, numpy {expected:.6f}"))

    # 5. Learning-rate schedule and stopping, replayed on every stored run.
    runs = sorted(pathlib.Path(args.runs_dir).glob("*.json"))
    bad = {p.stem: replay_schedule(json.loads(p.read_text())) for p in runs}
    bad = {k: v for k, v in bad.items() if v}
    checks.append(("SPEC §4 lr ×0.1 on no improvement, stop after 2, best epoch restored", bool(runs) and not bad,
                   f"{len(runs)} stored runs replayed" + (f"; differ: {bad}" if bad else "")))

    lines = ["# SPEC check of the trained Frappe FSDNet", "",
             f"Run `{pathlib.Path(args.run_dir).name}` (seed {config.seed}), fixed batch: the first "
             f"{config.train.batch_size:,} train rows. Regenerate: `.venv/bin/python benchmarks/spec_check.py "
             f"--run-dir <run>`.", "", "| check | result | figures |", "|---|---|---|"]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} | {figures} |" for name, ok, figures in checks]
    pathlib.Path(args.output).write_text("\n".join(lines) + "\n")
    for name, ok, figures in checks:
        print(f"{'pass' if ok else 'FAIL'}  {name}: {figures}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

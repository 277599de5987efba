"""fsdnet-train: train FSDNet (or the DCNv2 baseline) on a transform output."""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import argparse
import logging
import sys
from typing import Optional

from fsdnet_tf.config import ConfigError, load_config


def summary(metrics: dict, run_dir: str) -> str:
    test, valid = metrics["test"], metrics["valid"]
    heads = len(test["heads"])
    lines = [f"{metrics['model']} on {metrics['dataset']} (seed {metrics['seed']}) → {run_dir}",
             f"  epochs {len(metrics['epochs'])}, best {metrics['best_epoch']}, {metrics['seconds']:.1f} s, "
             f"{metrics['train_examples_per_second']:,.0f} train examples/s",
             f"  {'':14s} {'test AUC':>9s} {'logloss':>8s}   {'valid AUC':>9s}",
             f"  {'ŷ (mean)':14s} {test['auc']:9.5f} {test['logloss']:8.5f}   {valid['auc']:9.5f}"]
    for i, (t, v) in enumerate(zip(test["heads"], valid["heads"])):
        name = f"head {i + 1}" + (" teacher" if i == heads - 1 and heads > 1 else "")
        lines.append(f"  {name:14s} {t['auc']:9.5f} {t['logloss']:8.5f}   {v['auc']:9.5f}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-train", description=__doc__)
    parser.add_argument("--config", required=True, help="shipped config name or YAML path")
    parser.add_argument("--transform-dir", required=True, help="output of fsdnet-transform")
    parser.add_argument("--run-dir", required=True, help="run directory (resumes if it holds a run)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. model.type=dcnv2 or seed=2024")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.set)
        from fsdnet_tf.training.trainer import Trainer
        metrics = Trainer(config, args.transform_dir, args.run_dir, progress_bar=not args.no_progress).run()
    except ConfigError as err:
        print(f"fsdnet-train: error: {err}", file=sys.stderr)
        return 2
    print(summary(metrics, args.run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())

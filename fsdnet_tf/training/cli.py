"""fsdnet-train: train a model (FSDNet by default; --set model.type=... for the zoo) on a transform output."""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import argparse
import sys
from typing import Optional

import yaml

from fsdnet_tf import preflight
from fsdnet_tf.config import ConfigError, dump_config, load_config
from fsdnet_tf.presets import describe


def summary(metrics: dict, run_dir: str) -> str:
    test, valid = metrics["test"], metrics["valid"]
    heads = len(test["heads"])
    lines = [f"{metrics['model']} on {metrics['dataset']} (seed {metrics['seed']}, "
             f"{metrics['parameters']:,} parameters) → {run_dir}",
             f"  epochs {len(metrics['epochs'])}, best {metrics['best_epoch']}, {metrics['seconds']:.1f} s, "
             f"{metrics['train_examples_per_second']:,.0f} train examples/s",
             f"  {'':14s} {'test AUC':>9s} {'logloss':>8s}   {'valid AUC':>9s}",
             f"  {'ŷ (served)':14s} {test['auc']:9.5f} {test['logloss']:8.5f}   {valid['auc']:9.5f}"]
    names = metrics.get("head_names") or [f"head_{i}" for i in range(heads)]
    layer_heads = [n for n in names if n.startswith("head_")]
    teacher = layer_heads[-1] if len(layer_heads) > 1 else None
    for i, (t, v) in enumerate(zip(test["heads"], valid["heads"])):
        name = names[i] + (" (teacher)" if names[i] == teacher else "")
        lines.append(f"  {name:14s} {t['auc']:9.5f} {t['logloss']:8.5f}   {v['auc']:9.5f}")
    for phase, result in metrics.get("phases", {}).items():
        lines.append(f"  phase {phase:8s} {result['test']['auc']:9.5f} {result['test']['logloss']:8.5f}   "
                     f"{result['valid']['auc']:9.5f}" + (f"   ({result['model']})" if "model" in result else ""))
    return "\n".join(lines)


def trainer_class(model_type: str):
    """The trainer of a model type: its phases (one ``train`` phase unless the type has its own)."""
    if model_type == "kd_dagfm":
        from fsdnet_tf.training.distillation import KDTrainer
        return KDTrainer
    if model_type == "optfusion":
        from fsdnet_tf.training.optfusion import OptFusionTrainer
        return OptFusionTrainer
    from fsdnet_tf.training.trainer import Trainer
    return Trainer


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-train", description=__doc__)
    parser.add_argument("--config", required=True, help="shipped config name or YAML path")
    parser.add_argument("--transform-dir", help="output of fsdnet-transform")
    parser.add_argument("--run-dir", help="run directory (resumes if it holds a run)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. model.type=dcnv2 or seed=2024")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's and absl's own log lines")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config and what its model preset builds, then exit")
    args = parser.parse_args(argv)
    if not args.print_config and not (args.transform_dir and args.run_dir):
        parser.error("--transform-dir and --run-dir are required (unless --print-config)")
    try:
        config = load_config(args.config, args.set)
        if args.print_config:
            print(dump_config(config) + "# what model.type resolves to\n"
                  + yaml.safe_dump({"resolved": describe(config.model)}, sort_keys=False, allow_unicode=True))
            return 0
        preflight.require_transform_output(args.transform_dir)
        if config.model.type == "kd_dagfm" and config.model.dagfm.teacher_run:
            preflight.require_finished_teacher(config.model.dagfm.teacher_run)
        # absl logs every checkpoint write ("Sharding callback duration") at INFO: quiet unless --verbose.
        preflight.start(args.verbose)
        from fsdnet_tf.training import devices
        if devices.serves_parameter_server_cluster():
            devices.run_cluster_server()       # until stopped: the chief drives the training
            return 0
        trainer = trainer_class(config.model.type)
        metrics = trainer(config, args.transform_dir, args.run_dir, progress_bar=not args.no_progress).run()
    except ConfigError as err:
        return preflight.fail("fsdnet-train", str(err))
    print(summary(metrics, args.run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())

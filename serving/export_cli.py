"""fsdnet-export: publish a trained run as the next version of a TF Serving model."""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import argparse
import pathlib
import sys
from typing import Optional

from fsdnet_tf import preflight
from fsdnet_tf.config import ConfigError


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-export", description=__doc__)
    parser.add_argument("--run-dir", required=True, help="a finished fsdnet-train run directory")
    parser.add_argument("--model-base-path", required=True,
                        help="the model's directory for TF Serving; versions are its integer subdirectories")
    parser.add_argument("--model-name", default="fsdnet", help="name used in the warmup requests")
    served = parser.add_mutually_exclusive_group()
    served.add_argument("--output", default=None,
                        help="the served output: prediction (default, the model's ŷ) or teacher_head "
                             "(FSD models: the deepest head alone)")
    served.add_argument("--heads", choices=("all", "teacher"), default=None,
                        help="alias: all = --output prediction, teacher = --output teacher_head")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's and absl's own log lines")
    args = parser.parse_args(argv)
    try:
        preflight.require_finished_run(args.run_dir)
        if pathlib.Path(args.model_base_path).is_file():
            raise preflight.UsageError(f"--model-base-path {args.model_base_path} is a file, not a directory")
    except ConfigError as err:
        return preflight.fail("fsdnet-export", str(err))
    # The SavedModel writer logs every renamed function input at INFO (kilobytes a line): quiet unless --verbose.
    preflight.start(args.verbose)
    from fsdnet_tf.export import HEADS_ALIASES, ExportError, export_run
    output = args.output or HEADS_ALIASES[args.heads or "all"]
    try:
        out = export_run(args.run_dir, args.model_base_path, args.model_name, output)
    except (ConfigError, ExportError) as err:
        return preflight.fail("fsdnet-export", str(err))
    check = out["verification"]
    print(f"exported {out['model']} ({out['output']}, {out['parameters']:,} parameters) as version {out['version']} → {out['path']}\n"
          f"  verified on {check['rows']} raw test rows: max |Δ| reloaded vs in-memory "
          f"{check['examples_vs_in_memory']:.2e}, raw vs tf.Example signature {check['raw_vs_examples']:.2e}\n"
          f"  run's test AUC {out['test']['auc']:.5f}, logloss {out['test']['logloss']:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""fsdnet-transform: raw logs → vocabulary-encoded TFRecords + the tf.Transform graph (pipelines/transform.py).

The config, the output path and (for a local data directory) the input files are checked
before Beam and TensorFlow are imported.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

import numpy as np

from fsdnet_tf import preflight
from fsdnet_tf.config import ConfigError, load_config
from pipelines.inputs import DataError, check_arguments, check_local_inputs
from pipelines.local_runner import PARALLEL_INPUT_BYTES


def summary(stats: dict, output: str) -> str:
    lines = [f"transform of {stats['dataset']} → {output}"]
    for split, f in stats["splits"].items():
        oov = np.mean(list(stats["oov_rate"][split].values()))
        lines.append(f"  {split:5s}  read {f['read']:>9,}  written {f['written']:>9,}  "
                     f"rejected {f['rejected']:>6,}  mean OOV rate {oov:.4f}")
    vocab = stats["vocab_size"]
    lines.append(f"  vocabularies: {len(vocab)} fields, {sum(vocab.values()):,} tokens "
                 f"(largest {max(vocab, key=vocab.get)}: {max(vocab.values()):,})")
    lines.append(f"  {stats['seconds']:.1f} s, {stats['rows_per_second']:,.0f} rows/s")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fsdnet-transform", description=__doc__.split("\n")[0],
        epilog="Other arguments go to Beam, e.g. --runner=DataflowRunner --project=P --region=R "
               "--temp_location=gs://B/tmp, or --runner=FlinkRunner --flink_master=HOST:8081. "
               f"Default: Beam's local FnApiRunner, in this process for inputs under "
               f"{PARALLEL_INPUT_BYTES >> 20} MiB and with one "
               "worker process per core from there on (--direct_running_mode / --direct_num_workers "
               "choose otherwise).")
    parser.add_argument("--config", required=True, help="shipped config name or YAML path")
    parser.add_argument("--data-dir", help="directory holding the raw files named in the config")
    parser.add_argument("--output", required=True, help="output directory (created atomically)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. dataset.min_frequency=5")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--verbose", action="store_true", help="also show Beam's, TensorFlow's and absl's log lines")
    args, beam_args = parser.parse_known_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        check_arguments(cfg.dataset, args.data_dir, args.output, args.overwrite)
        check_local_inputs(cfg.dataset, args.data_dir)
    except (ConfigError, DataError) as err:
        return preflight.fail("fsdnet-transform", str(err))
    preflight.start(args.verbose)
    from pipelines.transform import log, run_transform
    try:
        log.info("transforming %s (%s) → %s", cfg.dataset.name, cfg.dataset.format, args.output)
        stats = run_transform(cfg.dataset, args.data_dir, args.output, beam_args, args.overwrite)
    except (ConfigError, DataError) as err:
        return preflight.fail("fsdnet-transform", str(err))
    print(summary(stats, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())

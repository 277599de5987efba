"""fsdnet-pipeline: the transform → train → export → validate → push pipeline for Kubeflow Pipelines.

    fsdnet-pipeline compile --output pipeline.yaml [--image REGISTRY/fsdnet-pipeline:TAG]
    fsdnet-pipeline run --local --config synthetic --work-dir work/pipeline --serving-base-path work/serving/fsdnet

``compile`` writes the pipeline spec (IR YAML) that Kubeflow Pipelines and Vertex AI
Pipelines accept (upload it in the UI, or ``kfp run create``). ``run --local`` runs the same
pipeline on this machine with KFP's local subprocess runner, in this Python environment.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import pathlib
import sys
import warnings
from typing import Optional

from fsdnet_tf import preflight
from fsdnet_tf.config import ConfigError, load_config

PIPELINE_STEPS = "transform → train → export → validate → push"


def compile_pipeline(output: str, image: str) -> None:
    from kfp import compiler

    from pipelines.kfp_pipeline import build
    compiler.Compiler().compile(build(image), package_path=output)


def run_local(args) -> dict:
    """Run the pipeline here; return the gate's decision and the serving base path's versions.

    KFP's local runner prints every step's executor input and output; unless ``--verbose``
    that goes to ``<work-dir>/pipeline.log`` and the terminal gets one line per step's outcome.
    """
    from kfp import local

    from pipelines.kfp_pipeline import build
    work = pathlib.Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    root = work / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    # Locally the steps run in this environment, which has what the image has: kfp's warning does not apply.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")
    before = set(root.glob("*")) if root.is_dir() else set()
    log_path = work / "pipeline.log"
    with open(log_path, "a") as log, contextlib.ExitStack() as stack:
        if not args.verbose:
            print(f"running {PIPELINE_STEPS} locally (KFP's log: {log_path})", flush=True)
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
            # KFP also logs through the root logger, whose handler writes to the terminal's stderr.
            for handler in logging.getLogger().handlers:
                stack.callback(handler.setLevel, handler.level)
                handler.setLevel(logging.WARNING)
        build()(config=args.config, data_dir=args.data_dir or "", serving_base_path=str(pathlib.Path(
            args.serving_base_path).resolve()), overrides=args.set, max_auc_drop=args.max_auc_drop)
    (run_dir,) = set(root.glob("*")) - before
    gate = json.loads((run_dir / "validate-step" / "executor_output.json").read_text())
    metrics = gate["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    base = pathlib.Path(args.serving_base_path)
    return {"approved": gate["parameterValues"]["Output"], "reason": metrics["reason"], "run_dir": str(run_dir),
            "versions": sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-pipeline", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser("compile", help="write the pipeline YAML for Kubeflow / Vertex AI Pipelines")
    compile_cmd.add_argument("--output", required=True, help="the YAML file to write")
    compile_cmd.add_argument("--image", default="fsdnet-pipeline:latest",
                             help="the image every step runs in (docker/pipeline.Dockerfile)")
    run_cmd = commands.add_parser("run", help="run the pipeline")
    run_cmd.add_argument("--local", action="store_true", required=True,
                         help="on this machine with KFP's local runner (a cluster runs the compiled YAML)")
    run_cmd.add_argument("--config", required=True, help="shipped config name or YAML path")
    run_cmd.add_argument("--data-dir", help="the raw files (not needed for the synthetic dataset)")
    run_cmd.add_argument("--work-dir", required=True, help="where the pipeline's artifacts are kept")
    run_cmd.add_argument("--serving-base-path", required=True, help="the served model's base path (pushed into)")
    run_cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="a config override for the transform and training steps")
    run_cmd.add_argument("--max-auc-drop", type=float, default=0.001,
                         help="refuse a model whose held-out AUC is below the served one's by more than this")
    for command in (compile_cmd, run_cmd):
        command.add_argument("--verbose", action="store_true", help="also show TensorFlow's and absl's log lines")
    args = parser.parse_args(argv)
    if args.command == "compile":
        compile_pipeline(args.output, args.image)
        print(f"wrote the pipeline {args.output} (every step in {args.image})")
        return 0
    try:
        load_config(args.config, args.set)
    except ConfigError as err:
        return preflight.fail("fsdnet-pipeline", str(err))
    preflight.start(args.verbose)
    outcome = run_local(args)
    print(f"validate: {'approved' if outcome['approved'] else 'refused'} ({outcome['reason']}); "
          f"{'pushed' if outcome['approved'] else 'not pushed'}")
    print(f"pipeline finished → {outcome['run_dir']}; {args.serving_base_path} holds versions "
          f"{outcome['versions'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

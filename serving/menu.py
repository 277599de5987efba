"""fsdnet-menu: export several trained models side by side and measure what each costs to serve.

    fsdnet-menu --out-dir menu --entry fsdnet=RUN --entry fsdnet_teacher=RUN:teacher_head \\
                --entry dagfm=KD_RUN [--auc-budget 0.001]

Each entry is ``NAME=RUN_DIR[:OUTPUT]`` and becomes one TF Serving model, ``NAME``, under
``<out-dir>/models/NAME/<version>`` (``<out-dir>/models.config`` lists them all for
``--model_config_file``). Per entry: test AUC / logloss of the run, parameters,
multiply-adds per example (analytic, cross-checked against the served graph and TF's
profiler), latency p50 / p99 at batch 1, 64 and 1024 in process (the SavedModel's signature)
and over gRPC (fsdnet-serve, one process per model, all running while the entries'
calls alternate), and sustained gRPC examples/s at batch 1024 (the best over client
concurrency and two server thread settings). The report names the
cheapest model — highest sustained throughput — whose AUC is within the budget of the best.
Writes ``menu.json``, ``menu.md`` and ``menu.png`` (AUC against batch-1024 gRPC latency).
"""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import argparse
import contextlib
import datetime
import json
import logging
import os
import pathlib
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fsdnet_tf import preflight

BATCHES = (1, 64, 1024)
# Client threads of the sustained measurement: the highest rate is reported. A batch-1024 call
# spends part of its time in the client and the gRPC stack, so one or two threads leave a
# 2-core server idle between calls; four keep it busy.
SUSTAIN_THREADS = (1, 2, 4)
# fsdnet-serve's (--intra-op-threads, --inter-op-threads) under which throughput is measured, as
# TF Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism: TensorFlow's
# default spreads each op over every core (lowest latency of one request; the latency columns use
# it); under concurrent requests a model of many small ops runs faster with each request's ops on
# its own thread. A deployment picks the flags that suit its model, so each model is credited with
# its better setting.
SERVER_THREADS = {"tf_default": (0, 0), "request_thread": (1, -1)}
LATENCY_SETTING = "tf_default"
log = logging.getLogger("fsdnet_tf.menu")


@dataclass(frozen=True)
class Entry:
    name: str
    run_dir: str
    output: str = "prediction"

    @classmethod
    def parse(cls, text: str) -> "Entry":
        name, sep, rest = text.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"--entry {text!r}: expected NAME=RUN_DIR[:OUTPUT]")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"--entry {text!r}: the model name may hold letters, digits, '_' and '-' only")
        run_dir, _, output = rest.partition(":")
        return cls(name, run_dir, output or "prediction")


def cheapest_within_budget(rows: list[dict], budget: float) -> dict:
    """The entry with the highest sustained throughput among those within ``budget`` AUC of the best."""
    best = max(r["test_auc"] for r in rows)
    eligible = [r for r in rows if r["test_auc"] >= best - budget]
    return max(eligible, key=lambda r: (r["grpc_sustained_examples_per_second"], -r["multiply_adds"]))


def export_entry(entry: Entry, models_dir: pathlib.Path) -> dict:
    from fsdnet_tf.export import export_run
    from fsdnet_tf.export.cost import analytic_multiply_adds, graph_multiply_adds, profiler_multiply_adds
    from fsdnet_tf.training import restore_model
    exported = export_run(entry.run_dir, str(models_dir / entry.name), entry.name, output=entry.output)
    model = restore_model(entry.run_dir, for_serving=True)[0]
    analytic = analytic_multiply_adds(model, entry.output)
    graph = graph_multiply_adds(model, entry.output)
    if analytic != graph:
        log.warning("%s: analytic multiply-adds %d differ from the served graph's %d", entry.name, analytic, graph)
    return {"name": entry.name, "run_dir": exported["run_dir"], "model": exported["model"], "output": entry.output,
            "version": exported["version"], "path": exported["path"], "parameters": exported["parameters"],
            "test_auc": exported["test"]["auc"], "test_logloss": exported["test"]["logloss"],
            "multiply_adds": analytic, "graph_multiply_adds": graph,
            "profiler_matmul_multiply_adds": profiler_multiply_adds(model, entry.output)}


def measure(rows: list[dict], models_dir: pathlib.Path, raw_rows: list[dict], repeats: int,
            sustain_seconds: float) -> None:
    """Adds latency figures to each row; every entry's server runs while all calls alternate."""
    import tensorflow as tf

    from fsdnet_tf import features as names
    from serving.client import ScoringClient
    from serving.latency import percentiles, running_server, sustained, time_interleaved
    with contextlib.ExitStack() as stack:
        clients, serve = {}, {}
        for row in rows:
            for setting, (intra, inter) in SERVER_THREADS.items():
                port = stack.enter_context(running_server(models_dir / row["name"], row["name"],
                                                          intra_op_threads=intra, inter_op_threads=inter))
                clients[row["name"], setting] = stack.enter_context(
                    ScoringClient(f"127.0.0.1:{port}", row["name"], timeout=60))
            serve[row["name"]] = tf.saved_model.load(row["path"]).signatures[names.PREDICT_SIGNATURE]
        for batch in BATCHES:
            batch_rows = (raw_rows * (batch // len(raw_rows) + 1))[:batch]
            calls, grpc_calls = {}, {}
            for (name, setting), client in clients.items():
                request = client.predict_request(batch_rows)
                grpc_calls[name, setting] = (lambda c=client, r=request: c._call(c.prediction.Predict, r))
            for name in serve:
                examples = tf.constant(clients[name, LATENCY_SETTING].serialize(batch_rows))
                calls[f"{name}/grpc"] = grpc_calls[name, LATENCY_SETTING]
                calls[f"{name}/in_process"] = (lambda s=serve[name], e=examples:
                                               s(examples=e)[names.PROBABILITY_OUTPUT].numpy())
            times = time_interleaved(calls, repeats if batch < 1024 else max(20, repeats // 5),
                                     warmup=10 if batch == 1024 else 30)
            for row in rows:
                for path in ("grpc", "in_process"):
                    samples = times[f"{row['name']}/{path}"]
                    row.setdefault("latency", {}).setdefault(f"batch_{batch}", {})[path] = {
                        **percentiles(samples), "examples_per_second": round(batch / float(np.median(samples)))}
            log.info("batch %d timed", batch)
            if batch == 1024:
                rates = sustained(grpc_calls, 1024, SUSTAIN_THREADS, sustain_seconds, rounds=2)
                for row in rows:
                    by_setting = {setting: rates[row["name"], setting] for setting in SERVER_THREADS}
                    row["grpc_sustained"] = by_setting
                    row["grpc_sustained_examples_per_second"], row["grpc_sustained_best"] = max(
                        (rate, f"{setting}, {level.replace('_', ' ')}")
                        for setting, levels in by_setting.items() for level, rate in levels.items())


def write_models_config(rows: list[dict], path: pathlib.Path) -> None:
    blocks = "".join(f'  config {{\n    name: "{r["name"]}"\n    base_path: "/models/{r["name"]}"\n'
                     f'    model_platform: "tensorflow"\n    model_version_policy {{ latest {{ num_versions: 1 }} }}\n'
                     f"  }}\n" for r in rows)
    path.write_text("# TF Serving --model_config_file for the menu: one model name per entry.\n"
                    f"model_config_list {{\n{blocks}}}\n")


def report_markdown(rows: list[dict], choice: dict, budget: float) -> str:
    best = max(r["test_auc"] for r in rows)
    lines = ["# Serving menu", "", f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} CPU cores by "
             "`fsdnet-menu` (all servers up at once, calls interleaved).", "",
             "| model | run output | test AUC | Δ AUC vs best | logloss | parameters | multiply-adds / example |"
             " in-process p50 / p99 ms (1 · 64 · 1024) | gRPC p50 / p99 ms (1 · 64 · 1024) | gRPC examples/s @1024 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = {path: " · ".join(f"{r['latency'][f'batch_{b}'][path]['p50_ms']:.2f}/"
                                f"{r['latency'][f'batch_{b}'][path]['p99_ms']:.2f}" for b in BATCHES)
               for path in ("in_process", "grpc")}
        lines.append(f"| {r['name']} | {r['model']}:{r['output']} | {r['test_auc']:.5f} | {r['test_auc'] - best:+.5f} | "
                     f"{r['test_logloss']:.5f} | {r['parameters']:,} | {r['multiply_adds']:,} | {lat['in_process']} | "
                     f"{lat['grpc']} | {r['grpc_sustained_examples_per_second']:,} ({r['grpc_sustained_best']}) |")
    lines += ["", f"**Cheapest within {budget:g} AUC of the best ({best:.5f}): `{choice['name']}`** — "
              f"test AUC {choice['test_auc']:.5f}, {choice['grpc_sustained_examples_per_second']:,} gRPC examples/s "
              f"at batch 1024, {choice['multiply_adds']:,} multiply-adds per example.", "",
              "Multiply-adds: analytic, equal to the served graph's MatMul/Einsum count (`graph_multiply_adds` in "
              "menu.json); TF's profiler counts MatMul only (`profiler_matmul_multiply_adds`). Latency: fsdnet-serve "
              "with TensorFlow's default threads. Sustained examples/s: the highest over "
              f"{', '.join(map(str, SUSTAIN_THREADS))} client threads sending back to back and two server thread "
              "settings, TensorFlow's default (each op on all cores) and one thread per request "
              "(`--intra-op-threads 1 --inter-op-threads -1`); median of 2 rounds; every figure in menu.json "
              "(`grpc_sustained`), the winning one in `grpc_sustained_best`.", ""]
    return "\n".join(lines)


def latency(row: dict) -> float:
    return row["latency"]["batch_1024"]["grpc"]["p50_ms"]


def plot(rows: list[dict], choice: dict, budget: float, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    best = max(r["test_auc"] for r in rows)
    ax.axhline(best - budget, color="grey", linestyle="--", linewidth=1, label=f"best − {budget:g} AUC")
    for i, r in enumerate(sorted(rows, key=latency)):
        x = latency(r)
        ax.scatter(x, r["test_auc"], s=60, color="tab:red" if r is choice else "tab:blue")
        # Staggered labels: neighbours on the cost axis often have nearly equal AUC.
        ax.annotate(r["name"] + (" (chosen)" if r is choice else ""), (x, r["test_auc"]),
                    textcoords="offset points", xytext=(12, (-24, 14, 32)[i % 3]), fontsize=9,
                    arrowprops={"arrowstyle": "-", "linewidth": 0.6, "color": "grey"})
    ax.set_xlabel("gRPC p50 latency at batch 1024, ms (lower is cheaper)")
    ax.set_ylabel("test AUC")
    ax.set_title("Serving menu: quality against serving cost")
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.25)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-menu", description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--entry", action="append", required=True, metavar="NAME=RUN_DIR[:OUTPUT]")
    parser.add_argument("--auc-budget", type=float, default=0.001, help="absolute AUC a cheaper model may lose")
    parser.add_argument("--repeats", type=int, default=400, help="timed calls per path at batch 1 and 64")
    parser.add_argument("--sustain-seconds", type=float, default=2.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        entries = [Entry.parse(text) for text in args.entry]
    except ValueError as err:
        parser.error(str(err))
    if len({e.name for e in entries}) != len(entries):
        parser.error("--entry: model names must be distinct")
    if args.auc_budget < 0:
        parser.error("--auc-budget must be >= 0")
    try:
        for entry in entries:
            preflight.require_finished_run(entry.run_dir)
    except preflight.UsageError as err:
        return preflight.fail("fsdnet-menu", f"--entry {entry.name}: {err}")
    preflight.start(args.verbose, logging.INFO if args.verbose else logging.WARNING)
    log.setLevel(logging.INFO)
    from fsdnet_tf.config import ConfigError
    from fsdnet_tf.export import ExportError
    from fsdnet_tf.export.saved_model import load_raw_sample
    from fsdnet_tf.training.trainer import run_transform
    out = pathlib.Path(args.out_dir)
    models_dir = out / "models"
    try:
        rows = []
        for i, entry in enumerate(entries, 1):
            print(f"[{i}/{len(entries)}] exporting {entry.name} ({entry.run_dir}:{entry.output})", flush=True)
            rows.append(export_entry(entry, models_dir))
        raw_rows = load_raw_sample(run_transform(entries[0].run_dir))
    except (ConfigError, ExportError, FileNotFoundError) as err:
        print(f"fsdnet-menu: error: {err}", file=sys.stderr)
        return 2
    print(f"timing {len(rows)} models in process and over gRPC (batches {', '.join(map(str, BATCHES))})", flush=True)
    measure(rows, models_dir, raw_rows, args.repeats, args.sustain_seconds)
    choice = cheapest_within_budget(rows, args.auc_budget)
    write_models_config(rows, out / "models.config")
    (out / "menu.json").write_text(json.dumps({"auc_budget": args.auc_budget, "choice": choice["name"],
                                               "entries": rows}, indent=2) + "\n")
    (out / "menu.md").write_text(report_markdown(rows, choice, args.auc_budget))
    plot(rows, choice, args.auc_budget, out / "menu.png")
    for r in rows:
        print(f"  {r['name']:16s} AUC {r['test_auc']:.5f}  {r['multiply_adds']:>9,} MACs  "
              f"{r['grpc_sustained_examples_per_second']:>9,} ex/s @1024 over gRPC")
    print(f"cheapest within {args.auc_budget:g} AUC of the best: {choice['name']} → {out / 'menu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OptFusion against the hand-wired models: learned wiring vs DCN, DCNv2 and FSDNet.

    .venv/bin/python benchmarks/optfusion_study.py --work-dir /work/study/optfusion_study [--jobs 2]
    .venv/bin/python benchmarks/optfusion_study.py --dataset movielens1m --work-dir DIR
    .venv/bin/python benchmarks/optfusion_study.py --report-only [--dataset ...]

Per seed (2023–2025): ``optfusion_hard`` (search → derive → OptFusion-Hard re-train, the
shipped settings of SPEC_WAVE2 §3.6 with the dataset's config) and ``optfusion_soft`` (the
same search re-trained soft: ``model.optfusion.search_run`` points at the hard run, so one
search serves both). Each schedule of ``SCHEDULES`` repeats them with other settings; ``zoo``
gives the Dense blocks the hand-wired deep towers' regularisation (BatchNorm, and the dataset
config's ``model.dropout``); ``bn`` BatchNorm alone and the hand-wired runs' plateau decay of
the learning rate. The schedules of ``CONTROLS`` also train the hand-wired parallel DCN pattern
in OptFusion's blocks with the schedule's settings and no search (``parallel``): it tells the
search's share of a gap from the blocks' and the recipe's. The hand-wired models are the stored runs of the zoo and main
studies (same files, same seeds). Resumable: stored runs (``results/<dataset>_optfusion_runs/``) are
never trained again; a seed's soft run starts when its hard run has finished. The report,
``<dataset>_optfusion.md`` / ``.json``, is rebuilt after every finished run, with each seed's
derived wiring as ``<dataset>_optfusion_arch_s<seed>.png``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import functools
import json
import logging
import pathlib
import shutil
import sys

import zoo
from study_common import mean_std, plus_minus, publish_report, target_lines, welch_p_value

import reproduce

SEEDS = (2023, 2024, 2025)
DATASETS = {  # config, hand-wired runs (results subdirectory → models), data directory
    "frappe": ("frappe", {"frappe_zoo_runs": ("dcn",), "frappe_runs": ("dcnv2", "fsdnet")}, "frappe"),
    "movielens1m": ("movielens1m_ctr", {"movielens1m_runs": ("dcnv2", "fsdnet")}, "movielens1m/ctr"),
}
LABELS = {"optfusion_hard": "OptFusion-Hard", "optfusion_soft": "OptFusion-Soft",
          "optfusion_hard_e100": "OptFusion-Hard (≤ 100 epochs)", "optfusion_soft_e100": "OptFusion-Soft (≤ 100 epochs)",
          "optfusion_hard_zoo": "OptFusion-Hard (zoo blocks, ≤ 100 epochs)",
          "optfusion_soft_zoo": "OptFusion-Soft (zoo blocks, ≤ 100 epochs)",
          "optfusion_hard_bn": "OptFusion-Hard (BatchNorm, decay)", "optfusion_soft_bn": "OptFusion-Soft (BatchNorm, decay)",
          "optfusion_hard_rd": "OptFusion-Hard (BatchNorm, re-train decay)",
          "optfusion_soft_rd": "OptFusion-Soft (BatchNorm, re-train decay)",
          "parallel_e100": "parallel pattern, no search (≤ 100 epochs)",
          "parallel_bn": "parallel pattern, no search (BatchNorm, decay)",
          "dcn": "DCN", "dcnv2": "DCNv2", "fsdnet": "FSDNet"}
DERIVED = ("optfusion_hard", "optfusion_soft", "optfusion_hard_e100", "optfusion_soft_e100", "optfusion_hard_zoo",
           "optfusion_soft_zoo", "optfusion_hard_bn", "optfusion_soft_bn", "optfusion_hard_rd", "optfusion_soft_rd")
SEARCH_COST_TARGET = 3.0
log = logging.getLogger("optfusion_study")


# The shipped OptFusion settings (SPEC_WAVE2 §3.6: ≤ 20 epochs per phase), the same with up to
# 100 (the hand-wired runs' train.max_epochs), patience 2 all, with the zoo's deep blocks, and
# with BatchNorm and the hand-wired runs' schedule (learning rate × 0.1 after an epoch without
# a valid improvement, in search and re-train), and the same with the decay in the re-train only
# (the search at the authors' constant rate: a decayed rate freezes the gates where an early dip
# in valid AUC left them).
SCHEDULES = {"spec": ("", ()), "e100": ("_e100", (("model.optfusion.max_epochs", 100),)),
             "zoo": ("_zoo", (("model.optfusion.max_epochs", 100), ("model.optfusion.batch_norm", True))),
             "bn": ("_bn", (("model.optfusion.max_epochs", 100), ("model.optfusion.batch_norm", True),
                            ("model.optfusion.lr_decay", 0.1))),
             "rd": ("_rd", (("model.optfusion.max_epochs", 100), ("model.optfusion.batch_norm", True),
                            ("model.optfusion.retrain_lr_decay", 0.1)))}
DATASET_DROPOUT_SCHEDULES = ("zoo",)     # these also set model.optfusion.dropout to the config's model.dropout
# These also train the parallel pattern without a search (rd's would repeat bn's: without a
# search only the re-train's decay applies).
CONTROLS = ("e100", "bn")
CONTROL_VARIANTS = tuple(f"parallel{SCHEDULES[k][0]}" for k in CONTROLS)


@functools.lru_cache(maxsize=None)
def dataset_dropout(config: str) -> float:
    from fsdnet_tf.config import load_config
    return load_config(config).model.dropout


def schedule_settings(schedule: str, config: str) -> tuple[str, tuple]:
    suffix, settings = SCHEDULES[schedule]
    if schedule in DATASET_DROPOUT_SCHEDULES:
        settings += (("model.optfusion.dropout", dataset_dropout(config)),)
    return suffix, settings


def hard_run(seed: int, config: str, schedule: str = "spec") -> zoo.ZooRun:
    suffix, settings = schedule_settings(schedule, config)
    return zoo.ZooRun("optfusion", seed, group="optfusion", label=f"optfusion_hard{suffix}", config=config,
                      settings=settings)


def soft_run(seed: int, config: str, work_dir: pathlib.Path, schedule: str = "spec") -> zoo.ZooRun:
    suffix, settings = schedule_settings(schedule, config)
    search = work_dir / "runs" / hard_run(seed, config, schedule).name
    return zoo.ZooRun("optfusion", seed, group="optfusion", label=f"optfusion_soft{suffix}", config=config,
                      settings=settings + (("model.optfusion.mode", "soft"), ("model.optfusion.search_run", str(search))))


def parallel_run(seed: int, config: str, schedule: str) -> zoo.ZooRun:
    suffix, settings = schedule_settings(schedule, config)
    return zoo.ZooRun("optfusion", seed, group="optfusion", label=f"parallel{suffix}", config=config,
                      settings=settings + (("model.optfusion.architecture", "parallel"),))


def plan(config: str, work_dir: pathlib.Path, schedules=tuple(SCHEDULES)) -> list[tuple[zoo.ZooRun, ...]]:
    """Per schedule and seed, the runs to train in order: hard, soft (its search is the hard
    run's) and, for the schedules of ``CONTROLS``, the parallel pattern."""
    return [(hard_run(s, config, k), soft_run(s, config, work_dir, k))
            + ((parallel_run(s, config, k),) if k in CONTROLS else ()) for k in schedules for s in SEEDS]


def train_pairs(study: reproduce.Study, pairs, report) -> int:
    """Each seed's runs of ``plan`` in order, ``study.jobs`` seeds at a time."""
    failed = []

    def pair(*runs):
        for run in runs:
            if reproduce.stored_result(run, study.runs_dir) is None:
                metrics = study.train(run)
                log.info("%s: test AUC %.5f logloss %.5f, %.0f s", run.name, metrics["test"]["auc"],
                         metrics["test"]["logloss"], metrics["seconds"])
                try:
                    report()
                except Exception:  # a report bug must not stop the training
                    log.exception("the report could not be written")

    with concurrent.futures.ThreadPoolExecutor(study.jobs) as pool:
        for future in concurrent.futures.as_completed([pool.submit(pair, *runs) for runs in pairs]):
            try:
                future.result()
            except Exception as err:  # one failed seed must not stop the others
                failed.append(str(err))
                log.error("%s", err)
    return 1 if failed else 0


def collect(dataset: str, results_dir: pathlib.Path, work_dir: pathlib.Path) -> tuple[dict, list[str]]:
    config, hand_wired, _ = DATASETS[dataset]
    runs, missing = {}, []
    for runs_of_seed in plan(config, work_dir):
        for run in runs_of_seed:
            stored = reproduce.stored_result(run, results_dir / f"{dataset}_optfusion_runs")
            if stored is None:
                missing.append(run.name)
            else:
                runs.setdefault(run.variant, {})[run.seed] = stored
    for subdir, models in hand_wired.items():
        for model in models:
            for seed in SEEDS:
                path = results_dir / subdir / f"{model}_s{seed}.json"
                if path.is_file():
                    runs.setdefault(model, {})[seed] = json.loads(path.read_text())
                else:
                    missing.append(f"{subdir}/{model}_s{seed}")
    return runs, missing


def summary(chosen: dict) -> dict:
    values = list(chosen.values())
    row = {"seeds": sorted(chosen)}
    for split, metric in (("valid", "auc"), ("test", "auc"), ("test", "logloss")):
        mean, std = mean_std([r[split][metric] for r in values])
        row[f"{split}_{metric}_mean"], row[f"{split}_{metric}_std"] = mean, std
    # Per seed (a derived network's size depends on its wiring); runs stored before it was recorded lack it.
    sizes = sorted({r["parameters"] for r in values if r.get("parameters") is not None})
    row["parameters"] = (sizes[0], sizes[-1]) if sizes else None
    row["seconds_mean"] = mean_std([r["seconds"] for r in values])[0]
    row["epochs_mean"] = mean_std([len(r["epochs"]) for r in values])[0]
    return row


def architectures(hard: dict) -> dict:
    """Per seed: open gates and operations of the derived wiring; which gates all seeds agree on."""
    per_seed = {seed: {"open_gates": sorted(k for k, v in r["architecture"]["gates"].items() if v),
                       "operations": r["architecture"]["operations"], "reachable": r["architecture"]["reachable"],
                       "search_epochs": r["phases"]["search"]["epochs"],
                       "search_seconds": r["phases"]["search"]["seconds"],
                       "retrain_seconds": r["phases"]["retrain"]["seconds"],
                       "search_valid_auc": r["phases"]["search"]["valid"]["auc"],
                       "closed_gates": sorted(k for k, v in r["architecture"]["gates"].items() if not v)}
                for seed, r in sorted(hard.items())}
    if not per_seed:
        return {"per_seed": {}}
    gate_sets = [set(a["open_gates"]) for a in per_seed.values()]
    all_gates = list(next(iter(hard.values()))["architecture"]["gates"])
    agree = [g for g in all_gates if len({g in s for s in gate_sets}) == 1]
    ops = {point: [a["operations"][point] for a in per_seed.values()] for point in next(iter(per_seed.values()))["operations"]}
    return {"per_seed": per_seed, "gates_total": len(all_gates), "gates_agreed": len(agree),
            "operations_agreed": sum(len(set(v)) == 1 for v in ops.values()), "fusion_points": len(ops)}


def compute(runs: dict) -> dict:
    models = {name: summary(chosen) for name, chosen in runs.items() if chosen}
    hand = [m for m in ("dcn", "dcnv2", "fsdnet") if m in models]
    result = {"models": models, "comparisons": {},
              "architectures": {schedule: architectures(runs.get(f"optfusion_hard{suffix}", {}))
                                for schedule, (suffix, _) in SCHEDULES.items()}}
    if not hand:
        return result
    best_valid = max(hand, key=lambda m: models[m]["valid_auc_mean"])
    best_test = max(hand, key=lambda m: models[m]["test_auc_mean"])
    result.update(best_hand_wired_valid=best_valid, best_hand_wired_test=best_test)
    for variant in DERIVED + CONTROL_VARIANTS:
        if variant not in runs:
            continue
        result["comparisons"][variant] = {
            other: {f"p_{split}_{metric}": welch_p_value([r[split][metric] for r in runs[variant].values()],
                                                       [r[split][metric] for r in runs[other].values()])
                    for split, metric in (("valid", "auc"), ("test", "auc"), ("test", "logloss"))}
            for other in hand}
    # One training run: the mean wall time of the hand-wired runs (trained as this study, two at a time).
    hand_seconds = mean_std([r["seconds"] for m in hand for r in runs[m].values()])[0]
    result["search_cost"] = {}
    for schedule, arch in result["architectures"].items():
        per_seed = arch["per_seed"]
        if per_seed:
            search = mean_std([a["search_seconds"] for a in per_seed.values()])[0]
            retrain = mean_std([a["retrain_seconds"] for a in per_seed.values()])[0]
            result["search_cost"][schedule] = {"search_seconds_mean": search, "retrain_seconds_mean": retrain,
                                               "hand_wired_run_seconds_mean": hand_seconds,
                                               "search_over_hand_wired_run": search / hand_seconds,
                                               "search_over_retrain": search / retrain}
    return result


def targets(result: dict) -> list[tuple[str, bool | None, str]]:
    models = result["models"]
    derived = [v for v in DERIVED if len(models.get(v, {}).get("seeds", [])) == len(SEEDS)]
    complete = bool(derived) and "best_hand_wired_valid" in result and all(
        len(models[m]["seeds"]) == len(SEEDS) for m in ("dcn", "dcnv2", "fsdnet") if m in models)
    out = []
    for split in ("valid", "test"):
        best = result.get(f"best_hand_wired_{split}")
        if best is None or not derived:
            out.append((f"an OptFusion-derived model matches the best hand-wired model on {split} AUC", None,
                        f"waiting for {len(SEEDS)} seeds of a derived model"))
            continue
        top = max(derived, key=lambda v: models[v][f"{split}_auc_mean"])
        gap = models[top][f"{split}_auc_mean"] - models[best][f"{split}_auc_mean"]
        out.append((f"an OptFusion-derived model matches the best hand-wired model on {split} AUC",
                    gap >= 0 if complete else None,
                    f"{LABELS[top]} {models[top][f'{split}_auc_mean']:.5f} vs {LABELS[best]} "
                    f"{models[best][f'{split}_auc_mean']:.5f} ({gap:+.5f})"))
    for schedule, cost in result.get("search_cost", {}).items():
        out.append((f"search cost below {SEARCH_COST_TARGET:g} training runs ({schedule} schedule)",
                    cost["search_over_hand_wired_run"] < SEARCH_COST_TARGET if complete else None,
                    f"search {cost['search_seconds_mean']:.0f} s = {cost['search_over_hand_wired_run']:.2f}× a "
                    f"hand-wired run ({cost['hand_wired_run_seconds_mean']:.0f} s)"))
    return out


def parameter_range(sizes) -> str:
    if sizes is None:
        return "—"
    low, high = sizes
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def _p(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def render(dataset: str, command: str):
    def render_result(result: dict, missing: list[str]) -> str:
        models = result["models"]
        lines = [f"# {dataset}: OptFusion's learned wiring vs the hand-wired models",
                 "", f"Generated {datetime.date.today().isoformat()} by `{command}` on one machine with 2 CPU cores "
                 "(runs two at a time). Seeds " + ", ".join(map(str, SEEDS)) + "; mean ± std over seeds.", "",
                 "| model | seeds | valid AUC | test AUC | test logloss | parameters | epochs | seconds |",
                 "|---|---|---|---|---|---|---|---|"]
        for name in DERIVED + CONTROL_VARIANTS + ("dcn", "dcnv2", "fsdnet"):
            if name not in models:
                continue
            m = models[name]
            lines.append(f"| {LABELS[name]} | {len(m['seeds'])} | {plus_minus(m['valid_auc_mean'], m['valid_auc_std'])} "
                         f"| {plus_minus(m['test_auc_mean'], m['test_auc_std'])} "
                         f"| {plus_minus(m['test_logloss_mean'], m['test_logloss_std'], 4)} "
                         f"| {parameter_range(m['parameters'])} "
                         f"| {m['epochs_mean']:.1f} | {m['seconds_mean']:.0f} |")
        lines += ["", "OptFusion's epochs count search and re-train (soft: re-train only; its search is the hard run's). "
                  "Parameters are those served (the derived network; the supernet has more).", ""]
        if result["comparisons"]:
            lines += ["Welch p-values (two-tailed) of each derived model against each hand-wired one:", "",
                      "| derived | vs | valid AUC | test AUC | test logloss |", "|---|---|---|---|---|"]
            for variant, against in result["comparisons"].items():
                for other, p in against.items():
                    lines.append(f"| {LABELS[variant]} | {LABELS[other]} | {_p(p['p_valid_auc'])} | "
                                 f"{_p(p['p_test_auc'])} | {_p(p['p_test_logloss'])} |")
            lines.append("")
        for schedule, arch in result["architectures"].items():
            if not arch["per_seed"]:
                continue
            lines += [f"## Derived architectures (OptFusion-Hard, {schedule} schedule)", "",
                      f"Seeds agree on {arch['gates_agreed']} of {arch['gates_total']} gates and on the operation "
                      f"of {arch['operations_agreed']} of {arch['fusion_points']} fusion points.", "",
                      "| seed | open gates | reachable blocks | operations | search epochs | search valid AUC |",
                      "|---|---|---|---|---|---|"]
            for seed, a in arch["per_seed"].items():
                ops = ", ".join(f"{k} {v}" for k, v in a["operations"].items())
                lines.append(f"| {seed} | {len(a['open_gates'])} | {' '.join(a['reachable'][1:-1])} | {ops} | "
                             f"{a['search_epochs']} | {a['search_valid_auc']:.5f} |")
            lines += ["", "Closed gates per seed: " + "; ".join(
                f"{seed}: {', '.join(a['closed_gates']) or 'none'}" for seed, a in arch["per_seed"].items()) + ".", ""]
            lines += [f"Wiring drawings: `{dataset}_optfusion{SCHEDULES[schedule][0]}_arch_s<seed>.png`.", ""]
        for schedule, cost in result.get("search_cost", {}).items():
            lines += [f"## Search cost ({schedule} schedule)", "",
                      f"Search {cost['search_seconds_mean']:.0f} s on average, {cost['search_over_hand_wired_run']:.2f}× "
                      f"the mean wall time of one hand-wired run ({cost['hand_wired_run_seconds_mean']:.0f} s) and "
                      f"{cost['search_over_retrain']:.2f}× the hard re-train that follows it "
                      f"({cost['retrain_seconds_mean']:.0f} s). Wall times depend on the load: the hand-wired runs "
                      "shared the two cores with one other run; see the study log for how many shared them with "
                      "the OptFusion runs (the spec and e100 schedules, 2026-12-01: two to three other training "
                      "processes and test runs; the zoo schedule, 2026-12-02: one to three; the bn schedule, "
                      "2026-12-02: one, the other seed's run; the rd schedule, 2026-12-02: one to three, the other "
                      "seed's run, throughput benchmarks and test runs), so the ratio overstates the search's cost.", ""]
        lines += ["## Targets", ""] + target_lines(result["targets"])
        if missing:
            lines += ["", "Missing runs: " + ", ".join(missing) + "."]
        return "\n".join(lines) + "\n"
    return render_result


def write_report(dataset: str, results_dir: pathlib.Path, work_dir: pathlib.Path, command: str) -> dict:
    runs, missing = collect(dataset, results_dir, work_dir)
    result = compute(runs)
    for schedule, (suffix, _) in SCHEDULES.items():
        for seed in runs.get(f"optfusion_hard{suffix}", {}):
            drawing = work_dir / "runs" / hard_run(seed, DATASETS[dataset][0], schedule).name / "architecture.png"
            if drawing.is_file():
                shutil.copyfile(drawing, results_dir / f"{dataset}_optfusion{suffix}_arch_s{seed}.png")
    return publish_report(results_dir, f"{dataset}_optfusion", result, targets(result), missing,
                          render(dataset, command))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="frappe")
    parser.add_argument("--work-dir", type=pathlib.Path, default=reproduce.REPO / "work" / "optfusion")
    parser.add_argument("--data-dir", type=pathlib.Path, help="raw data (default ../shared/data/<dataset>)")
    parser.add_argument("--transform-dir", type=pathlib.Path, help="an existing transform output to use")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="train only these seeds' runs")
    parser.add_argument("--schedules", nargs="+", choices=sorted(SCHEDULES), default=list(SCHEDULES),
                        help="train only these schedules' runs")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config, _, data = DATASETS[args.dataset]
    results_dir = reproduce.REPO / "benchmarks" / "results"
    command = f".venv/bin/python benchmarks/optfusion_study.py --dataset {args.dataset} --work-dir {args.work_dir}"
    report = lambda: write_report(args.dataset, results_dir, args.work_dir, command)  # noqa: E731
    if args.report_only:
        report()
        return 0
    study = reproduce.Study(args.work_dir, args.data_dir or reproduce.REPO.parent / "shared" / "data" / data,
                            results_dir, args.jobs, config=config, runs_subdir=f"{args.dataset}_optfusion_runs")
    if args.transform_dir:
        study.transform_dir = args.transform_dir
    study.ensure_transform()
    code = train_pairs(study, [p for p in plan(config, args.work_dir, args.schedules) if p[0].seed in args.seeds],
                       report)
    report()
    return code


if __name__ == "__main__":
    sys.exit(main())

"""KD-DAGFM on Frappe: an FSDNet teacher distilled into DAGFM students, and the serving menu.

    .venv/bin/python benchmarks/kd_study.py --work-dir /work/study [--jobs 2]
    .venv/bin/python benchmarks/kd_study.py --report-only
    .venv/bin/fsdnet-menu --out-dir /work/study/menu --entry fsdnet=/work/study/runs/kd_teacher_s2023 ...
        (then copy its menu.json to benchmarks/results/frappe_menu_serving.json; see benchmarks/README.md)

Seeds 2023–2025. Per seed the teacher is FSDNet with the shipped ``frappe`` settings (the
main study's run of that seed, trained again into a run directory the students can read);
then the students of SPEC_WAVE2 §2 with its ML-1M hyper-parameters (Frappe's are not
published): ``kd_outer`` (the default), ``kd_inner``, ``kd_plus`` (KD-DAGFM+) and
``dagfm_scratch`` (the outer student and its own embedding trained with BCE alone, no
teacher). Resumable like ``zoo.py``; runs stored in ``benchmarks/results/frappe_kd_runs/``,
the report in ``frappe_menu.md`` / ``.json``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import pathlib
import sys

import zoo
from study_common import mean_std, plus_minus, publish_report, target_lines, welch_p_value, write_atomic

import reproduce

TEACHER = "kd_teacher"
STUDENTS = {"kd_outer": (), "dagfm_scratch": (("model.dagfm.teacher_type", "none"),),
            "kd_inner": (("model.dagfm.kind", "inner"),), "kd_plus": (("model.dagfm.deep", "true"),)}
# Frappe's student settings are not published: one knob at a time around the ML-1M row, seed
# TUNE_SEED, judged by the distilled student's *valid* AUC.
TUNE_SEED = 2023
TUNE = {"kd_outer_rescaled": (("model.dagfm.mixing_init", "rescaled"),),
        "kd_inner_rescaled": (("model.dagfm.kind", "inner"), ("model.dagfm.mixing_init", "rescaled")),
        "kd_outer_lr0.01": (("model.dagfm.learning_rate", 0.01),),
        "kd_outer_deepest_head": (("model.dagfm.teacher_output", "deepest_head"),),
        "kd_outer_depth4": (("model.dagfm.depth", 4),)}
# The tuning variant with the best valid AUC, trained on every seed.
TUNED = "kd_outer_depth4"
# The tuned student trained without distillation, every seed: its "above no distillation" baseline.
TUNED_SCRATCH = "dagfm_scratch_depth4"
LABELS = {TEACHER: "FSDNet teacher", "kd_outer": "KD-DAGFM (outer)", "kd_inner": "KD-DAGFM (inner)",
          "kd_plus": "KD-DAGFM+ (outer, deep [400]×3)", "dagfm_scratch": "DAGFM outer, no distillation",
          TUNED_SCRATCH: "DAGFM outer depth 4, no distillation"}
COMMAND = ".venv/bin/python benchmarks/kd_study.py --work-dir /work/study --jobs 2"
FIELDS, DIM, DEPTH, DEEP = 10, 16, 3, (400, 400, 400)
AUC_GAP, FLOPS_RATIO, THROUGHPUT_RATIO = 0.001, 0.25, 2.0


def teacher_runs() -> list[zoo.ZooRun]:
    return [zoo.ZooRun("fsdnet", s, group="kd", label=TEACHER) for s in zoo.SEEDS]


def student_runs(work_dir: pathlib.Path) -> list[zoo.ZooRun]:
    """Per seed outer and scratch first (the targets), then inner and KD-DAGFM+."""
    runs = []
    for variant, settings in STUDENTS.items():
        for seed in zoo.SEEDS:
            teacher = () if variant == "dagfm_scratch" else (
                ("model.dagfm.teacher_run", str(work_dir / "runs" / f"{TEACHER}_s{seed}")),)
            runs.append(zoo.ZooRun("kd_dagfm", seed, group="kd", settings=settings + teacher, label=variant))
    order = list(STUDENTS)
    return sorted(runs, key=lambda r: (order.index(r.variant) // 2, r.seed, order.index(r.variant)))


def tune_runs(work_dir: pathlib.Path, seeds: tuple[int, ...] = (TUNE_SEED,), variants=tuple(TUNE)) -> list[zoo.ZooRun]:
    return [zoo.ZooRun("kd_dagfm", seed, group="kd_tune", label=variant, settings=TUNE[variant] + (
        ("model.dagfm.teacher_run", str(work_dir / "runs" / f"{TEACHER}_s{seed}")),))
        for variant in variants for seed in seeds]


def tuned_runs(work_dir: pathlib.Path) -> list[zoo.ZooRun]:
    """The chosen tuning variant on the other seeds (its tuning run is the first seed's)."""
    return tune_runs(work_dir, tuple(s for s in zoo.SEEDS if s != TUNE_SEED), (TUNED,))


def tuned_scratch_runs() -> list[zoo.ZooRun]:
    settings = STUDENTS["dagfm_scratch"] + (("model.dagfm.depth", 4),)
    return [zoo.ZooRun("kd_dagfm", s, group="kd", settings=settings, label=TUNED_SCRATCH) for s in zoo.SEEDS]


def multiply_adds(variant: str) -> int:
    """Analytic per-example multiply-adds of the served model (as fsdnet_tf.export.cost, without TensorFlow)."""
    d0, u = FIELDS * DIM, DEEP[0]
    if variant == TEACHER:
        return DEPTH * d0 * d0 + d0 * u + (len(DEEP) - 1) * u * u + DEPTH * (d0 + u)
    depth = 4 if variant.endswith("depth4") else DEPTH
    edges = (1 if variant.startswith("kd_inner") else 2) * depth * FIELDS * FIELDS * DIM + FIELDS * FIELDS * DIM
    if variant == "kd_plus":
        return edges + d0 * u + (len(DEEP) - 1) * u * u + u
    return edges + FIELDS * (depth + 1)


def collect(results_dir: pathlib.Path, work_dir: pathlib.Path) -> tuple[dict, list[str]]:
    runs, missing = {}, []
    for run in teacher_runs() + student_runs(work_dir) + tune_runs(work_dir) + tuned_runs(work_dir) + tuned_scratch_runs():
        stored = reproduce.stored_result(run, results_dir / "frappe_kd_runs")
        if stored is None:
            missing.append(run.name)
        else:
            runs.setdefault(run.variant, {})[run.seed] = stored
    return runs, missing


def compute(runs: dict, serving: dict | None) -> dict:
    teachers = runs.get(TEACHER, {})
    rates = {e["name"]: e["grpc_sustained_examples_per_second"] for e in (serving or {}).get("entries", [])}
    models = {}
    for variant, by_seed in runs.items():
        aucs = [r["test"]["auc"] for r in by_seed.values()]
        lls = [r["test"]["logloss"] for r in by_seed.values()]
        gaps = [r["test"]["auc"] - teachers[s]["test"]["auc"] for s, r in by_seed.items() if s in teachers]
        auc, ll = mean_std(aucs), mean_std(lls)
        phases = [r.get("phases", {}) for r in by_seed.values()]
        models[variant] = {
            "seeds": sorted(by_seed), "valid_auc_by_seed": {s: r["valid"]["auc"] for s, r in sorted(by_seed.items())}, "auc_mean": auc[0], "auc_std": auc[1], "logloss_mean": ll[0],
            "logloss_std": ll[1], "auc_gap_to_teacher": mean_std(gaps)[0] if gaps else None,
            "distill_auc_mean": (mean_std([p["distill"]["test"]["auc"] for p in phases])[0]
                                 if all("distill" in p for p in phases) else None),
            "finetune_improved": sum(1 for p in phases if "finetune" in p and p["finetune"]["best_epoch"] > 0),
            "parameters": next(iter(by_seed.values())).get("parameters"),
            "multiply_adds": multiply_adds(variant), "flops_ratio": multiply_adds(variant) / multiply_adds(TEACHER),
            "epochs_mean": sum(len(r["epochs"]) for r in by_seed.values()) / len(by_seed),
            "grpc_examples_per_second_1024": rates.get(variant)}
    for student, scratch in (("kd_outer", "dagfm_scratch"), (TUNED, TUNED_SCRATCH)):
        if student in runs and scratch in runs:
            models[student]["p_auc_vs_scratch"] = welch_p_value(
                [r["test"]["auc"] for r in runs[student].values()], [r["test"]["auc"] for r in runs[scratch].values()])
    return {"models": models, "serving_choice": (serving or {}).get("choice"),
            "serving_budget": (serving or {}).get("auc_budget")}


def targets(result: dict) -> list[tuple[str, bool | None, str]]:
    """Each target is decided once the runs it compares have every seed."""
    m = result["models"]
    kd, teacher, scratch = m.get("kd_outer"), m.get(TEACHER), m.get("dagfm_scratch")
    if not kd or not teacher:
        return []
    complete = all(len(x["seeds"]) == len(zoo.SEEDS) for x in (kd, teacher) + ((scratch,) if scratch else ()))
    ratio = None
    if kd["grpc_examples_per_second_1024"] and teacher["grpc_examples_per_second_1024"]:
        ratio = kd["grpc_examples_per_second_1024"] / teacher["grpc_examples_per_second_1024"]
    out = [("KD-DAGFM within 0.001 AUC of its FSDNet teacher (mean over seeds of student − teacher)",
            kd["auc_gap_to_teacher"] >= -AUC_GAP if complete else None, f"gap {kd['auc_gap_to_teacher']:+.5f}"),
           ("at ≤ 25 % of the teacher's multiply-adds per example", kd["flops_ratio"] <= FLOPS_RATIO,
            f"{kd['multiply_adds']:,} vs {teacher['multiply_adds']:,} = {kd['flops_ratio']:.1%}"),
           ("≥ 2× the teacher's batch-1024 gRPC throughput",
            None if ratio is None else ratio >= THROUGHPUT_RATIO,
            "not measured yet" if ratio is None else f"{ratio:.2f}×")]
    tuned, tuned_scratch = m.get(TUNED), m.get(TUNED_SCRATCH)
    if tuned:
        tuned_ratio = (tuned["grpc_examples_per_second_1024"] / teacher["grpc_examples_per_second_1024"]
                       if tuned["grpc_examples_per_second_1024"] and teacher["grpc_examples_per_second_1024"] else None)
        above = tuned_scratch is not None and tuned["auc_mean"] > tuned_scratch["auc_mean"]
        decided = all(x is not None and len(x["seeds"]) == len(zoo.SEEDS) for x in (tuned, tuned_scratch))
        out.append((f"the student tuned on valid ({TUNED}) within 0.001 AUC of its teacher, ≤ 25 % of its "
                    "multiply-adds, ≥ 2× its gRPC throughput, above the same student trained without distillation",
                    (tuned["auc_gap_to_teacher"] >= -AUC_GAP and tuned["flops_ratio"] <= FLOPS_RATIO
                     and tuned_ratio is not None and tuned_ratio >= THROUGHPUT_RATIO and above) if decided else None,
                    f"gap {tuned['auc_gap_to_teacher']:+.5f} over {len(tuned['seeds'])} seeds, "
                    f"{tuned['multiply_adds']:,} multiply-adds ({tuned['flops_ratio']:.1%}), throughput "
                    + ("not measured" if tuned_ratio is None else f"{tuned_ratio:.2f}×") + ", without distillation "
                    + ("not trained" if tuned_scratch is None else
                       f"{tuned_scratch['auc_mean']:.5f} (Welch p {zoo._p(tuned.get('p_auc_vs_scratch'))})")))
    if scratch:
        out.append(("above the same student trained without distillation",
                    kd["auc_mean"] > scratch["auc_mean"] if complete else None,
                    f"{kd['auc_mean']:.5f} vs {scratch['auc_mean']:.5f}, Welch p {zoo._p(kd.get('p_auc_vs_scratch'))}"))
    return out


def render(result: dict, missing: list[str]) -> str:
    lines = ["# Frappe: KD-DAGFM students of an FSDNet teacher, and the serving menu", "",
             f"Generated {datetime.date.today().isoformat()} by `{COMMAND}` from the stored runs, trained on the "
             "development machine (2 CPU cores, no GPU, 2 runs at a time). Students: "
             "SPEC_WAVE2 §2 with its ML-1M settings (lr 3e-3, L2 1e-6, α 0.1, β 921.6, batch 1024, patience 10); "
             "teachers: FSDNet with the shipped `frappe` settings. Test figures of the served output; the gap "
             "is paired by seed.", ""]
    if missing:
        lines += [f"**Partial**: not stored yet: {', '.join(missing)}.", ""]
    lines += ["| model | seeds | test AUC | test logloss | Δ AUC vs teacher | distill-phase AUC | finetune helped "
              "| parameters | multiply-adds / example (ratio) | gRPC examples/s @1024 | epochs |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant, label in {**LABELS, **{v: f"tuning{' (then all seeds)' if v == TUNED else f' (seed {TUNE_SEED})'}: {v}"
                                        for v in TUNE}}.items():
        m = result["models"].get(variant)
        if not m:
            continue
        gap = "—" if variant == TEACHER or m["auc_gap_to_teacher"] is None else f"{m['auc_gap_to_teacher']:+.5f}"
        distill = f"{m['distill_auc_mean']:.5f}" if m["distill_auc_mean"] else "—"
        helped = f"{m['finetune_improved']} of {len(m['seeds'])}" if m["distill_auc_mean"] else "—"
        rate = f"{m['grpc_examples_per_second_1024']:,}" if m["grpc_examples_per_second_1024"] else "—"
        lines.append(f"| {label} | {len(m['seeds'])} | {plus_minus(m['auc_mean'], m['auc_std'])} | "
                     f"{plus_minus(m['logloss_mean'], m['logloss_std'], 4)} | {gap} | {distill} | {helped} | "
                     f"{m['parameters'] or 0:,} | {m['multiply_adds']:,} ({m['flops_ratio']:.1%}) | {rate} | "
                     f"{m['epochs_mean']:.1f} |")
    tuned = {v: result["models"][v]["valid_auc_by_seed"].get(TUNE_SEED) for v in ("kd_outer", *TUNE)
             if v in result["models"]}
    if len(tuned) > 1:
        lines += ["", f"Tuning, valid AUC of seed {TUNE_SEED} (the default settings are `kd_outer`): "
                  + ", ".join(f"{v} {auc:.5f}" for v, auc in tuned.items() if auc is not None) + "."]
    lines += ["", "Multiply-adds: analytic, as `fsdnet_tf/export/cost.py` (equal to the served graph's count; "
              "they include DAGFM's field mixing C·E, which SPEC_WAVE2 §2.8's 9,640 leaves out). "
              "“finetune helped”: seeds whose finetune phase beat the distilled weights on valid AUC (otherwise the "
              "distilled weights, its epoch 0, are served).", "", "## Targets", ""]
    lines += target_lines(result["targets"])
    if result.get("serving_choice"):
        lines += ["", f"Serving menu ([`frappe_menu_serving.md`](frappe_menu_serving.md), "
                  f"`frappe_menu_serving.png`; `fsdnet-menu` on seed 2023's teacher and students trained again on the "
                  "measuring machine, so their AUCs there differ from the stored runs' above by run-to-run noise): "
                  "the cheapest within "
                  f"{result['serving_budget']:g} AUC of the best is **{result['serving_choice']}**."]
    return "\n".join(lines) + "\n"


ML1M_RUNS = "movielens1m_kd_runs"
ML1M_VARIANTS = (TEACHER, "kd_outer", "kd_inner", "kd_plus", "dagfm_scratch")


def store_ml1m(run_root: pathlib.Path, results_dir: pathlib.Path) -> int:
    """Copy the finished ML-1M runs (``<run_root>/<variant>_s<seed>/metrics.json``, trained by the
    commands in benchmarks/README.md) into ``results/movielens1m_kd_runs/``."""
    target = results_dir / ML1M_RUNS
    target.mkdir(parents=True, exist_ok=True)
    stored = 0
    for path in sorted(run_root.glob("*_s*/metrics.json")):
        if path.parent.name.rsplit("_s", 1)[0] in ML1M_VARIANTS:
            write_atomic(target / f"{path.parent.name}.json", path.read_text())
            stored += 1
    return stored


def ml1m_lines(results_dir: pathlib.Path) -> list[str]:
    runs = {}
    for path in sorted((results_dir / ML1M_RUNS).glob("*.json")):
        variant, seed = path.stem.rsplit("_s", 1)
        runs.setdefault(variant, {})[int(seed)] = json.loads(path.read_text())
    if TEACHER not in runs:
        return []
    teachers = runs[TEACHER]
    lines = ["", "## MovieLens-1M (`movielens1m_ctr`, the fixed CTR split)", "",
             "Same students and settings; the FSDNet teacher with SPEC §3's ML-1M row (the authors' FSDNet code "
             "on these files: 0.81280 ± 0.00072 / 0.5178).", "",
             "| model | seeds | test AUC | test logloss | Δ AUC vs teacher (paired) |", "|---|---|---|---|---|"]
    for variant in ML1M_VARIANTS:
        by_seed = runs.get(variant, {})
        if not by_seed:
            continue
        auc = mean_std([r["test"]["auc"] for r in by_seed.values()])
        ll = mean_std([r["test"]["logloss"] for r in by_seed.values()])
        gaps = [r["test"]["auc"] - teachers[s]["test"]["auc"] for s, r in by_seed.items() if s in teachers]
        gap = "—" if variant == TEACHER else f"{mean_std(gaps)[0]:+.5f}"
        lines.append(f"| {LABELS[variant]} | {len(by_seed)} | {plus_minus(*auc)} | {plus_minus(*ll, 4)} | {gap} |")
    return lines + ml1m_serving_lines(results_dir / "movielens1m_menu_serving.json")


def ml1m_serving_lines(path: pathlib.Path) -> list[str]:
    """The cost half of the ML-1M targets, from ``fsdnet-menu`` on seed 2023's teacher and outer student."""
    if not path.is_file():
        return []
    entries = {e["name"]: e for e in json.loads(path.read_text())["entries"]}
    teacher, student = entries.get(TEACHER), entries.get("kd_outer")
    if not teacher or not student:
        return []
    ratio = student["grpc_sustained_examples_per_second"] / teacher["grpc_sustained_examples_per_second"]
    share = student["multiply_adds"] / teacher["multiply_adds"]
    return ["", f"Serving ([`movielens1m_menu_serving.md`](movielens1m_menu_serving.md); seed 2023's teacher and "
            "KD-DAGFM (outer) trained again on the measuring machine, `fsdnet-menu`): multiply-adds per example "
            f"{student['multiply_adds']:,} vs {teacher['multiply_adds']:,} ({share:.1%}, target ≤ 25 %: "
            f"{'met' if share <= FLOPS_RATIO else 'not met'}); batch-1024 gRPC examples/s "
            f"{student['grpc_sustained_examples_per_second']:,} vs {teacher['grpc_sustained_examples_per_second']:,} "
            f"({ratio:.2f}×, target ≥ 2×: {'met' if ratio >= THROUGHPUT_RATIO else 'not met'}); test AUC of "
            f"these two runs {student['test_auc']:.5f} vs {teacher['test_auc']:.5f}."]


def write_report(results_dir: pathlib.Path, work_dir: pathlib.Path) -> dict:
    serving_path = results_dir / "frappe_menu_serving.json"
    serving = json.loads(serving_path.read_text()) if serving_path.is_file() else None
    runs, missing = collect(results_dir, work_dir)
    result = compute(runs, serving)
    return publish_report(results_dir, "frappe_menu", result, targets(result), missing,
                          lambda rendered, absent: render(rendered, absent) + "\n".join(ml1m_lines(results_dir) + [""]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kd_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=pathlib.Path, default=zoo.REPO.parent / "shared" / "data" / "frappe")
    parser.add_argument("--work-dir", type=pathlib.Path, default=zoo.REPO / "work" / "reproduce")
    parser.add_argument("--results-dir", type=pathlib.Path, default=zoo.REPO / "benchmarks" / "results")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--store-ml1m", type=pathlib.Path, metavar="RUN_ROOT",
                        help="copy finished MovieLens-1M runs from RUN_ROOT into the results, then report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work, results = args.work_dir.resolve(), args.results_dir.resolve()
    study = zoo.PresetStudy(work, args.data_dir.resolve(), results, args.jobs, "frappe_kd_runs",
                            lambda directory: write_report(directory, work))
    if args.store_ml1m:
        logging.getLogger("kd_study").info("stored %d MovieLens-1M runs", store_ml1m(args.store_ml1m, results))
    if args.report_only or args.store_ml1m:
        study.write_report()
        return 0
    # Students read their teacher's run directory: teachers first; then the runs the targets need,
    # the tuning runs, and the other students.
    students = student_runs(work)
    first = [r for r in students if r.variant in ("kd_outer", "dagfm_scratch")]
    return (study.run(teacher_runs()) or study.run(first) or study.run(tune_runs(work))
            or study.run([r for r in students if r not in first]) or study.run(tuned_runs(work))
            or study.run(tuned_scratch_runs()))


if __name__ == "__main__":
    sys.exit(main())

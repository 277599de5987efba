"""TF4CTR on Frappe: a one-knob-at-a-time tuning of the authors' model, selected on valid AUC.

    .venv/bin/python benchmarks/tf4ctr_tuning.py --work-dir /work/study [--jobs 2]
    .venv/bin/python benchmarks/tf4ctr_tuning.py --report-only

Stage 1 trains seed 2023 of each variant in ``KNOBS`` (one setting changed from the authors'
Frappe settings of ``tf4ctr_study.py``). Stage 2 — planned once every stage-1 run is stored —
trains seeds 2024 and 2025 of the variant with the best seed-2023 *valid* AUC, if it beats the
untuned model's valid AUC (test figures play no part in the choice). Run the command again after
stage 1 to train stage 2. The untuned model's runs are the TF4CTR study's. Runs are stored in
``benchmarks/results/frappe_tf4ctr_tuning_runs/``, the report in ``frappe_tf4ctr_tuning.md`` / ``.json``.
"""
from __future__ import annotations

import datetime
import pathlib
import sys

import zoo
from study_common import mean_std, plus_minus, publish_report, target_lines, welch_p_value

import reproduce
import tf4ctr_study

# variant → settings changed from the authors' Frappe settings
KNOBS = {"emb32": (("model.embedding_dim", 32),),
         "batch4096": (("train.batch_size", 4096),),
         "dropout0.1": (("model.dropout", 0.1),),
         "dropout0.3": (("model.dropout", 0.3),),
         "l2_0.05": (("model.embedding_l2", 0.05),),
         "l2_0.2": (("model.embedding_l2", 0.2),),
         "hard800": (("model.deep_units", "[800,800,800]"),),
         "easy3": (("model.tf4ctr.easy_units", "[400,400,400]"),),
         "lr2e-3": (("train.learning_rate", 0.002),)}
SELECTION_SEED = zoo.SEEDS[0]
RUNS_DIR = "frappe_tf4ctr_tuning_runs"
COMMAND = ".venv/bin/python benchmarks/tf4ctr_tuning.py --work-dir /work/study --jobs 2"


def tuned_run(variant: str, seed: int) -> zoo.ZooRun:
    settings = dict(tf4ctr_study.AUTHORS_SETTINGS)
    settings.update(KNOBS[variant])
    return zoo.ZooRun("tf4ctr", seed, group="tf4ctr_tuning", settings=tuple(settings.items()), label=variant)


def baseline_runs(results_dir: pathlib.Path) -> list[dict]:
    """The untuned TF4CTR (authors' settings) from the TF4CTR study, every seed stored."""
    runs_dir = results_dir / "frappe_tf4ctr_runs"
    base = [r for r in tf4ctr_study.plan() if r.variant == "tf4ctr"]
    return [m for m in (reproduce.stored_result(r, runs_dir) for r in base) if m is not None]


def stage_one(results_dir: pathlib.Path) -> dict[str, dict | None]:
    runs_dir = results_dir / RUNS_DIR
    return {v: reproduce.stored_result(tuned_run(v, SELECTION_SEED), runs_dir) for v in KNOBS}


def selected(results_dir: pathlib.Path) -> str | None:
    """The stage-1 variant with the best valid AUC if it beats the untuned seed's; None while stage 1 is
    incomplete or when no knob helps on valid."""
    first = stage_one(results_dir)
    base = [r for r in baseline_runs(results_dir) if r["seed"] == SELECTION_SEED]
    if any(m is None for m in first.values()) or not base:
        return None
    best = max(first, key=lambda v: first[v]["valid"]["auc"])
    return best if first[best]["valid"]["auc"] > base[0]["valid"]["auc"] else None


def plan(results_dir: pathlib.Path) -> list[zoo.ZooRun]:
    runs = [tuned_run(v, SELECTION_SEED) for v in KNOBS]
    chosen = selected(results_dir)
    if chosen:
        runs += [tuned_run(chosen, s) for s in zoo.SEEDS if s != SELECTION_SEED]
    return runs


def compute(results_dir: pathlib.Path) -> dict:
    base = {r["seed"]: r for r in baseline_runs(results_dir)}
    first = stage_one(results_dir)
    ref = base.get(SELECTION_SEED)
    knobs = {}
    for variant, m in first.items():
        if m is not None:
            knobs[variant] = {"settings": dict(KNOBS[variant]), "valid_auc": m["valid"]["auc"],
                              "test_auc": m["test"]["auc"], "test_logloss": m["test"]["logloss"],
                              "epochs": len(m["epochs"]),
                              "valid_auc_gain": m["valid"]["auc"] - ref["valid"]["auc"] if ref else None}
    chosen = selected(results_dir)
    result = {"selection_seed": SELECTION_SEED, "knobs": knobs, "selected": chosen,
              "untuned": _summary(list(base.values())) if base else None}
    if chosen:
        runs_dir = results_dir / RUNS_DIR
        confirmed = [m for m in (reproduce.stored_result(tuned_run(chosen, s), runs_dir) for s in zoo.SEEDS) if m]
        result["tuned"] = _summary(confirmed)
        if len(confirmed) > 1 and len(base) > 1:
            result["tuned"]["p_auc_vs_untuned"] = welch_p_value([r["test"]["auc"] for r in confirmed],
                                                                [r["test"]["auc"] for r in base.values()])
    return result


def _summary(runs: list[dict]) -> dict:
    auc = [r["test"]["auc"] for r in runs]
    ll = [r["test"]["logloss"] for r in runs]
    return {"seeds": sorted(r["seed"] for r in runs), "auc_mean": mean_std(auc)[0], "auc_std": mean_std(auc)[1],
            "logloss_mean": mean_std(ll)[0], "logloss_std": mean_std(ll)[1],
            "valid_auc_mean": mean_std([r["valid"]["auc"] for r in runs])[0],
            "p_auc_vs_official": welch_p_value(auc, tf4ctr_study.OFFICIAL["auc"]),
            "p_logloss_vs_official": welch_p_value(ll, tf4ctr_study.OFFICIAL["logloss"])}


def targets(result: dict) -> list[tuple[str, bool | None, str]]:
    tuned = result.get("tuned")
    official = mean_std(tf4ctr_study.OFFICIAL["auc"])[0]
    if result["selected"] is None:
        complete = len(result["knobs"]) == len(KNOBS)
        return [("the tuned TF4CTR beats the official TF4CTR AUC with Welch p < 0.05", False if complete else None,
                 "no knob beat the untuned model on valid" if complete else "stage 1 incomplete")]
    done = tuned is not None and len(tuned["seeds"]) == len(zoo.SEEDS)
    p = tuned["p_auc_vs_official"] if tuned else None
    met = tuned["auc_mean"] > official and (p or 1) < zoo.TARGET_P if tuned else False
    return [("the tuned TF4CTR beats the official TF4CTR AUC with Welch p < 0.05", met if done else None,
             f"{result['selected']}: {tuned['auc_mean']:.5f} vs {official:.5f}, p {zoo._p(p)}" if tuned else "")]


def render(result: dict, missing: list[str]) -> str:
    lines = ["# Frappe: tuning TF4CTR one knob at a time", "",
             f"Generated {datetime.date.today().isoformat()} by `{COMMAND}` on 2 CPU cores, two runs at a time. "
             f"Stage 1: seed {SELECTION_SEED} of each variant, one setting changed from the authors' Frappe settings; "
             "the variant with the best **valid** AUC (if above the untuned model's) then gets seeds 2024 and 2025. "
             "Test figures are reported, never used to choose.", ""]
    if missing:
        lines += [f"**Partial**: not stored yet: {', '.join(missing)}.", ""]
    lines += [f"| variant (seed {SELECTION_SEED}) | setting | valid AUC | Δ valid vs untuned | test AUC | test logloss "
              "| epochs |", "|---|---|---|---|---|---|---|"]
    for variant, k in sorted(result["knobs"].items(), key=lambda kv: -kv[1]["valid_auc"]):
        setting = ", ".join(f"{a}={b}" for a, b in k["settings"].items())
        gain = f"{k['valid_auc_gain']:+.5f}" if k["valid_auc_gain"] is not None else "—"
        lines.append(f"| {variant} | `{setting}` | {k['valid_auc']:.5f} | {gain} | {k['test_auc']:.5f} | "
                     f"{k['test_logloss']:.4f} | {k['epochs']} |")
    pending = len(result["knobs"]) < len(KNOBS)
    choice = result["selected"] or ("pending (stage 1 incomplete)" if pending else
                                    "none (no knob beat the untuned model on valid)")
    lines += ["", f"Selected: **{choice}**.", "",
              "| model | seeds | test AUC | test logloss | p vs official (AUC / logloss) |", "|---|---|---|---|---|"]
    o_auc, o_ll = mean_std(tf4ctr_study.OFFICIAL["auc"]), mean_std(tf4ctr_study.OFFICIAL["logloss"])
    lines.append(f"| official TF4CTR code | 3 | {plus_minus(*o_auc)} | {plus_minus(*o_ll, 4)} | — |")
    for name, s in (("untuned TF4CTR (TF4CTR study)", result["untuned"]),
                    (f"tuned TF4CTR ({result['selected']})", result.get("tuned"))):
        if s:
            lines.append(f"| {name} | {len(s['seeds'])} | {plus_minus(s['auc_mean'], s['auc_std'])} | "
                         f"{plus_minus(s['logloss_mean'], s['logloss_std'], 4)} | {zoo._p(s['p_auc_vs_official'])} / "
                         f"{zoo._p(s['p_logloss_vs_official'])} |")
    if result.get("tuned", {}).get("p_auc_vs_untuned") is not None:
        lines += ["", f"Tuned vs untuned, test AUC: Welch p {zoo._p(result['tuned']['p_auc_vs_untuned'])}."]
    lines += ["", "## Targets", ""] + target_lines(result["targets"])
    return "\n".join(lines) + "\n"


def write_report(results_dir: pathlib.Path) -> dict:
    result = compute(results_dir)
    runs_dir = results_dir / RUNS_DIR
    missing = [r.name for r in plan(results_dir) if reproduce.stored_result(r, runs_dir) is None]
    return publish_report(results_dir, "frappe_tf4ctr_tuning", result, targets(result), missing, render)


def main(argv: list[str] | None = None) -> int:
    results_dir = pathlib.Path(__file__).resolve().parent / "results"
    if argv is None:
        argv = sys.argv[1:]
    if "--results-dir" in argv:
        results_dir = pathlib.Path(argv[argv.index("--results-dir") + 1])
    return zoo.study_cli(argv, __doc__, "tf4ctr_tuning", plan(results_dir.resolve()), RUNS_DIR, write_report)


if __name__ == "__main__":
    sys.exit(main())

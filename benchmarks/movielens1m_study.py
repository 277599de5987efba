"""MovieLens-1M (the fixed CTR split in ../shared/data/movielens1m/ctr): FSDNet vs DCNv2, 5 seeds.

    .venv/bin/python benchmarks/movielens1m_study.py --work-dir DIR [--jobs 2] [--report-only | --plan]

Shipped ``movielens1m_ctr`` config (SPEC §3's ML-1M settings), seeds 2023–2027, stored in
``results/movielens1m_runs/`` and reported in ``results/movielens1m.md`` / ``.json`` beside the
figures the authors' FSDNet code and FuxiCTR's DCNv2 reach on these files. FSDNet runs of
the same config already stored by the KD study (its teachers) are adopted, not trained again.
Resumable: only runs not stored yet are trained.
"""
from __future__ import annotations

import datetime
import json
import pathlib
import sys

import zoo
from study_common import mean_std, plus_minus, publish_report, target_lines, welch_p_value

import reproduce

CONFIG = "movielens1m_ctr"
SEEDS = reproduce.MAIN_SEEDS
MODELS = ("fsdnet", "dcnv2")
# ../shared/data/README.md: the authors' FSDNet code and FuxiCTR's DCNv2 on these files, seeds 2023 and 2024.
REFERENCE = {"fsdnet": {"label": "authors' FSDNet code", "auc": (0.81331, 0.81229), "logloss": (0.5170, 0.5185)},
             "dcnv2": {"label": "FuxiCTR's DCNv2", "auc": (0.80683, 0.80683), "logloss": (0.5283, 0.5283)}}
REFERENCE_SUMMARY = {"fsdnet": (0.81280, 0.00072, 0.5178, 0.0011), "dcnv2": (0.80683, 0.00265, 0.5283, 0.0044)}
RUNS_DIR = "movielens1m_runs"


def plan() -> list[zoo.ZooRun]:
    return [zoo.ZooRun(model, seed, group="movielens1m", config=CONFIG) for seed in SEEDS for model in MODELS]


def adopt_kd_teachers(results_dir: pathlib.Path) -> int:
    """Copy the KD study's MovieLens-1M teachers in as FSDNet runs where their config is this plan's."""
    adopted = 0
    for run in plan():
        target = results_dir / RUNS_DIR / f"{run.name}.json"
        source = results_dir / "movielens1m_kd_runs" / f"kd_teacher_s{run.seed}.json"
        if run.model != "fsdnet" or target.exists() or not source.is_file():
            continue
        metrics = json.loads(source.read_text())
        if reproduce.same_config(metrics.get("config"), run.expected_config()):
            metrics["study"] = {"run": run.name, "adopted_from": f"movielens1m_kd_runs/{source.name}"}
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(metrics, indent=1) + "\n")
            adopted += 1
    return adopted


def collect(results_dir: pathlib.Path) -> tuple[dict, list[str]]:
    runs, missing = {m: [] for m in MODELS}, []
    for run in plan():
        stored = reproduce.stored_result(run, results_dir / RUNS_DIR)
        if stored is None:
            missing.append(run.name)
        else:
            runs[run.model].append(stored)
    return runs, missing


def compute(runs: dict) -> dict:
    models = {}
    for model, chosen in runs.items():
        if not chosen:
            continue
        auc, ll = (mean_std([r["test"][m] for r in chosen]) for m in ("auc", "logloss"))
        heads = [mean_std([r["test"]["heads"][i]["auc"] for r in chosen]) for i in range(len(chosen[0]["test"]["heads"]))]
        models[model] = {"seeds": [r["seed"] for r in chosen], "auc_mean": auc[0], "auc_std": auc[1],
                         "auc_runs": [r["test"]["auc"] for r in chosen], "logloss_runs": [r["test"]["logloss"] for r in chosen],
                         "adopted": [r["study"]["adopted_from"] for r in chosen if "adopted_from" in r.get("study", {})],
                         "logloss_mean": ll[0], "logloss_std": ll[1], "head_auc": heads,
                         "head_names": chosen[0].get("head_names"),
                         "epochs_mean": sum(len(r["epochs"]) for r in chosen) / len(chosen)}
    result = {"models": models}
    if all(len(runs[m]) >= 2 for m in MODELS):      # a Welch p needs two runs a side
        result["fsdnet_vs_dcnv2"] = {
            metric: {"difference": models["fsdnet"][f"{metric}_mean"] - models["dcnv2"][f"{metric}_mean"],
                     "p": welch_p_value([r["test"][metric] for r in runs["fsdnet"]],
                                        [r["test"][metric] for r in runs["dcnv2"]])}
            for metric in ("auc", "logloss")}
    return result


def p_text(p) -> str:
    return "—" if p is None else f"{p:.2g}"


def targets(result: dict, missing: list[str]) -> list[tuple[str, bool | None, str]]:
    """The issue's targets; undecided (None) while planned runs are missing."""
    lines = []
    ours = result["models"].get("fsdnet")
    if ours:
        ref_auc, _, ref_ll, _ = REFERENCE_SUMMARY["fsdnet"]
        met = ours["auc_mean"] >= ref_auc and ours["logloss_mean"] <= ref_ll
        ref = REFERENCE["fsdnet"]
        p_auc, p_ll = (welch_p_value(ours[f"{m}_runs"], list(ref[m])) for m in ("auc", "logloss"))
        lines.append(("our FSDNet at least matches the authors' code on these files (mean test AUC and logloss)", met,
                      f"AUC {ours['auc_mean']:.5f} vs {ref_auc:.5f} (Welch p {p_text(p_auc)} against their two seeds), "
                      f"logloss {ours['logloss_mean']:.4f} vs {ref_ll:.4f} (p {p_text(p_ll)})"))
    versus = result.get("fsdnet_vs_dcnv2")
    if versus:
        auc, ll = versus["auc"], versus["logloss"]
        lines.append(("FSDNet beats DCNv2 on AUC with Welch p < 0.05 (paper: +0.0045)", auc["difference"] > 0 and auc["p"] < 0.05,
                      f"{auc['difference']:+.5f}, p {auc['p']:.3g}"))
        lines.append(("FSDNet beats DCNv2 on logloss with Welch p < 0.05 (paper: −0.0113)",
                      ll["difference"] < 0 and ll["p"] < 0.05, f"{ll['difference']:+.4f}, p {ll['p']:.3g}"))
    return [(text, None if missing else met, detail) for text, met, detail in lines]


def render(result: dict, missing: list[str]) -> str:
    lines = ["# MovieLens-1M: FSDNet vs DCNv2\n",
             f"Generated {datetime.date.today().isoformat()} by `.venv/bin/python benchmarks/movielens1m_study.py "
             "--work-dir /work/study/ml1m --jobs 2` from the stored runs (trained on 2 CPU cores): the fixed CTR split of "
             "`../shared/data/movielens1m/ctr` (5 fields, label rating ≥ 4), shipped `movielens1m_ctr` config "
             "(SPEC §3's ML-1M settings), test figures of the served ŷ, Welch two-tailed p. Reference figures: "
             "`../shared/data/README.md` (seeds 2023 and 2024, 2 CPU cores).\n",
             "| model | seeds | test AUC | test logloss | epochs | reference on these files |", "|---|---|---|---|---|---|"]
    for model, m in result["models"].items():
        ref = REFERENCE_SUMMARY[model]
        lines.append(f"| {model} | {len(m['seeds'])} | {plus_minus(m['auc_mean'], m['auc_std'], 5)} | "
                     f"{plus_minus(m['logloss_mean'], m['logloss_std'], 4)} | {m['epochs_mean']:.1f} | "
                     f"{REFERENCE[model]['label']}: {ref[0]:.5f} ± {ref[1]:.5f} / {ref[2]:.4f} ± {ref[3]:.4f} |")
    versus = result.get("fsdnet_vs_dcnv2")
    if versus:
        lines.append(f"\nFSDNet − DCNv2: AUC {versus['auc']['difference']:+.5f} (p {versus['auc']['p']:.3g}), "
                     f"logloss {versus['logloss']['difference']:+.4f} (p {versus['logloss']['p']:.3g}).")
    adopted = [a for m in result["models"].values() for a in m["adopted"]]
    if adopted:
        lines.append(f"\nAdopted from the KD study (its FSDNet teachers, the same config and seeds, trained before "
                     f"the 16-bit dropout masks of 2026-12-01; the other runs after them): {', '.join(adopted)}.")
    fsdnet = result["models"].get("fsdnet")
    if fsdnet:
        lines += ["\n## FSDNet per head (test AUC, mean ± std)\n", "| head | test AUC |", "|---|---|"]
        for name, (mean, std) in zip(fsdnet["head_names"] or [], fsdnet["head_auc"]):
            lines.append(f"| {name} | {plus_minus(mean, std, 5)} |")
    lines += zoo_lines(result.get("zoo"))
    claims = claim_lines(result)
    if claims:
        lines += ["\n## The paper's ML-1M claims on these files\n",
                  "A claim holds when our figures go the paper's way with Welch p < 0.05; the same way with a larger "
                  "p is not shown by these seeds.\n"] + claims
    lines += ["\n## Targets\n"] + target_lines(result["targets"])
    if missing:
        lines.append(f"\nNot stored yet ({len(missing)}): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


def verdict(same_way: bool, p: float | None) -> str:
    if not same_way:
        return "**does not hold**"
    return "**holds**" if p is not None and p < zoo.TARGET_P else f"same way, **not shown** (p ≥ {zoo.TARGET_P:g})"


def claim_lines(result: dict) -> list[str]:
    """One line per paper claim (Tables 2 and 3, ML-1M) these runs can check."""
    paper, lines = zoo.PAPER_TABLE3_ML1M, []
    versus = result.get("fsdnet_vs_dcnv2")
    if versus:
        auc, ll = versus["auc"], versus["logloss"]
        lines.append(f"- FSDNet beats DCNv2 on AUC (paper {paper['fsdnet'][0]:.4f} vs {paper['dcnv2'][0]:.4f}, "
                     f"{paper['fsdnet'][0] - paper['dcnv2'][0]:+.4f}): {verdict(auc['difference'] > 0, auc['p'])} — "
                     f"{auc['difference']:+.5f}, p {p_text(auc['p'])}.")
        lines.append(f"- FSDNet beats DCNv2 on logloss (paper {paper['fsdnet'][1]:.4f} vs {paper['dcnv2'][1]:.4f}, "
                     f"{paper['fsdnet'][1] - paper['dcnv2'][1]:+.4f}): {verdict(ll['difference'] < 0, ll['p'])} — "
                     f"{ll['difference']:+.4f}, p {p_text(ll['p'])}.")
    zoo_result = result.get("zoo")
    if zoo_result and not zoo_result["missing"]:
        for base, g in zoo_result["fsd_gains"].items():
            if base == "dcnv2":
                continue     # FSDNet vs DCNv2 above, with five seeds
            name = zoo.LABELS[base]
            lines.append(f"- FSD raises {name}'s AUC (paper {g['paper_auc_gain']:+.4f}): "
                         f"{verdict(g['auc_gain'] > 0, g['p_value_auc'])} — {g['auc_gain']:+.5f}, "
                         f"p {p_text(g['p_value_auc'])}, 3 seeds.")
            lines.append(f"- FSD lowers {name}'s logloss (paper {-g['paper_logloss_gain']:+.4f}): "
                         f"{verdict(g['logloss_gain'] > 0, g['p_value_logloss'])} — {-g['logloss_gain']:+.4f}, "
                         f"p {p_text(g['p_value_logloss'])}, 3 seeds.")
    ours = result["models"].get("fsdnet")
    if ours:
        lines.append(f"- The paper's absolute FSDNet figures ({paper['fsdnet'][0]:.4f} / {paper['fsdnet'][1]:.4f}): "
                     f"**do not carry over** to these files — ours {ours['auc_mean']:.4f} / {ours['logloss_mean']:.4f}, "
                     f"the authors' own code {REFERENCE_SUMMARY['fsdnet'][0]:.4f} / {REFERENCE_SUMMARY['fsdnet'][2]:.4f} "
                     "(these files hold about half of the paper's ratings, users 1–2999, and its label rule is not published).")
    return lines


def zoo_lines(zoo_result: dict | None) -> list[str]:
    """The FSD gain per base model from the MovieLens-1M zoo's report (``movielens1m_zoo.py``)."""
    if not zoo_result:
        return []
    lines = ["\n## FSD on the other base models ([`movielens1m_zoo.md`](movielens1m_zoo.md), 3 seeds)\n",
             "| base → + FSD | AUC gain (p) | logloss reduction (p) | paper AUC / logloss gain |", "|---|---|---|---|"]
    for base, g in zoo_result["fsd_gains"].items():
        lines.append(f"| {zoo.LABELS[base]} | {g['auc_gain']:+.5f} ({p_text(g['p_value_auc'])}) | "
                     f"{g['logloss_gain']:+.4f} ({p_text(g['p_value_logloss'])}) | "
                     f"{g['paper_auc_gain']:+.4f} / {g['paper_logloss_gain']:+.4f} |")
    lines += [""] + target_lines([(t["target"], t["met"], t["detail"]) for t in zoo_result["targets"]])
    if zoo_result["missing"]:
        lines.append(f"\nThe zoo is partial: {len(zoo_result['missing'])} runs not stored yet.")
    return lines


def write_report(results_dir: pathlib.Path) -> dict:
    adopt_kd_teachers(results_dir)
    runs, missing = collect(results_dir)
    result = compute(runs)
    zoo_path = results_dir / "movielens1m_zoo.json"
    if zoo_path.is_file():
        result["zoo"] = json.loads(zoo_path.read_text())
    return publish_report(results_dir, "movielens1m", result, targets(result, missing), missing, render)


def main(argv: list[str] | None = None) -> int:
    results = pathlib.Path(__file__).resolve().parent / "results"
    adopt_kd_teachers(results)
    return zoo.study_cli(argv, __doc__, "movielens1m_study", plan(), RUNS_DIR, write_report, CONFIG,
                         ("movielens1m/ctr", "MovieLens-1M's CTR split"))


if __name__ == "__main__":
    sys.exit(main())

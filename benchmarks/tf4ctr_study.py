"""TF4CTR on Frappe: the authors' model, TF4CTR on our DCNv2 backbone and TF4CTR + FSD.

    .venv/bin/python benchmarks/tf4ctr_study.py --work-dir /work/study [--jobs 2]
    .venv/bin/python benchmarks/tf4ctr_study.py --report-only

Three seeds (2023–2025) each, SPEC_WAVE2 §1.5's Frappe settings for ``tf4ctr`` and
``tf4ctr_dcnv2`` (the shipped ``frappe`` config with dropout 0.2: batch 10,000, λ 0.1,
γ 1, c 0.7, α 0.25, SER, WSF), FSDNet's shipped settings plus the twin-focus terms for
``tf4ctr_fsd``, and two further variants of ours: ``tf4ctr_fsd`` with TF4CTR's dropout 0.2, and
TF4CTR's own MLP branches with FSD's per-layer heads (``tf4ctr_mlp_fsd``); beside FSDNet and DCNv2 from the main study (same files and protocol) and
the official TF4CTR code's per-seed figures on these files (``../shared/data/README.md``).
Resumable like ``zoo.py``; runs are stored in ``benchmarks/results/frappe_tf4ctr_runs/``
and the report in ``frappe_tf4ctr.md`` / ``.json``.
"""
from __future__ import annotations

import datetime
import pathlib
import sys

import zoo
from study_common import mean_std, plus_minus, publish_report, target_lines, welch_p_value

import reproduce


AUTHORS_SETTINGS = (("model.dropout", 0.2),)
# variant → (model type, settings changed from the shipped frappe config)
VARIANTS = {"tf4ctr": ("tf4ctr", AUTHORS_SETTINGS), "tf4ctr_dcnv2": ("tf4ctr_dcnv2", AUTHORS_SETTINGS),
            "tf4ctr_fsd": ("tf4ctr_fsd", ()), "tf4ctr_fsd_dropout0.2": ("tf4ctr_fsd", AUTHORS_SETTINGS),
            # TF4CTR's own two MLP branches (easy on the half-width table) with FSD's per-layer heads
            "tf4ctr_mlp_fsd": ("tf4ctr_fsd", AUTHORS_SETTINGS + (("model.explicit_tower", "mlp"),
                                                                 ("model.tf4ctr.easy_units", "[400,400,400]"))),
            # The official run's selection: best epoch by valid AUC + gAUC over users
            "tf4ctr_gauc": ("tf4ctr", AUTHORS_SETTINGS + (("dataset.group_field", "user"),
                                                          ("train.monitor", "{auc: 1, gauc: 1}")))}
LABELS = {"tf4ctr": "TF4CTR (authors' model and Frappe settings)", "tf4ctr_dcnv2": "TF4CTR on the DCNv2 backbone",
          "tf4ctr_fsd": "TF4CTR + FSD (ours, FSDNet's settings)",
          "tf4ctr_fsd_dropout0.2": "TF4CTR + FSD (ours, TF4CTR's dropout 0.2)",
          "tf4ctr_mlp_fsd": "TF4CTR's MLP branches + FSD heads (ours, dropout 0.2)",
          "tf4ctr_gauc": "TF4CTR (authors' model and settings, selected on valid AUC + gAUC as theirs)",
          "tf4ctr_tuned": "TF4CTR, settings tuned on valid AUC (`frappe_tf4ctr_tuning.md`; 3 seeds, then its 2 confirmation seeds)",
          "fsdnet": "FSDNet (main study)", "dcnv2": "DCNv2 (main study)"}
# The official TF4CTR code on these files, seeds 2023–2025 (../shared/data/README.md).
OFFICIAL = {"auc": [0.98698, 0.98680, 0.98651], "logloss": [0.1345, 0.1399, 0.1294]}
PARENTS = {"tf4ctr_fsd": ("fsdnet", "tf4ctr_dcnv2"), "tf4ctr_fsd_dropout0.2": ("fsdnet", "tf4ctr_dcnv2"),
           "tf4ctr_mlp_fsd": ("fsdnet", "tf4ctr")}
COMMAND = ".venv/bin/python benchmarks/tf4ctr_study.py --work-dir /work/study --jobs 2"


def plan() -> list[zoo.ZooRun]:
    """The three published-settings models first for every seed, then our further TF4CTR + FSD variants."""
    runs = [zoo.ZooRun(model, s, group="tf4ctr", settings=settings, label=variant if variant != model else "")
            for variant, (model, settings) in VARIANTS.items() for s in zoo.SEEDS]
    later = ("tf4ctr_fsd_dropout0.2", "tf4ctr_mlp_fsd", "tf4ctr_gauc")
    return sorted(runs, key=lambda r: (later.index(r.variant) + 1 if r.variant in later else 0, r.seed))


def collect(results_dir: pathlib.Path) -> tuple[dict, list[str]]:
    runs, missing = {}, []
    for run in plan():
        stored = reproduce.stored_result(run, results_dir / "frappe_tf4ctr_runs")
        if stored is None:
            missing.append(run.name)
        else:
            runs.setdefault(run.variant, []).append(stored)
    import tf4ctr_tuning   # here: it imports this module
    tuned = tf4ctr_tuning.selected_runs(results_dir)    # its confirmation seeds included, once stored
    if len(tuned) >= len(zoo.SEEDS):
        runs["tf4ctr_tuned"] = tuned
    for model in ("fsdnet", "dcnv2"):
        for seed in zoo.SEEDS:
            stored = reproduce.stored_result(reproduce.Run("main", model, seed), results_dir / "frappe_runs")
            if stored is None:
                missing.append(f"{model}_s{seed} (main study)")
            else:
                runs.setdefault(model, []).append(stored)
    return runs, missing


def values(runs: list[dict], metric: str) -> list[float]:
    return [r["test"][metric] for r in runs]


def compute(runs: dict) -> dict:
    models = {}
    for model, chosen in runs.items():
        auc, ll = mean_std(values(chosen, "auc")), mean_std(values(chosen, "logloss"))
        models[model] = {"seeds": [r["seed"] for r in chosen], "auc_mean": auc[0], "auc_std": auc[1],
                         "logloss_mean": ll[0], "logloss_std": ll[1], "parameters": chosen[0].get("parameters"),
                         "epochs_mean": sum(len(r["epochs"]) for r in chosen) / len(chosen),
                         "p_auc_vs_official": welch_p_value(values(chosen, "auc"), OFFICIAL["auc"]),
                         "p_logloss_vs_official": welch_p_value(values(chosen, "logloss"), OFFICIAL["logloss"])}
    parents = {}
    for child, pair in PARENTS.items():
        for parent in pair:
            if child in runs and parent in runs:
                parents[f"{child} vs {parent}"] = {
                    "auc_difference": models[child]["auc_mean"] - models[parent]["auc_mean"],
                    "logloss_difference": models[child]["logloss_mean"] - models[parent]["logloss_mean"],
                    "p_value_auc": welch_p_value(values(runs[child], "auc"), values(runs[parent], "auc")),
                    "p_value_logloss": welch_p_value(values(runs[child], "logloss"), values(runs[parent], "logloss"))}
    auc, ll = mean_std(OFFICIAL["auc"]), mean_std(OFFICIAL["logloss"])
    return {"models": models, "parents": parents,
            "official": {"auc_mean": auc[0], "auc_std": auc[1], "logloss_mean": ll[0], "logloss_std": ll[1]}}


def targets(result: dict, complete: bool) -> list[tuple[str, bool | None, str]]:
    """The first target is decided once TF4CTR has every seed, the second once the whole plan is stored."""
    models, official = result["models"], result["official"]
    ours = models.get("tf4ctr")
    best = max(models, key=lambda m: models[m]["auc_mean"]) if models else None
    out = []
    if ours:
        matched = ours["auc_mean"] >= official["auc_mean"] and ours["logloss_mean"] <= official["logloss_mean"]
        out.append(("our TF4CTR at least matches the official code (mean test AUC and logloss)",
                    matched if len(ours["seeds"]) == len(zoo.SEEDS) else None,
                    f"AUC {ours['auc_mean']:.5f} vs {official['auc_mean']:.5f}, "
                    f"logloss {ours['logloss_mean']:.4f} vs {official['logloss_mean']:.4f}"))
    if best:
        b = models[best]
        beats = b["auc_mean"] > official["auc_mean"] and (b["p_auc_vs_official"] or 1) < zoo.TARGET_P
        out.append(("the best of our models beats the official TF4CTR AUC with Welch p < 0.05",
                    beats if complete else None,
                    f"best {best}: {b['auc_mean']:.5f} vs {official['auc_mean']:.5f}, p {zoo._p(b['p_auc_vs_official'])}"))
    return out


def render(result: dict, missing: list[str]) -> str:
    lines = ["# Frappe: TF4CTR, TF4CTR on DCNv2, TF4CTR + FSD", "",
             f"Generated {datetime.date.today().isoformat()} by `{COMMAND}` from the stored runs; FSDNet and DCNv2 "
             "are the main study's runs of the same seeds; the official TF4CTR code's figures are its three seeds "
             "on these files (`../shared/data/README.md`). Test figures of the served ŷ; Welch two-tailed p.", ""]
    if missing:
        lines += [f"**Partial**: not stored yet: {', '.join(missing)}.", ""]
    lines += ["| model | seeds | test AUC | test logloss | p vs official (AUC / logloss) | parameters | epochs |",
              "|---|---|---|---|---|---|---|"]
    o = result["official"]
    lines.append(f"| official TF4CTR code | 3 | {plus_minus(o['auc_mean'], o['auc_std'])} | "
                 f"{plus_minus(o['logloss_mean'], o['logloss_std'], 4)} | — | — | — |")
    for model, label in LABELS.items():
        m = result["models"].get(model)
        if m:
            params = f"{m['parameters']:,}" if m["parameters"] else "—"
            lines.append(f"| {label} | {len(m['seeds'])} | {plus_minus(m['auc_mean'], m['auc_std'])} | "
                         f"{plus_minus(m['logloss_mean'], m['logloss_std'], 4)} | {zoo._p(m['p_auc_vs_official'])} / "
                         f"{zoo._p(m['p_logloss_vs_official'])} | {params} | {m['epochs_mean']:.1f} |")
    lines += ["", "## TF4CTR + FSD against its parents", "", "| comparison | AUC difference | p | logloss difference | p |",
              "|---|---|---|---|---|"]
    for name, c in result["parents"].items():
        lines.append(f"| {name} | {c['auc_difference']:+.5f} | {zoo._p(c['p_value_auc'])} | "
                     f"{c['logloss_difference']:+.4f} | {zoo._p(c['p_value_logloss'])} |")
    lines += ["", "## Targets", ""]
    lines += target_lines(result["targets"])
    return "\n".join(lines) + "\n"


def write_report(results_dir: pathlib.Path) -> dict:
    runs, missing = collect(results_dir)
    result = compute(runs)
    return publish_report(results_dir, "frappe_tf4ctr", result, targets(result, not missing), missing, render)


def main(argv: list[str] | None = None) -> int:
    return zoo.study_cli(argv, __doc__, "tf4ctr_study", plan(), "frappe_tf4ctr_runs", write_report)


if __name__ == "__main__":
    sys.exit(main())

"""RQ3 of the Frappe report: FSDNet's test and valid AUC against α, T and β, one setting changed at
a time from the shipped config, 3 seeds per point, all with one code version (the shipped point is
the RQ5 study's SC runs, i.e. the shipped config trained with the same code)."""
from __future__ import annotations

import pathlib
from typing import Optional

import numpy as np

from study_common import mean_std, plus_minus, select

# (config key, shipped value, the other values); the shipped values are SPEC §3's Frappe row.
SENSITIVITY = {"model.alpha": (0.9, (0.7, 0.8)), "model.temperature": (1.3, (1.0, 2.0)),
               "model.beta": (0.01, (0.001, 0.1))}
VARIANT = "sensitivity"
SHIPPED_VARIANT = "fusion_concat"
LABELS = {"model.alpha": "α (BCE weight)", "model.temperature": "T (temperature)", "model.beta": "β (hint weight)"}


def compute_sensitivity(runs: list[dict]) -> dict:
    """Per key: the points (value, seeds, test and valid AUC mean ± std), sorted by value."""
    result = {}
    for key, (shipped, others) in SENSITIVITY.items():
        points = []
        for value in sorted((shipped,) + others):
            chosen = (select(runs, SHIPPED_VARIANT) if value == shipped
                      else select(runs, VARIANT, settings={key: value}))
            if not chosen:
                continue
            test, valid = (mean_std([r[split]["auc"] for r in chosen]) for split in ("test", "valid"))
            points.append({"value": value, "shipped": value == shipped, "seeds": [r["seed"] for r in chosen],
                           "test_auc": test, "valid_auc": valid})
        if points:
            result[key] = points
    return result


def sensitivity_targets(sensitivity: dict, complete: bool) -> list[tuple[str, Optional[bool], str]]:
    rows = []
    for key, points in sensitivity.items():
        best = max(points, key=lambda p: p["valid_auc"][0])
        values = ", ".join(f"{p['value']:g}" for p in points)
        rows.append((f"RQ3: the shipped {LABELS[key]} = {SENSITIVITY[key][0]:g} has the best mean valid AUC of "
                     f"{values}", best["shipped"] if complete else None,
                     "; ".join(f"{p['value']:g}: valid {p['valid_auc'][0]:.5f}, test {p['test_auc'][0]:.5f}"
                               for p in points)))
    return rows


def plot_sensitivity(sensitivity: dict, path: pathlib.Path) -> bool:
    if not sensitivity:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(SENSITIVITY), figsize=(4.2 * len(SENSITIVITY), 3.6), squeeze=False)
    for ax, key in zip(axes[0], SENSITIVITY):
        points = sensitivity.get(key, [])
        x = np.arange(len(points))
        for split, colour in (("valid_auc", "tab:green"), ("test_auc", "tab:blue")):
            ax.errorbar(x, [p[split][0] for p in points], yerr=[p[split][1] for p in points], marker="o",
                        capsize=3, color=colour, label=split.replace("_auc", " AUC"))
        ax.set_xticks(x, [f"{p['value']:g}" + (" (shipped)" if p["shipped"] else "") for p in points])
        ax.set(title=LABELS[key], ylabel="AUC (mean ± std, 3 seeds)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render_sensitivity(sensitivity: dict) -> list[str]:
    if not sensitivity:
        return []
    lines = ["", "## RQ3: sensitivity to α, T and β (one changed at a time, 3 seeds per point)", "",
             "| setting | value | seeds | valid AUC | test AUC |", "|---|---|---|---|---|"]
    for key, points in sensitivity.items():
        for p in points:
            lines.append(f"| {LABELS[key]} | {p['value']:g}{' (shipped)' if p['shipped'] else ''} | "
                         f"{', '.join(map(str, p['seeds']))} | {plus_minus(*p['valid_auc'])} | "
                         f"{plus_minus(*p['test_auc'])} |")
    return lines + ["", "The shipped point of each curve is the RQ5 study's SC runs (the shipped config, same code)."]

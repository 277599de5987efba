"""RQ5 of the Frappe report: the four ways of fusing each explicit and implicit layer (paper §4.6,
SPEC §7), all trained with one code version and the same seeds, each against SC (concatenation)."""
from __future__ import annotations

from typing import Optional

from study_common import mean_std, plus_minus, select, welch_p_value

FUSIONS = {"fusion_concat": "SC concat(c, h)", "fusion_hadamard": "HP concat(c, h, P(c) ⊙ h)",
           "fusion_add": "PA concat(c, h, P(c) + h)", "fusion_attention": "AD attention over {P(c), h}"}
BASE = "fusion_concat"


def compute_fusion(runs: list[dict]) -> dict:
    """Per fusion: seeds, mean ± std test AUC and logloss, and Welch p against SC on the same seeds."""
    result = {}
    for variant in FUSIONS:
        chosen = select(runs, variant)
        if not chosen:
            continue
        auc, ll = [r["test"]["auc"] for r in chosen], [r["test"]["logloss"] for r in chosen]
        base = select(runs, BASE, seeds=[r["seed"] for r in chosen])
        entry = {"seeds": [r["seed"] for r in chosen], "auc": auc, "logloss": ll}
        if variant != BASE and len(base) == len(chosen):
            entry["p_auc_vs_sc"] = welch_p_value(auc, [r["test"]["auc"] for r in base])
            entry["p_logloss_vs_sc"] = welch_p_value(ll, [r["test"]["logloss"] for r in base])
        result[variant] = entry
    return result


def fusion_target(fusion: dict, complete: bool) -> Optional[tuple[str, Optional[bool], str]]:
    """The paper's claim that concatenation fuses best; undecided until every fusion run is stored."""
    if BASE not in fusion:
        return None
    means = {v: mean_std(e["auc"])[0] for v, e in fusion.items()}
    best = max(means, key=means.get)
    return ("RQ5 (paper §4.6): SC (concatenation) has the best mean test AUC of the four fusions",
            (best == BASE) if complete else None,
            ", ".join(f"{FUSIONS[v].split()[0]} {m:.5f}" for v, m in means.items()))


def render_fusion(fusion: dict) -> list[str]:
    if not fusion:
        return []
    lines = ["", "## RQ5: fusing the explicit and implicit layers (SPEC §7), 3 seeds each, Welch p against SC", "",
             "| fusion | seeds | test AUC | test logloss | p vs SC (AUC / logloss) |", "|---|---|---|---|---|"]
    for variant, e in fusion.items():
        auc, ll = mean_std(e["auc"]), mean_std(e["logloss"])
        p = (f"{e['p_auc_vs_sc']:.3g} / {e['p_logloss_vs_sc']:.3g}"
             if e.get("p_auc_vs_sc") is not None and e.get("p_logloss_vs_sc") is not None else "—")
        lines.append(f"| {FUSIONS[variant]} | {', '.join(map(str, e['seeds']))} | {plus_minus(*auc)} | "
                     f"{plus_minus(*ll)} | {p} |")
    lines += ["", "SC here is trained again with the other three (the main study's FSDNet runs are an older code "
                  "version), so the four differ only in the fusion."]
    return lines

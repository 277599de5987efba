"""Shared by the studies in benchmarks/ (no TensorFlow): stored runs, statistics, report helpers."""
from __future__ import annotations

import json
import os
import pathlib
from typing import Iterable, Optional

import numpy as np
from scipy import stats

VARIANT_LABELS = {"fsdnet": "FSDNet (full loss)", "dcnv2": "DCNv2 (baseline)",
                  "no_soft_labels": "w/o soft labels (w/o SL)", "no_hint": "w/o hint loss (w/o HL)",
                  "no_fusion": "w/o information fusion (w/o IF)"}


def load_runs(runs_dir: pathlib.Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*.json"))] if runs_dir.is_dir() else []


def select(runs: Iterable[dict], variant: str, noise: float = 0.0, seeds: Optional[Iterable[int]] = None,
           settings: Optional[dict] = None) -> list[dict]:
    """Runs of ``variant`` at ``noise`` with exactly ``settings`` changed from the shipped config."""
    settings = settings or {}
    chosen = [r for r in runs if r["study"]["variant"] == variant and r["study"]["label_noise"] == noise
              and r["study"].get("settings", {}) == settings]
    if seeds is not None:
        wanted = set(seeds)
        chosen = [r for r in chosen if r["seed"] in wanted]
    return sorted(chosen, key=lambda r: r["seed"])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def welch_p_value(a: list[float], b: list[float]) -> Optional[float]:
    """Two-tailed Welch t-test p-value; None when either side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def plus_minus(mean: float, std: float, digits: int = 5) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def publish_report(results_dir: pathlib.Path, stem: str, result: dict, targets: list, missing: list[str],
                   render) -> dict:
    """Write ``<stem>.json`` and ``<stem>.md`` (``render(result, missing)``) with the targets and missing runs."""
    result = {**result, "targets": [{"target": t, "met": m, "detail": d} for t, m, d in targets], "missing": missing}
    write_atomic(results_dir / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    rendered = {**result, "targets": [(t["target"], t["met"], t["detail"]) for t in result["targets"]]}
    write_atomic(results_dir / f"{stem}.md", render(rendered, missing))
    return result


def target_lines(targets) -> list[str]:
    """Markdown bullets for (text, met or None, detail) targets."""
    return [f"- {text}: {'not yet measured' if met is None else ('**met**' if met else '**not met**')} — {detail}."
            for text, met, detail in targets]

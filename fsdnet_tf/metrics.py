"""Exact evaluation metrics on whole splits (numpy)."""
from __future__ import annotations

from typing import Optional

import numpy as np

LOGLOSS_EPSILON = 1e-7


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula; tied scores share their mean rank."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both positive and negative labels")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = mean_rank[inverse][labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def logloss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy with probabilities clipped to [1e-7, 1 − 1e-7]."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), LOGLOSS_EPSILON, 1 - LOGLOSS_EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def group_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """gAUC (DIN, FuxiCTR): Σ_u n_u·AUC_u / Σ_u n_u over the groups (users) whose rows hold both labels."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores, groups = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(groups).ravel()
    order = np.argsort(groups, kind="stable")
    labels, scores, groups = labels[order], scores[order], groups[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    weighted, rows = 0.0, 0
    for start, end in zip(starts, np.r_[starts[1:], groups.size]):
        positives = int(labels[start:end].sum())
        if 0 < positives < end - start:
            weighted += (end - start) * roc_auc(labels[start:end], scores[start:end])
            rows += end - start
    if rows == 0:
        raise ValueError("gAUC needs a group with both positive and negative labels")
    return weighted / rows


def evaluate(labels: np.ndarray, prediction: np.ndarray, head_probabilities: np.ndarray,
             groups: Optional[np.ndarray] = None) -> dict:
    """Figures for the served prediction ŷ (and its gAUC over ``groups``) and for every head
    (B, heads), the teacher last."""
    figures = {"auc": roc_auc(labels, prediction), "logloss": logloss(labels, prediction),
               "heads": [{"auc": roc_auc(labels, head_probabilities[:, i]),
                          "logloss": logloss(labels, head_probabilities[:, i])}
                         for i in range(head_probabilities.shape[1])]}
    if groups is not None:
        figures["gauc"] = group_auc(labels, prediction, groups)
    return figures


def monitored(figures: dict, weights: dict) -> float:
    """The score a run selects its best epoch by: Σ weight·metric (``train.monitor``)."""
    return sum(weight * figures[metric] for metric, weight in weights.items())

"""Exact evaluation metrics on whole splits (numpy)."""
from __future__ import annotations

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


def evaluate(labels: np.ndarray, prediction: np.ndarray, head_probabilities: np.ndarray) -> dict:
    """Figures for the served prediction ŷ and for every head (B, heads), the teacher last."""
    return {"auc": roc_auc(labels, prediction), "logloss": logloss(labels, prediction),
            "heads": [{"auc": roc_auc(labels, head_probabilities[:, i]),
                       "logloss": logloss(labels, head_probabilities[:, i])}
                      for i in range(head_probabilities.shape[1])]}

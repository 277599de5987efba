"""Evaluation metrics: AUC, gAUC (SPEC_WAVE2 §6.1.6) and the monitored score."""
import numpy as np
import pytest

from fsdnet_tf.metrics import evaluate, group_auc, monitored, roc_auc

# user A labels (1, 0), user B (1, 0, 0), user C (1, 1): skipped, one label only.
LABELS = np.array([1, 0, 1, 0, 0, 1, 1])
SCORES = np.array([0.9, 0.1, 0.2, 0.5, 0.1, 0.3, 0.4])
USERS = np.array([7, 7, 3, 3, 3, 5, 5])


def test_group_auc_hand_example():
    assert group_auc(LABELS, SCORES, USERS) == pytest.approx((2 * 1 + 3 * 0.5) / 5)      # 0.7
    assert roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    shuffled = np.random.default_rng(0).permutation(7)
    assert group_auc(LABELS[shuffled], SCORES[shuffled], USERS[shuffled]) == pytest.approx(0.7)


def test_group_auc_needs_a_group_with_both_labels():
    with pytest.raises(ValueError, match="gAUC needs a group with both"):
        group_auc(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]), np.array([1, 1, 2]))


def test_evaluate_reports_gauc_only_with_groups_and_the_monitor_weighs_metrics():
    heads = SCORES[:, None]
    assert "gauc" not in evaluate(LABELS, SCORES, heads)
    figures = evaluate(LABELS, SCORES, heads, USERS)
    assert figures["gauc"] == pytest.approx(0.7)
    assert monitored(figures, {"auc": 1.0, "gauc": 1.0}) == pytest.approx(1.45)
    assert monitored(figures, {"auc": 1.0}) == figures["auc"]

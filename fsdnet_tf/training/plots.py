"""PNG plots of a training run."""
from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(metrics: dict, path: pathlib.Path) -> None:
    """Loss terms per epoch (left) and valid AUC of ŷ and of every head (right)."""
    epochs = [e["epoch"] for e in metrics["epochs"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for term in ("loss", "bce", "kl", "hint", "regulariser"):
        values = [e["train"].get(term) for e in metrics["epochs"]]
        if any(v for v in values):
            left.plot(epochs, values, marker="o", label=term)
    left.set(xlabel="epoch", ylabel="mean training loss term", title="training losses", yscale="log")
    left.legend()
    heads = len(metrics["epochs"][0]["valid_heads"])
    for i in range(heads):
        label = "teacher head" if i == heads - 1 and heads > 1 else f"head {i + 1}"
        right.plot(epochs, [e["valid_heads"][i]["auc"] for e in metrics["epochs"]], marker=".", label=label)
    right.plot(epochs, [e["valid_auc"] for e in metrics["epochs"]], marker="o", color="black", label="ŷ (mean)")
    right.axvline(metrics["best_epoch"], color="grey", linestyle=":", label="best epoch")
    right.set(xlabel="epoch", ylabel="valid AUC", title=f"{metrics['model']} on {metrics['dataset']}")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The Frappe study's plots (PNG): label noise, valid AUC per epoch, heads."""
from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from study_common import VARIANT_LABELS, select  # noqa: E402


def plot_noise(result: dict, path: pathlib.Path) -> bool:
    if not any(float(level) > 0 for level in result["noise"]):
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, colour in (("fsdnet", "tab:blue"), ("dcnv2", "tab:orange")):
        levels = sorted(float(k) for k, e in result["noise"].items() if model in e)
        if not levels:
            continue
        entries = [result["noise"][f"{lv:.1f}"][model] for lv in levels]
        ax.plot([lv * 100 for lv in levels], [e["auc"] for e in entries], marker="o", color=colour,
                label=VARIANT_LABELS[model])
        for lv, e in zip(levels, entries):
            ax.scatter([lv * 100] * len(e["auc_per_seed"]), e["auc_per_seed"], color=colour, alpha=0.35, s=14)
    ax.set(xlabel="train labels flipped (%)", ylabel="test AUC (valid/test labels clean)",
           title="Frappe: robustness to label noise")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_valid_curves(runs: list[dict], path: pathlib.Path) -> bool:
    """Per-epoch valid AUC of every head for one FSDNet run beside DCNv2 with the same seed."""
    fsd = select(runs, "fsdnet")
    if not fsd:
        return False
    run = fsd[0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    epochs = [e["epoch"] for e in run["epochs"]]
    heads = len(run["epochs"][0]["valid_heads"])
    for i in range(heads):
        label = "FSDNet teacher (head 3)" if i == heads - 1 else f"FSDNet student head {i + 1}"
        colour = "tab:green" if i == heads - 1 else ("tab:blue", "tab:purple", "tab:cyan")[i % 3]
        ax.plot(epochs, [e["valid_heads"][i]["auc"] for e in run["epochs"]], marker=".", color=colour, label=label)
    ax.plot(epochs, [e["valid_auc"] for e in run["epochs"]], color="black", marker="o", ms=3, label="FSDNet ŷ (mean)")
    dcn = select(runs, "dcnv2", seeds=[run["seed"]])
    if dcn:
        ax.plot([e["epoch"] for e in dcn[0]["epochs"]], [e["valid_auc"] for e in dcn[0]["epochs"]],
                color="tab:red", linestyle="--", label="DCNv2")
    best = max(e["valid_auc"] for e in run["epochs"])
    ax.set_ylim(best - 0.01, best + 0.002)
    ax.set(xlabel="epoch", ylabel="valid AUC", title=f"Frappe, seed {run['seed']}: valid AUC per epoch")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_heads(result: dict, path: pathlib.Path) -> bool:
    heads = result["heads"].get("fsdnet")
    if not heads:
        return False
    labels = [f"student {i + 1}" for i in range(len(heads) - 1)] + ["teacher", "ŷ (mean)"]
    means = [h["auc_mean"] for h in heads] + [result["variants"]["fsdnet"]["auc_mean"]]
    stds = [h["auc_std"] for h in heads] + [result["variants"]["fsdnet"]["auc_std"]]
    colours = ["tab:blue"] * (len(heads) - 1) + ["tab:green", "black"]
    if "dcnv2" in result["variants"]:
        labels.append("DCNv2")
        means.append(result["variants"]["dcnv2"]["auc_mean"])
        stds.append(result["variants"]["dcnv2"]["auc_std"])
        colours.append("tab:orange")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar(labels, means, yerr=stds, color=colours, capsize=4)
    ax.set_ylim(min(means) - 3 * max(stds + [1e-4]), max(means) + 3 * max(stds + [1e-4]))
    seeds = len(result["variants"]["fsdnet"]["seeds"])
    ax.set(ylabel="test AUC (mean ± std)", title=f"Frappe: FSDNet heads over {seeds} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

"""RQ6: what self-distillation does to each layer's fused representation, FSDNet beside DCNv2.

    .venv/bin/python benchmarks/rq6_tsne.py --fsdnet RUN --dcnv2 RUN [--rows 2000]
                                            [--output benchmarks/results/frappe_rq6]

For a fixed sample of test rows (``--rows`` drawn with seed 0), each model's fused vector at
every layer, f_l = [c_l, h_l] (what FSDNet's head l reads; DCNv2's single head reads only the
last), is computed in inference mode. Per layer: the silhouette of clicked vs not-clicked rows
on f_l itself (euclidean), and a 2-D t-SNE of f_l (perplexity 30, PCA start, seed 0) drawn in
one PNG, a row per model, a column per layer. The paper's claim checked: self-distillation
makes the shallower layers' representations more discriminative, i.e. FSDNet's silhouette is
above DCNv2's at every layer below the last.
"""
from fsdnet_tf import _env  # noqa: F401

import argparse
import datetime
import json
import os
import pathlib
import sys

import numpy as np

SAMPLE_SEED = 0


def layer_representations(run_dir: str, rows: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels, [f_0, …, f_{L-1}]) of ``rows`` fixed test rows."""
    import tensorflow as tf

    from fsdnet_tf.data.input import load_arrays
    from fsdnet_tf.features import LABEL_KEY
    from fsdnet_tf.training import restore_model
    model, _, transform = restore_model(run_dir)
    arrays = load_arrays(transform, "test")
    total = len(arrays[LABEL_KEY])
    chosen = np.sort(np.random.default_rng(SAMPLE_SEED).choice(total, min(rows, total), replace=False))
    features = {f: tf.constant(arrays[f][chosen]) for f in transform.contract.fields}
    reps = model.named_outputs(features, training=False).reps
    layers = len(model.cfg.deep_units)
    return arrays[LABEL_KEY][chosen].astype(int), [
        np.concatenate([reps[f"explicit/{l}"].numpy(), reps[f"implicit/{l}"].numpy()], axis=1) for l in range(layers)]


def silhouettes(labels: np.ndarray, layers: list[np.ndarray]) -> list[float]:
    from sklearn.metrics import silhouette_score
    return [float(silhouette_score(x, labels, metric="euclidean")) for x in layers]


def embed(layers: list[np.ndarray]) -> list[np.ndarray]:
    from sklearn.manifold import TSNE
    return [TSNE(n_components=2, perplexity=30, init="pca", random_state=SAMPLE_SEED).fit_transform(x) for x in layers]


def plot(models: dict, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(models)
    layers = len(models[names[0]]["embedding"])
    figure, axes = plt.subplots(len(names), layers, figsize=(4 * layers, 4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        m = models[name]
        for col in range(layers):
            ax, points = axes[row][col], m["embedding"][col]
            for label, colour in ((0, "tab:blue"), (1, "tab:red")):
                mask = m["labels"] == label
                ax.scatter(points[mask, 0], points[mask, 1], s=3, c=colour, alpha=0.5,
                           label="clicked" if label else "not clicked")
            ax.set_title(f"{name}, layer {col + 1}: silhouette {m['silhouette'][col]:.3f}", fontsize=10)
            ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].legend(loc="best", markerscale=4, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def claim(result: dict) -> tuple[str, bool, str]:
    fsd, dcn = result["silhouette"]["fsdnet"], result["silhouette"]["dcnv2"]
    shallow = range(len(fsd) - 1)
    return ("RQ6 (paper): with self-distillation the shallower layers' fused representations separate clicked "
            "from not-clicked rows better (FSDNet's silhouette above DCNv2's at every layer below the last)",
            all(fsd[l] > dcn[l] for l in shallow),
            "; ".join(f"layer {l + 1}: {fsd[l]:.4f} vs {dcn[l]:.4f}" for l in range(len(fsd))))


def render(result: dict, png: str) -> str:
    text, met, detail = claim(result)
    lines = ["# RQ6: the fused representation of each layer, FSDNet beside DCNv2\n",
             f"Generated {result['generated']} on {result['machine']} by `{result['command']}`: {result['rows']:,} "
             "test rows drawn with "
             f"seed {SAMPLE_SEED}; f_l = [c_l, h_l] in inference mode; silhouette of clicked vs not clicked on f_l "
             "itself (euclidean; 1 = perfectly separated, 0 = overlapping).\n",
             "| layer | FSDNet silhouette | DCNv2 silhouette |", "|---|---|---|"]
    for l, (a, b) in enumerate(zip(result["silhouette"]["fsdnet"], result["silhouette"]["dcnv2"]), 1):
        lines.append(f"| {l} | {a:.4f} | {b:.4f} |")
    lines += ["", f"- {text}: **{'holds' if met else 'does not hold'}** on these files — {detail}.",
              "", f"![t-SNE per layer]({png})"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fsdnet", required=True, help="a finished FSDNet run directory")
    parser.add_argument("--dcnv2", required=True, help="a finished DCNv2 run directory (same transform)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--output", default="benchmarks/results/frappe_rq6", help="writes OUTPUT.{json,md,png}")
    args = parser.parse_args()
    models = {}
    for name, run in (("fsdnet", args.fsdnet), ("dcnv2", args.dcnv2)):
        labels, layers = layer_representations(run, args.rows)
        models[name] = {"labels": labels, "silhouette": silhouettes(labels, layers), "embedding": embed(layers)}
        print(f"{name}: silhouette per layer {[round(s, 4) for s in models[name]['silhouette']]}", flush=True)
    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"generated": datetime.date.today().isoformat(), "machine": f"{os.cpu_count()} CPU cores",
              "rows": int(len(models["fsdnet"]["labels"])),
              "command": "python benchmarks/rq6_tsne.py " + " ".join(sys.argv[1:]),
              "runs": {"fsdnet": args.fsdnet, "dcnv2": args.dcnv2},
              "silhouette": {name: m["silhouette"] for name, m in models.items()}}
    result["claim"] = dict(zip(("claim", "holds", "figures"), claim(result)))
    plot(models, out.with_suffix(".png"))
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result, out.with_suffix(".png").name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""RQ6's report on a tiny stored run: it builds, and its silhouettes are the ones a hand computation gives."""
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import rq6_tsne  # noqa: E402


def hand_silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    distances = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    scores = []
    for i, label in enumerate(labels):
        same = (labels == label) & (np.arange(len(labels)) != i)
        a, b = distances[i, same].mean(), distances[i, labels != label].mean()
        scores.append((b - a) / max(a, b))
    return float(np.mean(scores))


def test_rq6_report_on_a_tiny_run(trained_run, tmp_path, monkeypatch):
    run_dir, _, _ = trained_run
    output = tmp_path / "rq6"
    monkeypatch.setattr(sys, "argv", ["rq6_tsne.py", "--fsdnet", str(run_dir), "--dcnv2", str(run_dir),
                                      "--rows", "150", "--output", str(output)])
    assert rq6_tsne.main() == 0
    result = json.loads(output.with_suffix(".json").read_text())
    labels, layers = rq6_tsne.layer_representations(str(run_dir), 150)
    assert len(layers) == 3 and layers[0].shape[0] == 150 == result["rows"]
    expected = [hand_silhouette(x.astype(np.float64), labels) for x in layers]
    np.testing.assert_allclose(result["silhouette"]["fsdnet"], expected, rtol=1e-4)
    assert result["silhouette"]["dcnv2"] == result["silhouette"]["fsdnet"]
    assert result["claim"]["holds"] is False              # a model is not above itself
    assert output.with_suffix(".png").stat().st_size > 10_000
    assert "| 3 |" in output.with_suffix(".md").read_text()

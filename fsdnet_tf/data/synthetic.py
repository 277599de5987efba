"""The built-in synthetic CTR dataset.

Deterministic from a seed and of any size: rows are produced in fixed-size chunks,
each from its own generator seeded by (seed, chunk), so any chunk can be made
independently (in parallel Beam workers) and always equals the same rows.

Fields have Zipf-like value frequencies and cardinalities spread log-uniformly
between ``min_cardinality`` and ``max_cardinality``. The click logit is a sum of
a weak first-order term, planted pairwise interactions (low-rank dot products of
per-value latent vectors) and planted third-order interactions, so a model that
crosses features has something a logistic regression cannot learn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fsdnet_tf.config import SyntheticConfig

CHUNK_ROWS = 5000
_LATENT = 4
_ZIPF_EXPONENT = 1.1


@dataclass
class GeneratingModel:
    cardinalities: list[int]
    value_probabilities: list[np.ndarray]
    first_order: list[np.ndarray]
    latent: list[np.ndarray]
    pairs: list[tuple[int, int]]
    triples: list[tuple[int, int, int]]
    third: list[np.ndarray]
    bias: float

    def logit(self, ids: np.ndarray) -> np.ndarray:
        """ids: (n, fields) value indices → (n,) click logits."""
        z = np.full(len(ids), self.bias)
        for f, w in enumerate(self.first_order):
            z += w[ids[:, f]]
        for a, b in self.pairs:
            z += np.sum(self.latent[a][ids[:, a]] * self.latent[b][ids[:, b]], axis=1)
        for a, b, c in self.triples:
            z += self.third[a][ids[:, a]] * self.third[b][ids[:, b]] * self.third[c][ids[:, c]]
        return z


def generating_model(cfg: SyntheticConfig) -> GeneratingModel:
    rng = np.random.default_rng([cfg.seed, 0])
    n = cfg.fields
    cards = np.unique(np.geomspace(cfg.min_cardinality, cfg.max_cardinality, n).astype(int))
    cards = [int(c) for c in np.resize(cards, n)]
    probabilities = []
    for card in cards:
        p = 1.0 / np.arange(1, card + 1) ** _ZIPF_EXPONENT
        probabilities.append(p / p.sum())
    first = [rng.normal(0, 0.3, c) for c in cards]
    latent = [rng.normal(0, 0.9, (c, _LATENT)) for c in cards]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n) if rng.random() < 0.35] or [(0, 1)]
    triples = [tuple(sorted(rng.choice(n, 3, replace=False).tolist())) for _ in range(max(1, n // 3))]
    third = [rng.normal(0, 1.2, c) for c in cards]
    return GeneratingModel(cards, probabilities, first, latent, pairs, triples, third, bias=-1.0)


def chunk_count(cfg: SyntheticConfig) -> int:
    return (cfg.rows + CHUNK_ROWS - 1) // CHUNK_ROWS


def generate_chunk(cfg: SyntheticConfig, chunk: int, model: GeneratingModel | None = None):
    """Rows of chunk ``chunk``: (ids (n, fields), labels (n,), click probabilities (n,))."""
    model = model or generating_model(cfg)
    rows = min(CHUNK_ROWS, cfg.rows - chunk * CHUNK_ROWS)
    rng = np.random.default_rng([cfg.seed, 1, chunk])
    ids = np.stack([rng.choice(len(p), size=rows, p=p) for p in model.value_probabilities], axis=1)
    prob = 1.0 / (1.0 + np.exp(-model.logit(ids)))
    labels = (rng.random(rows) < prob).astype(np.int64)
    return ids, labels, prob


def chunk_lines(cfg: SyntheticConfig, chunk: int, model: GeneratingModel | None = None) -> list[bytes]:
    """The chunk as raw CSV lines ``label,f0,f1,...`` with tokens like ``v17``."""
    ids, labels, _ = generate_chunk(cfg, chunk, model)
    return [(f"{label}," + ",".join(f"v{i}" for i in row)).encode() for label, row in zip(labels, ids)]

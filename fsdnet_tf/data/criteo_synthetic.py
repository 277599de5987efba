"""A Criteo-shaped synthetic click log: raw Criteo TSV of any length, deterministic from a seed.

Each line is ``label I1..I13 C1..C26`` tab-separated, as Kaggle's ``train.txt``: integer
counts drawn log-normally (I2 sometimes negative), categorical tokens as 8-digit hex hashes,
empty cells where a value is missing. Categorical fields follow Criteo's cardinalities (from
3 to about 10 M values) with Zipf-skewed frequencies; each field has its own missing rate.
The click logit plants first-order effects, pairwise interactions (low-rank dot products of
per-value latent vectors) and integer effects, so models that cross features can be told
apart; the positive rate is about a quarter, as Criteo's.

Rows come in chunks of ``CHUNK_ROWS``, each from its own generator seeded by (seed, chunk),
so any chunk can be made alone and always equals the same lines. Per-value parameters are
hashes of (field, value), not tables: a 10 M-value field costs no memory.
"""
from __future__ import annotations

import numpy as np

CHUNK_ROWS = 20_000
INTEGER_FIELDS = 13
CATEGORICAL_FIELDS = 26
# Criteo's published per-field cardinalities (Kaggle train.txt) and approximate missing rates.
CARDINALITIES = (1460, 583, 10_131_227, 2_202_608, 305, 24, 12_517, 633, 3, 93_145, 5_683, 8_351_593, 3_194,
                 27, 14_992, 5_461_306, 10, 5_652, 2_173, 4, 7_046_547, 18, 15, 286_181, 105, 142_572)
CATEGORICAL_MISSING = (0.0, 0.0, 0.034, 0.034, 0.0, 0.121, 0.0, 0.0, 0.0, 0.0, 0.0, 0.034, 0.0, 0.0, 0.0,
                       0.034, 0.0, 0.0, 0.44, 0.44, 0.034, 0.76, 0.0, 0.034, 0.44, 0.034)
INTEGER_MISSING = (0.45, 0.0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.77, 0.22)
INTEGER_SCALE = (1.0, 2.5, 2.0, 1.8, 7.0, 4.0, 2.2, 2.3, 4.0, 0.5, 1.0, 0.8, 2.0)   # log-normal means
ZIPF_EXPONENT = 1.15
LATENT = 4
PAIRS = ((0, 5), (2, 13), (3, 8), (6, 19), (10, 22), (11, 15), (1, 24), (4, 16))   # categorical indices
FIRST_ORDER_SCALE, PAIR_SCALE, INTEGER_EFFECT, BIAS = 0.6, 0.6, 0.25, -1.35
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that scatters nearby inputs."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def value_parameter(seed: int, field: int, values: np.ndarray, slot: int) -> np.ndarray:
    """A fixed N(0, 1)-like number per (seed, field, value, slot), from a hash (sum of 4 uniforms)."""
    key = (values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
           + np.uint64((seed * 1_000_003 + field * 101 + slot) & 0xFFFFFFFF))
    h = _mix(key)
    parts = [((h >> np.uint64(16 * i)) & np.uint64(0xFFFF)).astype(np.float64) / 65535.0 for i in range(4)]
    return (sum(parts) - 2.0) * np.sqrt(3.0)


def zipf_ranks(rng: np.random.Generator, cardinality: int, size: int) -> np.ndarray:
    """0-based ranks with P(r) ∝ (r + 1)^−s on [0, cardinality), by the continuous inverse CDF."""
    s, u = ZIPF_EXPONENT, rng.random(size)
    top = (cardinality + 1.0) ** (1.0 - s)
    ranks = np.floor((1.0 + u * (top - 1.0)) ** (1.0 / (1.0 - s))) - 1.0
    return np.clip(ranks, 0, cardinality - 1).astype(np.int64)


def hex_tokens(field: int, values: np.ndarray) -> np.ndarray:
    """8-hex-digit tokens, distinct per value within a field (a bijection of uint32)."""
    h = ((values.astype(np.uint64) ^ np.uint64(field * 0x2545F491)) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    nibbles = (h[:, None] >> (np.uint64(4) * np.arange(7, -1, -1, dtype=np.uint64))) & np.uint64(0xF)
    return _HEX[nibbles.astype(np.int64)].view("S8").ravel()


def generate_chunk(seed: int, chunk: int, rows: int) -> dict:
    """One chunk's columns: ``label`` (rows,), ``integers`` (rows, 13, float NaN = missing),
    ``categorical`` (rows, 26, int −1 = missing), and the click ``logit``."""
    rng = np.random.default_rng([seed, 7, chunk])
    categorical = np.stack([zipf_ranks(rng, c, rows) for c in CARDINALITIES], axis=1)
    categorical[rng.random((rows, CATEGORICAL_FIELDS)) < np.asarray(CATEGORICAL_MISSING)] = -1
    integers = np.floor(rng.lognormal(np.asarray(INTEGER_SCALE), 1.2, (rows, INTEGER_FIELDS)))
    integers[:, 1] -= (rng.random(rows) < 0.08) * 3          # I2 goes down to −3, as Criteo's
    integers[rng.random((rows, INTEGER_FIELDS)) < np.asarray(INTEGER_MISSING)] = np.nan
    logit = np.full(rows, BIAS)
    present = categorical >= 0
    for f in range(CATEGORICAL_FIELDS):
        logit += FIRST_ORDER_SCALE / np.sqrt(CATEGORICAL_FIELDS) * present[:, f] * value_parameter(
            seed, f, categorical[:, f], 0)
    for a, b in PAIRS:
        both = present[:, a] & present[:, b]
        dot = sum(value_parameter(seed, a, categorical[:, a], 1 + k) * value_parameter(seed, b, categorical[:, b], 1 + k)
                  for k in range(LATENT))
        logit += PAIR_SCALE * both * dot / np.sqrt(LATENT)
    counts = np.log1p(np.clip(np.nan_to_num(integers, nan=0.0), 0, None))
    logit += INTEGER_EFFECT * (counts[:, 0] - counts[:, 4] / 3.0 + 0.5 * counts[:, 10])
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return {"label": labels, "integers": integers, "categorical": categorical, "logit": logit}


_SMALL_INTEGERS = 1 << 16
_INTEGER_TEXT = None     # b"" (missing), then b"-3" … b"65535": formatting by table lookup


def _integer_cells(column: np.ndarray) -> list[bytes]:
    global _INTEGER_TEXT
    if _INTEGER_TEXT is None:
        _INTEGER_TEXT = np.array([b""] + [b"%d" % v for v in range(-3, _SMALL_INTEGERS)], dtype=object)
    missing = np.isnan(column)
    values = np.nan_to_num(column, nan=0.0).astype(np.int64)
    large = ~missing & (values >= _SMALL_INTEGERS)
    cells = _INTEGER_TEXT[np.where(missing | large, 0, values + 4)]
    for i in np.flatnonzero(large):
        cells[i] = b"%d" % values[i]
    return cells.tolist()


def chunk_lines(seed: int, chunk: int, rows: int) -> bytes:
    """The chunk as Criteo TSV text, one ``\\n``-terminated line per row."""
    data = generate_chunk(seed, chunk, rows)
    columns = [[b"%d" % v for v in data["label"].tolist()]]
    columns += [_integer_cells(data["integers"][:, f]) for f in range(INTEGER_FIELDS)]
    for f in range(CATEGORICAL_FIELDS):
        values = data["categorical"][:, f]
        tokens = hex_tokens(f, np.maximum(values, 0)).astype(object)
        tokens[values < 0] = b""
        columns.append(tokens.tolist())
    return b"".join(b"\t".join(row) + b"\n" for row in zip(*columns))


def chunks(seed: int, rows: int):
    """(chunk index, row count) of every chunk of a ``rows``-row log."""
    for chunk in range(-(-rows // CHUNK_ROWS)):
        yield chunk, min(CHUNK_ROWS, rows - chunk * CHUNK_ROWS)

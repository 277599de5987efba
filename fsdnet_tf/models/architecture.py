"""OptFusion's search space and derived architectures, as data (SPEC_WAVE2 §3.2, §3.5).

Nodes, by index: 0 x0, 1 C0, then c_l = 2l and d_l = 2l + 1 for l = 1..L, and the output
2L + 2 (a destination only). A gate (destination, source) may be open only where the
search space has it: C0 ← x0; c_l and d_l ← every node of the earlier layers (x0, C0,
c_1, d_1, …, c_{l−1}, d_{l−1}); the output ← every node. The fusion point of destination r
is j = r − 2 (C0 has one input and none). No TensorFlow here: a derived architecture is
read, checked and drawn without it.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from fsdnet_tf.config_error import ConfigError

OPERATIONS = ("add", "prod", "concat", "att")
MODES = ("hard", "soft", "add")


def node_names(layers: int) -> list[str]:
    names = ["x0", "C0"]
    for layer in range(1, layers + 1):
        names += [f"c{layer}", f"d{layer}"]
    return names + ["output"]


def output_node(layers: int) -> int:
    return 2 * layers + 2


def sources(destination: int, layers: int) -> list[int]:
    """The candidate inputs of a destination node, in slot order."""
    if destination == 1:
        return [0]
    if destination == output_node(layers):
        return list(range(2 * layers + 2))
    layer = destination // 2
    return list(range(2 * layer))


def used_gates(layers: int) -> list[tuple[int, int]]:
    """(destination, source) of every gate of the space: 1 + 2L(L+1) + 2L + 2 of them."""
    return [(r, k) for r in range(1, output_node(layers) + 1) for k in sources(r, layers)]


def fusion_destinations(layers: int) -> list[int]:
    """The destinations with a fusion point, in fusion index order j = r − 2."""
    return list(range(2, output_node(layers) + 1))


@dataclass(frozen=True)
class Architecture:
    """A derived wiring: the open gates and, per fusion point, the operation (hard) or the
    fixed mixture weights (soft); ``add`` mode adds everywhere."""
    layers: int
    width: int
    mode: str
    product: str
    open_gates: frozenset          # {(destination, source)}
    operations: dict               # destination → op name (hard) | {op: weight} (soft) | "add"

    @property
    def names(self) -> list[str]:
        return node_names(self.layers)

    def gate(self, destination: int, source: int) -> int:
        return int((destination, source) in self.open_gates)

    def reachable(self) -> set[int]:
        """The nodes the output depends on through open gates (x0 always: every cross block reads it)."""
        seen, todo = {0}, [output_node(self.layers)]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            todo += [k for k in sources(node, self.layers) if self.gate(node, k)]
        return seen

    def to_json(self) -> dict:
        names = self.names
        return {"layers": self.layers, "width": self.width, "mode": self.mode, "product": self.product,
                "gates": {f"{names[r]}<-{names[k]}": self.gate(r, k) for r, k in used_gates(self.layers)},
                "operations": {names[r]: self.operations[r] for r in fusion_destinations(self.layers)},
                "reachable": [names[n] for n in sorted(self.reachable())]}

    @classmethod
    def from_json(cls, data: dict, where: str = "architecture") -> "Architecture":
        try:
            layers, width, mode, product = data["layers"], data["width"], data["mode"], data["product"]
            names = node_names(layers)
            index = {name: i for i, name in enumerate(names)}
            expected = {f"{names[r]}<-{names[k]}" for r, k in used_gates(layers)}
            if set(data["gates"]) != expected:
                raise ConfigError(f"{where}: gates {sorted(set(data['gates']) ^ expected)[:3]} do not fit "
                                  f"the {layers}-layer search space")
            open_gates = frozenset((index[key.split("<-")[0]], index[key.split("<-")[1]])
                                   for key, value in data["gates"].items() if int(value))
            operations = {index[name]: op for name, op in data["operations"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"{where}: not an OptFusion architecture ({err!r})") from err
        if mode not in MODES or set(operations) != set(fusion_destinations(layers)):
            raise ConfigError(f"{where}: mode {mode!r} or its fusion points do not fit the search space")
        for r, op in operations.items():
            valid = (op in OPERATIONS if mode == "hard" else op == "add" if mode == "add"
                     else isinstance(op, dict) and set(op) == set(OPERATIONS))
            if not valid:
                raise ConfigError(f"{where}: operation {op!r} of {names[r]} is not valid in {mode} mode")
        return cls(layers, width, mode, product, open_gates, operations)

    def write(self, path: pathlib.Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: pathlib.Path) -> "Architecture":
        return cls.from_json(json.loads(pathlib.Path(path).read_text()), str(path))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def derive(connection_logits: np.ndarray, operation_logits: np.ndarray, layers: int, width: int, mode: str,
           product: str) -> Architecture:
    """g* = 1[A > 0]; per fusion point argmax φ_j (hard, first on ties), softmax(φ_j) (soft) or add.
    A function of (A, φ) alone, so the same search gives the same architecture."""
    open_gates = frozenset((r, k) for r, k in used_gates(layers) if connection_logits[r, k] > 0)
    operations = {}
    for j, r in enumerate(fusion_destinations(layers)):
        phi = np.asarray(operation_logits[j], dtype=np.float64)
        if mode == "hard":
            operations[r] = OPERATIONS[int(np.argmax(phi))]
        elif mode == "soft":
            operations[r] = {op: round(float(w), 9) for op, w in zip(OPERATIONS, softmax(phi))}
        else:
            operations[r] = "add"
    return Architecture(layers, width, mode, product, open_gates, operations)


def parallel_architecture(layers: int, width: int, operation: str = "add",
                          output_operation: Optional[str] = None) -> Architecture:
    """The parallel DCN pattern: C0 ← x0, c_l ← c_{l−1} (C0 for l = 1), d_l ← d_{l−1} (x0 for l = 1),
    output ← c_L, d_L; ``operation`` everywhere but the output, which has ``output_operation``
    (default the same) (hard mode)."""
    last = output_node(layers)
    gates = {(1, 0), (2, 1), (3, 0), (last, 2 * layers), (last, 2 * layers + 1)}
    gates |= {(2 * l, 2 * l - 2) for l in range(2, layers + 1)} | {(2 * l + 1, 2 * l - 1) for l in range(2, layers + 1)}
    operations = {r: operation for r in fusion_destinations(layers)}
    operations[last] = output_operation or operation
    return Architecture(layers, width, "hard", "filtered", frozenset(gates), operations)


# Named wirings for model.optfusion.architecture. "parallel" is DCN's: the single-input blocks
# take their input as it is (add of one input), the output reads [c_L; d_L] through a linear layer.
PATTERNS = {"parallel": lambda layers, width: parallel_architecture(layers, width, "add", "concat")}


def given_architecture(spec: str, layers: int, width: int, product: str = "filtered") -> Architecture:
    """A named pattern of ``PATTERNS`` (with ``product``: none of them uses it) or an
    architecture.json, checked against the space (L, d0)."""
    key = "model.optfusion.architecture"
    if spec in PATTERNS:
        return replace(PATTERNS[spec](layers, width), product=product)
    path = pathlib.Path(spec)
    if not path.is_file():
        raise ConfigError(f"{key}: {spec!r} is neither a pattern ({', '.join(PATTERNS)}) nor an architecture file")
    arch = Architecture.read(path)
    if (arch.layers, arch.width) != (layers, width):
        raise ConfigError(f"{key}: {spec} has {arch.layers} layers of width {arch.width}, this config "
                          f"{layers} of {width} (model.cross_layers, fields × model.embedding_dim)")
    return arch


def operation_label(op) -> str:
    if isinstance(op, dict):
        return " ".join(f"{name[:2]}{weight:.2f}" for name, weight in op.items())
    return op


def draw(arch: Architecture, path: pathlib.Path, title: Optional[str] = None) -> None:
    """A PNG of the wiring: open gates as arrows, each fused node labelled with its operation;
    blocks the output does not reach are grey (they are not built)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names, reach, last = arch.names, arch.reachable(), output_node(arch.layers)
    position = {0: (0.0, 0.5), 1: (1.0, 0.85), last: (arch.layers + 2.0, 0.5)}
    for layer in range(1, arch.layers + 1):
        position[2 * layer], position[2 * layer + 1] = (layer + 1.0, 0.85), (layer + 1.0, 0.15)
    fig, ax = plt.subplots(figsize=(2.2 * (arch.layers + 3), 4.2))
    for r, k in sorted(arch.open_gates):
        live = r in reach
        (x0, y0), (x1, y1) = position[k], position[r]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="tab:blue" if live else "0.8", lw=1.2 if live else 0.6,
                                    connectionstyle=f"arc3,rad={0.15 if abs(y1 - y0) < 0.01 else 0.05}",
                                    shrinkA=14, shrinkB=14))
    for node, (x, y) in position.items():
        live = node in reach
        ax.scatter([x], [y], s=900, color="tab:orange" if live else "0.9", edgecolors="0.3", zorder=3)
        ax.text(x, y, names[node], ha="center", va="center", fontsize=10, zorder=4)
        if node >= 2:
            ax.text(x, y - 0.12 if y > 0.5 else y + 0.12, operation_label(arch.operations[node]),
                    ha="center", va="center", fontsize=7, color="0.2" if live else "0.6")
    ax.set_xlim(-0.6, arch.layers + 2.6)
    ax.set_ylim(-0.1, 1.1)
    ax.axis("off")
    ax.set_title(title or f"OptFusion-{arch.mode} wiring ({len(arch.open_gates)} open gates, "
                 f"{len(reach) - 1} of {last} blocks reachable)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)

"""OptFusion's block graph: cross v1 and Dense blocks wired by 0/1 gates, merged by fusion points
(SPEC_WAVE2 §3.3).

Searching, the gates are straight-through 1[A > 0] over learned connection logits A and each
fusion point mixes its four operations by softmax(φ_j); both are the architecture variables.
Built from a derived :class:`~fsdnet_tf.models.architecture.Architecture`, the gates are
constants, blocks the output cannot reach are not built, and a hard fusion point builds only
its chosen operation (an attention point only the MLPs of its open inputs). Every Dense
starts as PyTorch's default (the official code's), cross biases at zero.
"""
from __future__ import annotations

import math
from typing import Optional

import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.batch_norm import FlatBatchNorm
from fsdnet_tf.layers.towers import CountedDropout
from fsdnet_tf.models.architecture import (OPERATIONS, Architecture, fusion_destinations, node_names,
                                           output_node, sources)

OPERATION_LOGIT_STDDEV = math.sqrt(2.0 / 5.0)    # Xavier normal of a (1, 4) tensor


def torch_dense(units: int, fan_in: int, activation: Optional[str] = None, use_bias: bool = True,
                **kwargs) -> tf_keras.layers.Dense:
    """PyTorch's default ``nn.Linear`` initialisation: kernel and bias U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    return tf_keras.layers.Dense(units, activation=activation, use_bias=use_bias,
                                 kernel_initializer=tf_keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in",
                                                                                         "uniform"),
                                 bias_initializer=tf_keras.initializers.RandomUniform(-bound, bound), **kwargs)


def straight_through(logits: tf.Tensor) -> tf.Tensor:
    """1[logits > 0] forward; the identity's gradient backward (∂g/∂A = 1)."""
    hard = tf.cast(logits > 0, logits.dtype)
    return logits + tf.stop_gradient(hard - logits)


class CrossV1Block(tf_keras.layers.Layer):
    """x0 · (wᵀu) + b + u: DCN's cross layer with its input replaced by the fused u."""

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.kernel = self.add_weight("kernel", shape=[width, 1],
                                      initializer=tf_keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"))
        self.bias = self.add_weight("bias", shape=[width], initializer="zeros")

    def call(self, x0: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
        return x0 * tf.matmul(u, self.kernel) + self.bias + u


class DeepBlock(tf_keras.layers.Layer):
    """ReLU(W·u + β) — the authors' block, no BN, no dropout — or, with ``batch_norm`` and
    ``dropout``, the zoo's deep block Dense → BatchNorm → ReLU → Dropout; a block wider or
    narrower than x0 is projected back to x0's width by a linear adapter, so that every node can
    be added, multiplied or attended."""

    def __init__(self, width: int, block_width: int, batch_norm: bool = False, dropout: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.width, self.block_width, self.batch_norm, self.dropout = width, block_width, batch_norm, dropout
        self.dense = torch_dense(block_width, width, activation=None if batch_norm else "relu", name="dense")
        self.normalise = (FlatBatchNorm(momentum=0.9, epsilon=1e-5, name="bn")
                          if batch_norm else None)
        self.drop = CountedDropout(dropout, seed=seed, name="dropout") if dropout > 0 else None
        self.adapter = torch_dense(width, block_width, name="adapter") if block_width != width else None

    def call(self, u: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        h = self.dense(u)
        if self.normalise is not None:
            h = tf.nn.relu(self.normalise(h, training=training))
        if self.drop is not None:
            h = self.drop(h, training=training)
        return self.adapter(h) if self.adapter is not None else h

    def get_config(self):
        return {**super().get_config(), "width": self.width, "block_width": self.block_width,
                "batch_norm": self.batch_norm, "dropout": self.dropout}


class AttentionSlot(tf_keras.layers.Layer):
    """softmax_over_features(U·ReLU(V·x + c)) ⊙ x for one input slot."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden = torch_dense(width, width, activation="relu", name="hidden")
        self.score = torch_dense(width, width, use_bias=False, name="score")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(self.score(self.hidden(x)), axis=-1) * x


class FusionPoint(tf_keras.layers.Layer):
    """Fuse_j over ``slots`` gated inputs of one width: Σ_op ω_op · op(g_1·x_1, …, g_n·x_n).

    ``operations``: the modules built (all four when searching or soft, one when hard).
    ``plain_product``: the authors' search product ∏ g_i·x_i (one closed input zeroes it);
    otherwise the filtered product 1[any g_i = 1]·∏(1 + g_i·(x_i − 1)) of the open inputs.
    ``attention_slots``: the slots that get an attention MLP (the open ones of a derived point).
    """

    def __init__(self, slots: int, width: int, operations: tuple[str, ...], plain_product: bool = False,
                 attention_slots: Optional[tuple[int, ...]] = None, **kwargs):
        super().__init__(**kwargs)
        self.slots, self.width, self.operations, self.plain_product = slots, width, tuple(operations), plain_product
        if "concat" in self.operations:
            self.concat = torch_dense(width, slots * width, name="concat")
        if "att" in self.operations:
            slots_with_mlp = range(slots) if attention_slots is None else attention_slots
            self.attention = {str(i): AttentionSlot(width, name=f"attention_{i}") for i in slots_with_mlp}

    def call(self, inputs: list, gates: list, weights=None) -> tf.Tensor:
        """``inputs``: one (B, width) tensor per slot; ``gates``: tensors (searching) or 0/1 numbers
        (derived: a closed slot then costs nothing but its zero block in concat's input);
        ``weights``: ω over ``operations`` (a (4,) tensor or a dict), None for a single operation."""
        static = [not isinstance(g, tf.Tensor) for g in gates]
        open_slots = [i for i, g in enumerate(gates) if not static[i] or g]
        gated = {i: inputs[i] if static[i] else gates[i] * inputs[i] for i in open_slots}
        zeros = tf.zeros_like(inputs[0])
        values = []
        for op in self.operations:
            if op == "add":
                values.append(tf.add_n(list(gated.values())) if gated else zeros)
            elif op == "prod":
                values.append(self._product(inputs, gates, open_slots, static, gated, zeros))
            elif op == "concat":
                values.append(self.concat(tf.concat([gated.get(i, zeros) for i in range(self.slots)], axis=-1)))
            else:
                parts = [self.attention[str(i)](gated[i]) for i in open_slots]
                values.append(tf.add_n(parts) if parts else zeros)
        if weights is None:
            return values[0]
        if isinstance(weights, dict):
            return tf.add_n([weights[op] * v for op, v in zip(self.operations, values)])
        return tf.add_n([weights[OPERATIONS.index(op)] * v for op, v in zip(self.operations, values)])

    def _product(self, inputs, gates, open_slots, static, gated, zeros) -> tf.Tensor:
        if self.plain_product:
            if len(open_slots) < self.slots:     # a statically closed input zeroes the plain product
                return zeros
            return tf.reduce_prod(tf.stack([gated[i] for i in open_slots]), axis=0)
        if not open_slots:
            return zeros
        factors = [inputs[i] if static[i] else 1.0 + gates[i] * (inputs[i] - 1.0) for i in open_slots]
        product = tf.reduce_prod(tf.stack(factors), axis=0)
        dynamic = [gates[i] for i in open_slots if not static[i]]
        if not dynamic or len(dynamic) < len(open_slots):    # a statically open input: some gate is 1
            return product
        return tf.stop_gradient(tf.reduce_max(tf.stack(dynamic))) * product

    def get_config(self):
        return {**super().get_config(), "slots": self.slots, "width": self.width, "operations": self.operations,
                "plain_product": self.plain_product}


class OptFusionNetwork(tf_keras.layers.Layer):
    """x0 → the block graph → the output logit z = vᵀ·Fuse_{2L}(…) + v0, and every block's output.

    ``architecture`` None: the supernet (all blocks, all operations, learned gates and mixtures).
    ``batch_norm`` / ``dropout``: the Dense blocks' regularisation (:class:`DeepBlock`); block
    node n's dropout masks are seeded by ``seed``·1000 + n.
    """

    def __init__(self, layers: int, width: int, block_width: int, product: str, init_constant: float,
                 architecture: Optional[Architecture] = None, batch_norm: bool = False, dropout: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.width, self.product, self.init_constant = layers, width, product, init_constant
        self.architecture = architecture
        self.searching = architecture is None
        names, last = node_names(layers), output_node(layers)
        built = set(range(last + 1)) if self.searching else architecture.reachable()
        self.blocks = {}
        for node in sorted(built - {0, last}):
            name = names[node]
            self.blocks[name] = (DeepBlock(width, block_width, batch_norm, dropout, seed=seed * 1000 + node, name=name)
                                 if node % 2 and node > 1 else CrossV1Block(name=name))
        self.fusions = {}
        for r in fusion_destinations(layers):
            if r not in built:
                continue
            slots = len(sources(r, layers))
            if self.searching:
                self.fusions[names[r]] = FusionPoint(slots, width, OPERATIONS, plain_product=product == "authors",
                                                     name=f"fuse_{names[r]}")
                continue
            op = architecture.operations[r]
            operations = OPERATIONS if isinstance(op, dict) else (op,)
            open_slots = tuple(i for i, k in enumerate(sources(r, layers)) if architecture.gate(r, k))
            # Soft re-train keeps the search's product; hard re-train multiplies the open inputs.
            plain = product == "authors" and architecture.mode == "soft"
            self.fusions[names[r]] = FusionPoint(slots, width, operations, plain_product=plain,
                                                 attention_slots=open_slots, name=f"fuse_{names[r]}")
        self.output_logit = torch_dense(1, width, dtype="float32", name="output_logit")

    def build(self, input_shape):
        if self.searching:
            nodes = output_node(self.num_layers) + 1
            self.connection_logits = self.add_weight(
                "connection_logits", shape=[nodes, nodes],
                initializer=tf_keras.initializers.Constant(self.init_constant))
            self.operation_logits = self.add_weight(
                "operation_logits", shape=[len(fusion_destinations(self.num_layers)), len(OPERATIONS)],
                initializer=tf_keras.initializers.RandomNormal(0.0, OPERATION_LOGIT_STDDEV))

    @property
    def architecture_variables(self) -> list[tf.Variable]:
        return [self.connection_logits, self.operation_logits] if self.searching else []

    def _gate(self, destination: int, source: int):
        if self.searching:
            return straight_through(self.connection_logits[destination, source])
        return self.architecture.gate(destination, source)

    def _weights(self, index: int, destination: int):
        if self.searching:
            return tf.nn.softmax(self.operation_logits[index])
        op = self.architecture.operations[destination]
        return op if isinstance(op, dict) else None

    def call(self, x0: tf.Tensor, training: Optional[bool] = None) -> tuple[tf.Tensor, dict]:
        names, last = node_names(self.num_layers), output_node(self.num_layers)
        nodes = {0: x0}
        if "C0" in self.blocks:
            nodes[1] = self.blocks["C0"](x0, tf.cast(self._gate(1, 0), x0.dtype) * x0)
        zeros = tf.zeros_like(x0)
        logit = None
        for index, r in enumerate(fusion_destinations(self.num_layers)):
            name = names[r]
            if name not in self.fusions:
                continue
            candidates = sources(r, self.num_layers)
            gates = [self._gate(r, k) for k in candidates]
            gates = [tf.cast(g, x0.dtype) if isinstance(g, tf.Tensor) else g for g in gates]
            u = self.fusions[name]([nodes.get(k, zeros) for k in candidates], gates, self._weights(index, r))
            if r == last:
                logit = tf.squeeze(self.output_logit(tf.cast(u, tf.float32)), axis=-1)
            elif r % 2:
                nodes[r] = self.blocks[name](u, training=training)
            else:
                nodes[r] = self.blocks[name](x0, u)
        return logit, {f"block/{names[n]}": v for n, v in nodes.items() if n > 0}

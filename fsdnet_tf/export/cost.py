"""Per-example compute of a served model: analytic multiply-adds and two graph-based checks.

``analytic_multiply_adds`` follows the architecture: dense layers in·out, cross v2 d0² per
layer, CIN Σ_k H_k·H_{k−1}·F·D, self-attention projections and scores, DAGFM's field mixing
and dense edge tensors (SPEC_WAVE2 §2.8), OptFusion's derived blocks and fusion operations;
embedding lookups, batch norm and element-wise work are left out.
``graph_multiply_adds`` traces the served output at batch 1 and adds up the MatMul,
BatchMatMul and Einsum ops the output depends on, from their static shapes;
``profiler_multiply_adds`` is TF's own profiler (it counts MatMul only, not BatchMatMul or Einsum).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

CONTRACTIONS = ("MatMul", "BatchMatMulV2", "BatchMatMul", "Einsum")


def _dense_sizes(layer) -> int:
    return int(sum(np.prod(v.shape) for v in layer.trainable_weights if v.shape.rank == 2))


def _tower_multiply_adds(model) -> int:
    cfg, tower = model.cfg, model.explicit_tower
    fields, dim = len(model.fields), cfg.embedding_dim
    if tower is None:
        return 0
    kind = cfg.tower_kind
    if kind in ("cross_v2", "mlp"):
        return _dense_sizes(tower)
    if kind == "cross_v1":
        return cfg.cross_layers * fields * dim
    if kind == "cin":
        widths = (fields,) + tuple(cfg.cin.units)
        return sum(h * prev * fields * dim for prev, h in zip(widths, widths[1:]))
    a = cfg.attention
    widths = (dim,) + (a.dim,) * a.layers
    # Q, K, V per layer; the residual projection only where the width changes.
    projections = sum((3 + (d_in != a.dim)) * fields * d_in * a.dim for d_in in widths[:-1])
    return projections + a.layers * 2 * fields * fields * a.dim


def analytic_multiply_adds(model, output: str = "prediction") -> int:
    """Multiply-adds per example of what ``output`` reads (embedding lookups excluded)."""
    if model.cfg.type == "kd_dagfm":
        d = model.cfg.dagfm
        fields, dim = len(model.fields), model.cfg.embedding_dim
        # h^(0) = C·E (F²·D) on top of SPEC_WAVE2 §2.8's interaction figure, which leaves it out.
        total = model.interaction_multiply_adds() + fields * fields * dim
        readout = (model.deep, model.deep_logit) if d.deep else (model.dagfm.readout,)
        return total + sum(_dense_sizes(layer) for layer in readout)
    if model.cfg.type == "optfusion":
        # Built derived, the network holds only what the output reads: every matrix is one contraction
        # (a cross block's wᵀu included), the concat kernel over all its slots, closed ones as zeros.
        return _dense_sizes(model.network)
    total = _tower_multiply_adds(model) + _dense_sizes(model.deep)
    for attribute in ("branch_inputs", "linear_head", "explicit_logit", "deep_logit", "dfm"):
        if hasattr(model, attribute):
            total += _dense_sizes(getattr(model, attribute))
    if getattr(model, "auxiliary_heads", False):
        total += _dense_sizes(model.easy_head) + _dense_sizes(model.hard_head)
    heads = list(zip(model.fusions, model.heads))
    if output == "teacher_head":
        heads = heads[-1:]
    return total + sum(_dense_sizes(fusion) + _dense_sizes(head) for fusion, head in heads)


def _einsum_multiply_adds(op) -> int:
    equation = op.get_attr("equation").decode()
    inputs, _ = equation.split("->")
    sizes = {}
    for letters, tensor in zip(inputs.split(","), op.inputs):
        for letter, size in zip(letters, tensor.shape.as_list()):
            sizes[letter] = size
    return int(np.prod([s for s in sizes.values()]))


def _op_multiply_adds(op) -> int:
    if op.type == "Einsum":
        return _einsum_multiply_adds(op)
    a, b = (t.shape.as_list() for t in op.inputs[:2])
    transpose_a = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    m, k = (a[-1], a[-2]) if transpose_a else (a[-2], a[-1])
    n = b[-2] if op.get_attr("transpose_b" if op.type == "MatMul" else "adj_y") else b[-1]
    return int(np.prod(a[:-2] or [1]) * m * k * n)


def _needed_ops(graph_outputs) -> list:
    seen, stack = set(), [t.op for t in graph_outputs]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph_outputs[0].graph.get_operations() if op.name in seen]


def traced_output(model, output: str = "prediction"):
    """The served output from transformed features at batch 1, as a concrete function."""
    spec = {f: tf.TensorSpec([1], tf.int64) for f in model.fields}

    @tf.function(input_signature=[spec])
    def serve(features):
        out = model.named_outputs(features, training=False)
        return out.prediction if output == "prediction" else out.alternatives[output]
    return serve.get_concrete_function()


def graph_multiply_adds(model, output: str = "prediction") -> int:
    concrete = traced_output(model, output)
    ops = _needed_ops(concrete.outputs)
    unknown = [op.name for op in ops if op.type in CONTRACTIONS and any(
        None in t.shape.as_list() for t in op.inputs[:2])]
    if unknown:
        raise ValueError(f"contractions without static shapes: {unknown[:3]}")
    return sum(_op_multiply_adds(op) for op in ops if op.type in CONTRACTIONS)


def profiler_multiply_adds(model, output: str = "prediction") -> int:
    """TF's profiler float ops of the traced output over 2, counting MatMul ops only."""
    from tensorflow.python.profiler import model_analyzer, option_builder
    graph = traced_output(model, output).graph
    options = (option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
               .with_empty_output().account_displayed_op_only(False).build())
    options["account_type_regexes"] = ["^MatMul$"]
    return int(model_analyzer.profile(graph, options=options).total_float_ops // 2)

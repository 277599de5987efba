"""OptFusion units (SPEC_WAVE2 §6.3): gates, cross v1 block, fusion operations, the block graph,
derive, parameter counts and the derived network's inheritance."""
import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf.config import ConfigError, load_config
from fsdnet_tf.layers.optfusion import CrossV1Block, FusionPoint, straight_through
from fsdnet_tf.models.architecture import (OPERATIONS, Architecture, derive, given_architecture, output_node,
                                           parallel_architecture, used_gates)

OPTFUSION = ["model.type=optfusion"]


def optfusion_config(*overrides):
    return load_config("synthetic", OPTFUSION + list(overrides)).model


def build(fields=("a",), dim=2, architecture=None, *overrides):
    from fsdnet_tf.models.optfusion import build_optfusion
    cfg = optfusion_config(f"model.embedding_dim={dim}", *overrides)
    return build_optfusion(cfg, fields, {f: 7 for f in fields}, seed=3, architecture=architecture)


def dense_parameters(model) -> int:
    skip = {id(v) for v in model.embedding.trainable_variables + model.architecture_variables}
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables if id(v) not in skip)


def test_straight_through_gate_values_and_gradient():
    logits = tf.Variable([-0.1, 0.0, 0.3])
    upstream = tf.constant([2.0, -3.0, 5.0])
    with tf.GradientTape() as tape:
        gates = straight_through(logits)
        loss = tf.reduce_sum(gates * upstream)
    np.testing.assert_array_equal(gates.numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(loss, logits).numpy(), upstream.numpy())


def test_cross_v1_block_hand_example():
    block = CrossV1Block()
    x0, u = tf.constant([[1.0, 2.0]]), tf.constant([[3.0, 4.0]])
    block(x0, u)
    block.kernel.assign([[0.5], [-1.0]])
    block.bias.assign([0.1, 0.1])
    np.testing.assert_allclose(block(x0, u).numpy(), [[0.6, -0.9]], rtol=1e-6)


def golden_fusion(plain_product=False, operations=OPERATIONS):
    """d0 = 2, concat kernel [I; I] with bias 0, attention MLPs zero (att = Σ x_i / d0)."""
    fusion = FusionPoint(2, 2, operations, plain_product=plain_product)
    x = [tf.constant([[1.0, 2.0]]), tf.constant([[3.0, 4.0]])]
    fusion(x, [tf.constant(1.0), tf.constant(1.0)], tf.zeros([4]) if len(operations) > 1 else None)
    if "concat" in operations:
        fusion.concat.kernel.assign(np.vstack([np.eye(2), np.eye(2)]))
        fusion.concat.bias.assign([0.0, 0.0])
    for slot in getattr(fusion, "attention", {}).values():
        for v in slot.weights:
            v.assign(tf.zeros_like(v))
    return fusion, x


def one_hot(op):
    return tf.one_hot(OPERATIONS.index(op), len(OPERATIONS))


@pytest.mark.parametrize("op, expected", [("add", [4, 6]), ("prod", [3, 8]), ("concat", [4, 6]), ("att", [2, 3])])
def test_each_operation_and_a_one_hot_mixture_equals_it(op, expected):
    fusion, x = golden_fusion()
    both = [tf.constant(1.0), tf.constant(1.0)]
    np.testing.assert_allclose(fusion(x, both, one_hot(op)).numpy(), [expected], rtol=1e-6)
    alone = golden_fusion(operations=(op,))[0]
    np.testing.assert_allclose(alone(x, both).numpy(), [expected], rtol=1e-6)


def test_uniform_mixture_and_a_gated_off_input_under_both_products():
    open_, closed = [tf.constant(1.0), tf.constant(1.0)], [tf.constant(1.0), tf.constant(0.0)]
    uniform = tf.nn.softmax(tf.zeros([4]))
    fusion, x = golden_fusion()
    np.testing.assert_allclose(fusion(x, open_, uniform).numpy(), [[3.25, 5.75]], rtol=1e-6)
    np.testing.assert_allclose(fusion(x, closed, uniform).numpy(), [[0.875, 1.75]], rtol=1e-6)
    authors, x = golden_fusion(plain_product=True)
    np.testing.assert_allclose(authors(x, closed, one_hot("prod")).numpy(), [[0.0, 0.0]])
    np.testing.assert_allclose(authors(x, closed, uniform).numpy(), [[0.625, 1.25]], rtol=1e-6)


def test_constant_gates_of_a_derived_point_equal_the_searched_gates():
    fusion, x = golden_fusion()
    weights = {op: w for op, w in zip(OPERATIONS, (0.1, 0.2, 0.3, 0.4))}
    searched = fusion(x, [tf.constant(0.0), tf.constant(1.0)], tf.constant(list(weights.values())))
    np.testing.assert_allclose(fusion(x, [0, 1], weights).numpy(), searched.numpy(), rtol=1e-6)


def test_concat_with_stacked_identities_equals_add():
    fusion, x = golden_fusion(operations=("concat",))
    add = golden_fusion(operations=("add",))[0]
    for gates in ([1, 1], [1, 0], [0, 1]):
        np.testing.assert_allclose(fusion(x, gates).numpy(), add(x, gates).numpy(), rtol=1e-6)


def test_supernet_dense_parameters():
    small = build(("a",), 2)
    assert dense_parameters(small) == 99 * 2 ** 2 + 51 * 2 + 1 == 499
    frappe = build(tuple(f"f{i}" for i in range(10)), 16)
    assert dense_parameters(frappe) == 2_542_561
    assert len(used_gates(3)) == 33 and len(small.architecture_variables) == 2


def test_parallel_wiring_with_add_equals_a_hand_built_parallel_dcn():
    model = build(("a", "b"), 2, parallel_architecture(3, 4, "add"))
    features = {"a": tf.constant([1, 4, 6]), "b": tf.constant([0, 2, 5])}
    for v in model.embedding.trainable_variables:     # embeddings large enough to exercise every block
        v.assign(tf.random.stateless_normal(v.shape, [1, 2]))
    x0 = model.embedding(features).numpy()
    blocks = model.network.blocks

    def cross(name, u):
        return x0 * (u @ blocks[name].kernel.numpy()) + blocks[name].bias.numpy() + u

    def dense(name, u):
        layer = blocks[name].dense
        return np.maximum(u @ layer.kernel.numpy() + layer.bias.numpy(), 0.0)

    c = cross("C0", x0)
    for name in ("c1", "c2", "c3"):
        c = cross(name, c)
    d = x0
    for name in ("d1", "d2", "d3"):
        d = dense(name, d)
    head = model.network.output_logit
    expected = (c + d) @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(model.named_outputs(features).logits["final"].numpy(), expected[:, 0], rtol=1e-5)
    assert set(blocks) == {"C0", "c1", "c2", "c3", "d1", "d2", "d3"}
    assert not model.architecture_variables


def test_derive_is_deterministic_and_round_trips():
    rng = np.random.default_rng(5)
    a, phi = rng.normal(size=(9, 9)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
    for mode in ("hard", "soft", "add"):
        first, second = derive(a, phi, 3, 160, mode, "filtered"), derive(a.copy(), phi.copy(), 3, 160, mode, "filtered")
        assert first.to_json() == second.to_json()
        assert Architecture.from_json(first.to_json()) == first
    hard = derive(a, phi, 3, 160, "hard", "filtered")
    assert hard.open_gates == {(r, k) for r, k in used_gates(3) if a[r, k] > 0}
    assert [hard.operations[r] for r in range(2, 9)] == [OPERATIONS[i] for i in np.argmax(phi, axis=1)]


def test_a_malformed_architecture_is_refused_with_the_file_named():
    data = parallel_architecture(3, 4).to_json()
    data["gates"].pop("C0<-x0")
    with pytest.raises(ConfigError, match="arch.json: gates"):
        Architecture.from_json(data, "arch.json")
    data = parallel_architecture(3, 4).to_json()
    data["operations"]["c1"] = "max"
    with pytest.raises(ConfigError, match="'max' of c1"):
        Architecture.from_json(data, "arch.json")


def test_unreachable_blocks_and_unchosen_operations_are_not_built():
    arch = parallel_architecture(3, 4, "concat")
    gates = set(arch.open_gates) - {(8, 7)} | {(8, 3)}      # the output reads c3 and d1: d2, d3 unreachable
    arch = Architecture(3, 4, "hard", "filtered", frozenset(gates), arch.operations)
    model = build(("a", "b"), 2, arch)
    assert set(model.network.blocks) == {"C0", "c1", "c2", "c3", "d1"}
    assert set(model.network.fusions) == {"c1", "c2", "c3", "d1", "output"}
    assert all(not hasattr(f, "attention") for f in model.network.fusions.values())
    assert arch.reachable() == {0, 1, 2, 3, 4, 6, 8}


@pytest.mark.parametrize("blocks", [(), ("model.optfusion.batch_norm=true", "model.optfusion.dropout=0.5")],
                         ids=["authors", "regularised"])
def test_the_derived_network_inherits_every_weight_and_soft_reproduces_the_supernet(tmp_path, blocks):
    supernet = build(("a", "b"), 2, None, *blocks)
    rng = np.random.default_rng(0)
    network = supernet.network
    network.connection_logits.assign(rng.normal(size=(9, 9)).astype(np.float32))
    features = {"a": tf.constant([1, 4, 6]), "b": tf.constant([0, 2, 5])}
    for v in supernet.embedding.trainable_variables:
        v.assign(tf.random.stateless_normal(v.shape, [3, 4]))
    path = tf.train.Checkpoint(model=supernet).write(str(tmp_path / "ckpt"))
    a, phi = network.connection_logits.numpy(), network.operation_logits.numpy()
    for mode in ("soft", "hard"):
        arch = derive(a, phi, 3, 4, mode, "filtered")
        derived = build(("a", "b"), 2, arch, *blocks)
        tf.train.Checkpoint(model=derived).read(path).expect_partial().assert_existing_objects_matched()
        by_path = {v.name.split("/", 1)[1]: v.numpy() for v in supernet.variables}
        for v in derived.variables:
            np.testing.assert_array_equal(v.numpy(), by_path[v.name.split("/", 1)[1]], err_msg=v.name)
        assert not derived.architecture_variables
    soft = build(("a", "b"), 2, derive(a, phi, 3, 4, "soft", "filtered"), *blocks)
    tf.train.Checkpoint(model=soft).read(path).expect_partial()
    np.testing.assert_allclose(soft.named_outputs(features).logits["final"].numpy(),
                               supernet.named_outputs(features).logits["final"].numpy(), rtol=1e-5, atol=1e-6)


def test_regularised_deep_block_hand_values_and_training_mode():
    from fsdnet_tf.layers.optfusion import DeepBlock
    block = DeepBlock(2, 2, batch_norm=True, dropout=0.5, seed=11)
    u = tf.constant([[1.0, -2.0], [0.5, 3.0]])
    block(u)
    block.dense.kernel.assign([[1.0, -1.0], [2.0, 0.5]])
    block.dense.bias.assign([0.5, 0.0])
    block.normalise.moving_mean.assign([1.0, -1.0])
    block.normalise.moving_variance.assign([4.0, 1.0])
    # inference: ReLU((W·u + β − mean) / √(var + ε)), no dropout
    dense = u.numpy() @ np.array([[1.0, -1.0], [2.0, 0.5]]) + [0.5, 0.0]
    expected = np.maximum((dense - [1.0, -1.0]) / np.sqrt(np.array([4.0, 1.0]) + 1e-5), 0.0)
    np.testing.assert_allclose(block(u, training=False).numpy(), expected, rtol=1e-5)
    # training: batch statistics, and each unit is 0 or twice its ReLU value under dropout 0.5
    trained = block(u, training=True).numpy()
    mean, var = dense.mean(0), dense.var(0)
    relu = np.maximum((dense - mean) / np.sqrt(var + 1e-5), 0.0)
    assert np.all(np.isclose(trained, 0.0, atol=1e-6) | np.isclose(trained, 2 * relu, rtol=1e-4))
    np.testing.assert_allclose(block.normalise.moving_mean.numpy(), 0.9 * np.array([1.0, -1.0]) + 0.1 * mean,
                               rtol=1e-5)


def test_the_model_passes_training_to_the_deep_blocks():
    model = build(("a", "b"), 2, None, "model.optfusion.batch_norm=true", "model.optfusion.dropout=0.5")
    features = {"a": tf.constant([1, 4, 6, 2]), "b": tf.constant([0, 2, 5, 1])}
    moving = model.network.blocks["d1"].normalise.moving_mean
    before = moving.numpy().copy()
    inference = model.named_outputs(features, training=False).logits["final"].numpy()
    np.testing.assert_array_equal(model.named_outputs(features).logits["final"].numpy(), inference)
    assert not np.array_equal(model.named_outputs(features, training=True).logits["final"].numpy(), inference)
    assert not np.array_equal(moving.numpy(), before)
    with pytest.raises(ConfigError, match="model.optfusion.dropout"):
        optfusion_config("model.optfusion.dropout=1.0")


def test_block_width_contract():
    with pytest.raises(ConfigError, match="model.optfusion.block_width: 5 differs from d0 = 4"):
        build(("a", "b"), 2, None, "model.optfusion.block_width=5")
    projected = build(("a", "b"), 2, None, "model.optfusion.block_width=5", "model.optfusion.width_adapter=project")
    assert projected.network.blocks["d1"].adapter is not None
    assert projected({"a": tf.constant([1]), "b": tf.constant([2])}).shape == [1]
    assert build(("a", "b"), 2, None, "model.optfusion.block_width=4").network.blocks["d1"].adapter is None


def test_config_checks_name_the_key():
    with pytest.raises(ConfigError, match="model.optfusion: not used by model.type=fsdnet"):
        load_config("synthetic", ["model.optfusion.mode=soft"])
    with pytest.raises(ConfigError, match="model.optfusion.held_out_fraction"):
        optfusion_config("model.optfusion.held_out_fraction=0.7")
    with pytest.raises(ConfigError, match="model.optfusion.mode"):
        optfusion_config("model.optfusion.mode=sparse")
    with pytest.raises(ConfigError, match="model.cin: not used by model.type=optfusion"):
        optfusion_config("model.cin.units=[4]")


def test_retrain_init_follows_the_search_and_a_given_architecture_has_none():
    assert optfusion_config().optfusion.retrain_init == "inherit"
    given = optfusion_config("model.optfusion.architecture=parallel").optfusion
    assert (given.retrain_init, given.lr_decay) == ("reinit", 1.0)
    with pytest.raises(ConfigError, match="model.optfusion.retrain_init: inherit needs a search"):
        optfusion_config("model.optfusion.architecture=parallel", "model.optfusion.retrain_init=inherit")
    with pytest.raises(ConfigError, match="model.optfusion.search_run: a given model.optfusion.architecture"):
        optfusion_config("model.optfusion.architecture=parallel", "model.optfusion.search_run=/tmp")
    for key in ("lr_decay", "retrain_lr_decay"):
        for bad in ("0", "1.5"):
            with pytest.raises(ConfigError, match=f"model.optfusion.{key}: {bad}"):
                optfusion_config(f"model.optfusion.{key}={bad}")


def test_a_given_architecture_is_a_pattern_or_a_file_of_the_same_space(tmp_path):
    parallel = given_architecture("parallel", 3, 32)
    assert parallel.open_gates == parallel_architecture(3, 32).open_gates
    assert parallel.operations[output_node(3)] == "concat" and parallel.operations[2] == "add"
    # Every block of the parallel pattern is reachable: C0 → c1 → c2 → c3 and x0 → d1 → d2 → d3.
    assert parallel.reachable() == set(range(output_node(3) + 1))
    derive(np.full((9, 9), -1.0), np.zeros((7, 4)), 3, 32, "hard", "filtered").write(tmp_path / "closed.json")
    assert given_architecture(str(tmp_path / "closed.json"), 3, 32).open_gates == frozenset()
    with pytest.raises(ConfigError, match="model.optfusion.architecture: .* has 3 layers of width 32, this config 2"):
        given_architecture(str(tmp_path / "closed.json"), 2, 32)
    with pytest.raises(ConfigError, match="model.optfusion.architecture: 'stacked' is neither a pattern"):
        given_architecture("stacked", 3, 32)


@pytest.mark.parametrize("operation", ["concat", "att", "prod"])
def test_analytic_multiply_adds_of_a_derived_network_equal_its_graph(operation):
    from fsdnet_tf.export.cost import analytic_multiply_adds, graph_multiply_adds
    arch = parallel_architecture(3, 4, operation)
    arch = Architecture(3, 4, "hard", "filtered", arch.open_gates | {(8, 0), (6, 1)}, arch.operations)
    model = build(("a", "b"), 2, arch)
    assert analytic_multiply_adds(model) == graph_multiply_adds(model) > 0

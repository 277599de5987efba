"""TF4CTR: twin-focus loss golden values, SSEM, DFM, presets (SPEC_WAVE2 §1, §6.1)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf import losses
from fsdnet_tf.config import ConfigError, load_config
from fsdnet_tf.layers.branch_inputs import MMoEBranches, ScalarGate
from fsdnet_tf.layers.dynamic_fusion import DynamicFusion
from fsdnet_tf.models import ModelOutputs, build_model, count_parameters
from fsdnet_tf.presets import Term, objective

FRAPPE_VOCAB = {"user": 942, "item": 4084, "daytime": 9, "weekday": 9, "isweekend": 4, "homework": 5, "cost": 4,
                "weather": 11, "country": 82, "city": 233}


def logit(p):
    return math.log(p / (1 - p))


def tf_part(y, p_easy, p_hard, c, gamma, alpha):
    labels = tf.constant([float(y)])
    easy = float(losses.twin_focus_easy(labels, tf.constant([logit(p_easy)]), c, gamma)[0])
    hard = float(losses.twin_focus_hard(labels, tf.constant([logit(p_hard)]), c, gamma)[0])
    return easy, hard, alpha * easy + (1 - alpha) * hard


@pytest.mark.parametrize("case, expected", [
    ((1, 0.5, 0.5, 0.8, 2, 0.25), (1.171419, 0.339642, 0.547586)),
    ((1, 0.9, 0.2, 0.8, 2, 0.25), (0.304492, 1.609438, 1.283201)),
    ((0, 0.9, 0.2, 0.7, 1, 0.25), (1.842068, 0.111572, 0.544196)),
])
def test_twin_focus_hand_computed(case, expected):
    np.testing.assert_allclose(tf_part(*case), expected, rtol=1e-5)


def test_gamma_zero_is_weighted_bce_in_value_and_gradient():
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    z = tf.Variable([2.0, -1.0, -3.0, 4.0])
    with tf.GradientTape(persistent=True) as tape:
        focus = 0.3 * losses.twin_focus_easy(y, z, 0.7, 0.0) + 0.7 * losses.twin_focus_hard(y, z, 0.7, 0.0)
        bce = losses.binary_cross_entropy(y, z)
    np.testing.assert_allclose(focus.numpy(), bce.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(focus, z).numpy(), tape.gradient(bce, z).numpy(), rtol=1e-6)


def test_c_one_makes_the_hard_term_focal_loss_and_factors_are_monotone():
    y = tf.ones([5])
    z = tf.constant([-3.0, -1.0, 0.0, 1.0, 3.0])
    p = tf.sigmoid(z).numpy()
    bce = losses.binary_cross_entropy(y, z).numpy()
    np.testing.assert_allclose(losses.twin_focus_hard(y, z, 1.0, 2.0).numpy(), (1 - p) ** 2 * bce, rtol=1e-5)
    for c in (0.0, 0.4, 1.0):       # p_t rises along z: the easy factor rises, the hard one falls
        easy = losses.twin_focus_easy(y, z, c, 2.0).numpy() / bce
        hard = losses.twin_focus_hard(y, z, c, 2.0).numpy() / bce
        assert np.all(np.diff(easy) > 0) and np.all(np.diff(hard) < 0)


def test_twin_focus_is_finite_for_huge_logits():
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    z = tf.Variable([80.0, -80.0, -80.0, 80.0])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(losses.twin_focus_easy(y, z, 0.0, 0.5) + losses.twin_focus_hard(y, z, 1.0, 0.5))
    assert np.isfinite(float(total)) and np.all(np.isfinite(tape.gradient(total, z).numpy()))


def test_twin_heads_with_gamma_zero_is_bce_plus_weighted_branch_bce():
    cfg = load_config("frappe", ["model.type=tf4ctr", "model.tf4ctr.gamma=0", "model.tf4ctr.alpha=0.3"]).model
    y = tf.constant([1.0, 0.0, 1.0])
    z = {"final": tf.constant([0.2, -0.4, 1.0]), "easy": tf.constant([1.5, 0.3, -0.2]), "hard": tf.constant([-1.0, -2.0, 0.5])}
    total = float(losses.Objective(objective(cfg))(y, ModelOutputs(z, {}, None, {})).total)
    mean_bce = {k: float(tf.reduce_mean(losses.binary_cross_entropy(y, v))) for k, v in z.items()}
    assert total == pytest.approx(mean_bce["final"] + 0.3 * mean_bce["easy"] + 0.7 * mean_bce["hard"], rel=1e-6)
    assert [t.describe() for t in objective(cfg)][1:] == ["0.3·focus_easy(easy, c=0.7, γ=0)",
                                                           "0.7·focus_hard(hard, c=0.7, γ=0)"]


def test_scalar_gate_partitions_x0_and_mmoe_gates_sum_to_one():
    x0 = tf.random.stateless_normal([6, 12], seed=[3, 4])
    easy, hard = ScalarGate(12, 0.0, True, seed=1)(x0, training=False)
    np.testing.assert_allclose((easy + hard).numpy(), x0.numpy(), rtol=1e-6, atol=1e-6)
    mmoe = MMoEBranches(12, 0.0, True, seed=1)
    out_easy, out_hard = mmoe(x0, training=False)
    assert out_easy.shape == out_hard.shape == (6, 12)
    for hidden, gate in zip(mmoe.gate_hidden, mmoe.gates):
        rows = tf.nn.softmax(gate(hidden(x0, training=False)[-1]), axis=-1).numpy().sum(axis=1)
        np.testing.assert_allclose(rows, 1.0, rtol=1e-6)


def test_separate_tables_shapes_and_odd_width_is_a_config_error():
    cfg = load_config("frappe", ["model.type=tf4ctr"]).model
    model = build_model(cfg, tuple(FRAPPE_VOCAB), FRAPPE_VOCAB)
    features = {f: tf.constant([0, 1, 2]) for f in FRAPPE_VOCAB}
    easy, hard = model._branch_views(features, training=False)
    assert easy.shape == (3, 80) and hard.shape == (3, 160)
    assert count_parameters(model) == 711_996                      # SPEC_WAVE2 §6.5
    with pytest.raises(ConfigError, match="model.embedding_dim: 15 is odd"):
        load_config("frappe", ["model.type=tf4ctr", "model.embedding_dim=15"])


@pytest.mark.parametrize("overrides, message", [
    (["model.tf4ctr.c=1.2"], r"model.tf4ctr.c: 1.2 is outside \[0, 1\]"),
    (["model.tf4ctr.c=-0.1"], "model.tf4ctr.c"),
    (["model.tf4ctr.gamma=-1"], "model.tf4ctr.gamma"),
    (["model.tf4ctr.dfm=mean"], "model.tf4ctr.dfm: 'mean' is not one of"),
    (["model.tf4ctr.ssem=routing"], "model.tf4ctr.ssem: 'routing' is not one of"),
])
def test_tf4ctr_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("frappe", ["model.type=tf4ctr"] + overrides)
    with pytest.raises(ConfigError, match="model.tf4ctr: not used by model.type=fsdnet"):
        load_config("frappe", ["model.tf4ctr={c: 0.5}"])


def branches(batch=5, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.normal(size=(batch, 6)), tf.float32), tf.constant(rng.normal(size=(batch, 4)), tf.float32),
            tf.constant(rng.normal(size=batch), tf.float32), tf.constant(rng.normal(size=batch), tf.float32))


def test_weighted_sum_fusion_starts_at_the_mean_and_cf_moef_ignore_branch_logits():
    h_e, h_h, z_e, z_h = branches()
    np.testing.assert_allclose(DynamicFusion("wsf")((h_e, h_h, z_e, z_h)).numpy(), (0.5 * (z_e + z_h)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(DynamicFusion("sum")((h_e, h_h, z_e, z_h)).numpy(), (z_e + z_h).numpy(), rtol=1e-6)
    for kind in ("cf", "moef"):
        fusion = DynamicFusion(kind)
        np.testing.assert_array_equal(fusion((h_e, h_h, z_e, z_h)).numpy(), fusion((h_e, h_h, z_e + 5, None)).numpy())


def test_gumbel_fusion_is_deterministic_at_inference_only():
    fusion = DynamicFusion("vf", seed=4)
    inputs = branches()
    first, second = fusion(inputs, training=False), fusion(inputs, training=False)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert not np.array_equal(fusion(inputs, training=True).numpy(), fusion(inputs, training=True).numpy())


PERMUTATION = [3, 0, 4, 1, 2]


@pytest.mark.parametrize("kind", ["sum", "wsf", "cf", "moef", "vf"])
def test_dynamic_fusion_is_batch_permutation_equivariant(kind):
    fusion = DynamicFusion(kind)
    inputs = branches()
    direct = fusion(inputs, training=False).numpy()
    permuted = fusion(tuple(tf.gather(t, PERMUTATION) for t in inputs), training=False).numpy()
    np.testing.assert_allclose(permuted, direct[PERMUTATION], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_type, overrides", [
    ("tf4ctr", ["model.tf4ctr.ssem=shared"]), ("tf4ctr", []), ("tf4ctr", ["model.tf4ctr.ssem=scalar_gate"]),
    ("tf4ctr", ["model.tf4ctr.ssem=mmoe", "model.tf4ctr.dfm=moef"]), ("tf4ctr_dcnv2", []), ("tf4ctr_fsd", [])])
def test_every_branch_is_batch_permutation_equivariant(model_type, overrides):
    vocab = {"a": 7, "b": 5, "c": 11}
    cfg = load_config("frappe", [f"model.type={model_type}", "model.deep_units=[16,16,16]",
                                 "model.tf4ctr.easy_units=[16,16,16]", "model.embedding_dim=4"] + overrides).model
    model = build_model(cfg, tuple(vocab), vocab)
    for table in model.embedding.tables + getattr(model, "easy_embedding", model.embedding).tables:
        table.embeddings.assign(tf.random.stateless_normal(table.embeddings.shape, seed=[1, 2]))
    rng = np.random.default_rng(1)
    features = {f: tf.constant(rng.integers(0, n, 5)) for f, n in vocab.items()}
    direct = model.named_outputs(features, training=False).logits
    permuted = model.named_outputs({f: tf.gather(v, PERMUTATION) for f, v in features.items()}, training=False).logits
    assert set(direct) >= {"easy", "hard"}
    for name in direct:
        np.testing.assert_allclose(permuted[name].numpy(), direct[name].numpy()[PERMUTATION], rtol=1e-5, atol=1e-6)


def test_serving_build_leaves_out_auxiliary_heads_only_where_the_fusion_ignores_them():
    for dfm, pruned in (("wsf", False), ("vf", False), ("cf", True), ("moef", True)):
        cfg = load_config("frappe", ["model.type=tf4ctr", f"model.tf4ctr.dfm={dfm}"]).model
        served = build_model(cfg, tuple(FRAPPE_VOCAB), FRAPPE_VOCAB, for_serving=True)
        assert (not any("easy_head" in v.name for v in served.variables)) == pruned, dfm
    fsd = build_model(load_config("frappe", ["model.type=tf4ctr_fsd"]).model, tuple(FRAPPE_VOCAB), FRAPPE_VOCAB,
                      for_serving=True)
    assert not any("easy_head" in v.name or "hard_head" in v.name for v in fsd.variables)
    assert Term("focus_easy", 0.25, ("easy",)).teacher is None


def test_cf_export_holds_no_auxiliary_head_and_matches_the_trained_model(synthetic_transform, tmp_path):
    from fsdnet_tf.export import export_run
    from fsdnet_tf.training import Trainer
    cfg = load_config("synthetic", ["model.type=tf4ctr", "model.tf4ctr.dfm=cf", "model.tf4ctr.easy_units=[16]",
                                    "model.deep_units=[32,32,32]", "dataset.synthetic.rows=20000",
                                    "train.max_epochs=1", "train.max_steps_per_epoch=3"])
    Trainer(cfg, str(synthetic_transform), str(tmp_path / "run"), progress_bar=False).run()
    out = export_run(str(tmp_path / "run"), str(tmp_path / "models"), "tf4ctr")
    assert out["verification"]["examples_vs_in_memory"] <= 1e-6
    names = [v.name for v in tf.saved_model.load(out["path"]).model.variables]
    assert any("combine" in n for n in names)
    assert not any("easy_head" in n or "hard_head" in n or "Adam" in n for n in names), names

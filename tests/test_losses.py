"""Golden tests of the SPEC §2 losses against numpy and hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf import losses
from fsdnet_tf.config import ModelConfig
from fsdnet_tf.models import ModelOutputs
from fsdnet_tf.presets import Term, objective

ZT = np.array([2.0, -1.0, 0.5, -3.0], np.float32)
ZS = np.array([0.5, -2.0, 1.5, 1.0], np.float32)
Y = np.array([1.0, 0.0, 1.0, 0.0], np.float32)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def test_bce_matches_numpy():
    p = sigmoid(ZS)
    expected = -(Y * np.log(p) + (1 - Y) * np.log(1 - p))
    np.testing.assert_allclose(losses.binary_cross_entropy(tf.constant(Y), tf.constant(ZS)).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 1.3, 1.8])
def test_bernoulli_kl_matches_numpy(temperature):
    qt, qs = sigmoid(ZT / temperature), sigmoid(ZS / temperature)
    expected = qt * np.log(qt / qs) + (1 - qt) * np.log((1 - qt) / (1 - qs))
    got = losses.bernoulli_kl(tf.constant(ZT), tf.constant(ZS), temperature).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert (got >= 0).all()


def test_bernoulli_kl_hand_value():
    # teacher z=0 → q=0.5; student z=ln 3 → q=0.75: 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(4/3)
    got = losses.bernoulli_kl(tf.constant([0.0]), tf.constant([np.log(3.0)], tf.float32), 1.0).numpy()[0]
    assert got == pytest.approx(0.5 * np.log(4 / 3), rel=1e-5)


def test_kl_is_zero_when_student_equals_teacher_and_stable_for_large_logits():
    z = tf.constant([-80.0, -5.0, 0.0, 7.0, 80.0])
    np.testing.assert_allclose(losses.bernoulli_kl(z, z, 1.3).numpy(), 0.0, atol=1e-7)
    big = losses.bernoulli_kl(tf.constant([80.0]), tf.constant([-80.0]), 1.0).numpy()
    assert np.isfinite(big).all() and big[0] == pytest.approx(80.0, rel=1e-4)   # log(1/σ(−80))


def test_reference_variant_reproduces_the_authors_formula_and_is_not_a_divergence():
    T = 1.0
    qt, qs = sigmoid(ZT / T), sigmoid(ZS / T)
    nt, ns = sigmoid(1 - ZT / T), sigmoid(1 - ZS / T)
    expected = qt * np.log(qt / qs) + nt * np.log(nt / ns)
    got = losses.reference_kd(tf.constant(ZT), tf.constant(ZS), T).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # zero at equality, but negative elsewhere and not minimised at z_l = z_L
    z = tf.constant([0.0])
    assert losses.reference_kd(z, z, T).numpy()[0] == pytest.approx(0.0, abs=1e-7)
    grid = np.linspace(-2, 2, 401).astype(np.float32)
    values = losses.reference_kd(tf.fill([401], 0.0), tf.constant(grid), T).numpy()
    assert values.min() < 0 and abs(grid[values.argmin()]) > 0.1


def test_hint_is_mean_squared_difference():
    a = tf.constant([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = tf.constant([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(losses.hint_mse(a, b).numpy(), [(0 + 4 + 9) / 3, 1.0])


def _task_inputs():
    logits = [tf.Variable(ZS), tf.Variable(ZS * 0.5), tf.Variable(ZT)]
    fused = [tf.Variable(np.full((4, 3), v, np.float32)) for v in (0.0, 1.0, 3.0)]
    return logits, fused


def named(logits, fused) -> ModelOutputs:
    return ModelOutputs({f"head_{i}": z for i, z in enumerate(logits)},
                        {f"fused/{i}": f for i, f in enumerate(fused)}, prediction=None, alternatives={})


def fsd_objective(**model) -> losses.Objective:
    return losses.Objective(objective(ModelConfig(deep_units=(8, 8, 8), **model)))


@pytest.mark.parametrize("distill", ["full", "no_soft_labels", "no_hint"])
def test_objective_combines_terms_as_specified(distill):
    logits, fused = _task_inputs()
    task = fsd_objective(alpha=0.9, temperature=1.3, beta=0.01, distill=distill)
    values = task(tf.constant(Y), named(logits, fused))
    bce = sum(float(tf.reduce_mean(losses.binary_cross_entropy(tf.constant(Y), z))) for z in logits)
    kl = sum(float(tf.reduce_mean(losses.bernoulli_kl(logits[2], z, 1.3))) for z in logits[:2])
    hint = (3.0 - 0.0) ** 2 + (3.0 - 1.0) ** 2
    expected = {"full": 0.9 * bce + 0.1 * kl + 0.01 * hint, "no_soft_labels": bce + 0.01 * hint,
                "no_hint": 0.9 * bce + 0.1 * kl}[distill]
    assert float(values.total) == pytest.approx(expected, rel=1e-5)
    assert float(values.logged["hint"]) == pytest.approx(hint)
    assert float(values.logged["kl"]) == pytest.approx(kl, rel=1e-5)
    assert set(values.as_dict()) == {"loss", "bce", "kl", "hint", "bce_head_0", "bce_head_1", "bce_head_2"}


def test_gradient_reaches_the_teacher_unless_detached():
    for detach in (False, True):
        logits, fused = _task_inputs()
        task = fsd_objective(alpha=0.5, distill="full", detach_teacher=detach)
        with tf.GradientTape() as tape:
            values = task(tf.constant(Y), named(logits, fused)).logged
            distillation = values["kl"] + values["hint"]          # the parts the teacher may not receive
        teacher_logit_grad, teacher_fused_grad = tape.gradient(distillation, [logits[2], fused[2]])
        if detach:
            assert teacher_logit_grad is None and teacher_fused_grad is None
        else:
            assert float(tf.reduce_max(tf.abs(teacher_logit_grad))) > 0
            assert float(tf.reduce_max(tf.abs(teacher_fused_grad))) > 0


def test_single_head_and_baseline_losses():
    z = {"head_0": tf.constant(ZS)}
    bce = float(tf.reduce_mean(losses.binary_cross_entropy(tf.constant(Y), z["head_0"])))
    single = losses.Objective(objective(ModelConfig(alpha=0.3, cross_layers=1, deep_units=(8,))))
    assert float(single(tf.constant(Y), ModelOutputs(z, {}, None, {})).total) == pytest.approx(0.3 * bce)
    baseline = losses.Objective.from_config(ModelConfig(type="dcnv2", alpha=0.3))
    final = ModelOutputs({"final": z["head_0"]}, {}, None, {})
    assert float(baseline(tf.constant(Y), final).total) == pytest.approx(bce)


def test_global_batch_size_averaging():
    task = losses.Objective((Term("bce", 1.0, ("final",)),))
    whole = float(task(tf.constant(Y), ModelOutputs({"final": tf.constant(ZS)}, {}, None, {})).total)
    halves = sum(float(task(tf.constant(Y[i:i + 2]), ModelOutputs({"final": tf.constant(ZS[i:i + 2])}, {}, None, {}),
                            global_batch_size=4).total) for i in (0, 2))
    assert halves == pytest.approx(whole, rel=1e-6)


def test_a_term_naming_an_output_the_model_lacks_is_a_clear_error():
    task = losses.Objective((Term("kl", 0.5, ("head_0",), teacher="head_9"),))
    with pytest.raises(KeyError, match="reads 'head_9', which the model does not output"):
        task(tf.constant(Y), ModelOutputs({"head_0": tf.constant(ZS)}, {}, None, {}))
    with pytest.raises(ValueError, match="needs a teacher"):
        Term("hint", 1.0, ("fused/0",))

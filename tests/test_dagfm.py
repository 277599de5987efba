"""DAGFM student: SPEC_WAVE2 §6.2 hand values, the DAG mask, homogeneity, init and parameter counts."""
import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf.config import load_config
from fsdnet_tf.layers.dagfm import DAGFM, dag_mask, interaction_multiply_adds

E = np.array([[[1.0, 2.0], [3.0, -1.0]]], np.float32)      # e_0 = (1, 2), e_1 = (3, −1)


def hand_layer(kind: str, depth: int) -> DAGFM:
    layer = DAGFM(kind, depth)
    layer(tf.constant(E))
    for w in layer.p + layer.q:
        w.assign(tf.ones_like(w))
    layer.readout.kernel.assign(tf.ones_like(layer.readout.kernel))
    layer.readout.bias.assign(tf.zeros_like(layer.readout.bias))
    return layer


@pytest.mark.parametrize("kind, depth, sums, logit", [
    ("inner", 1, [(3, 2), (5, 11)], 21.0),
    ("inner", 2, [(3, 2), (5, 11), (9, 36)], 66.0),
    ("outer", 1, [(3, 2), (9, 10)], 24.0),
    ("outer", 2, [(3, 2), (9, 10), (27, 38)], 89.0),
])
def test_hand_example(kind, depth, sums, logit):
    layer = hand_layer(kind, depth)
    z, states = layer(tf.constant(E))
    np.testing.assert_allclose([r.numpy()[0] for r in layer.layer_sums(states)], sums, rtol=1e-6)
    np.testing.assert_allclose(z.numpy(), [logit], rtol=1e-6)


def test_the_mask_is_the_upper_triangle_with_self_loops():
    np.testing.assert_array_equal(dag_mask(3), [[1, 1, 1], [0, 1, 1], [0, 0, 1]])


@pytest.mark.parametrize("kind", ["inner", "outer"])
def test_edges_against_the_dag_change_nothing_and_get_zero_gradient(kind):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 5, 3)).astype(np.float32))
    layer = DAGFM(kind, 2)
    before = layer(x)[0].numpy()
    below = np.tril(np.ones((5, 5), bool), k=-1)       # f > s
    with tf.GradientTape() as tape:
        z = layer(x)[0]
    grads = tape.gradient(z, layer.p)
    for p, g in zip(layer.p, grads):
        assert np.all(g.numpy()[below] == 0.0)
        p.assign(tf.where(below[:, :, None], p + 10.0, p))
    np.testing.assert_array_equal(layer(x)[0].numpy(), before)


def test_layer_t_is_homogeneous_of_degree_t_plus_1():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    layer = DAGFM("outer", 2)
    layer(tf.constant(x))
    r1 = layer.layer_sums(layer.states(tf.constant(x)))
    r2 = layer.layer_sums(layer.states(tf.constant(2 * x)))
    for t, (a, b) in enumerate(zip(r1, r2)):
        np.testing.assert_allclose(b.numpy(), 2.0 ** (t + 1) * a.numpy(), rtol=1e-5)


@pytest.mark.parametrize("kind, parameters", [("outer", 9_741), ("inner", 4_941)])
def test_frappe_sized_parameter_count_and_init(kind, parameters):
    tf.keras.utils.set_random_seed(3)
    layer = DAGFM(kind, 3)
    layer(tf.zeros([1, 10, 16]))
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == parameters
    np.testing.assert_array_equal(layer.connect.numpy(), np.eye(10))
    edges = np.concatenate([w.numpy().ravel() for w in layer.p + layer.q])
    assert abs(edges.std() / (1.414 / np.sqrt(160)) - 1) < 0.05
    bound = 1 / np.sqrt(40)
    assert np.all(np.abs(layer.readout.kernel.numpy()) <= bound) and abs(float(layer.readout.bias[0])) <= bound
    assert interaction_multiply_adds(kind, 3, 10, 16) == (2 if kind == "outer" else 1) * 4800


def test_float32_under_mixed_precision():
    from fsdnet_tf.training import devices
    devices.set_precision(True)
    try:
        z, states = DAGFM("outer", 2)(tf.constant(E, tf.float16))
        assert z.dtype == tf.float32 and states[-1].dtype == tf.float32
    finally:
        devices.set_precision(False)


def test_student_model_parameter_count_and_config():
    from fsdnet_tf.models.student import build_student
    from tests.test_zoo import FRAPPE_VOCAB
    cfg = load_config("frappe", ["model.type=kd_dagfm"]).model
    student = build_student(cfg, tuple(FRAPPE_VOCAB), FRAPPE_VOCAB)
    assert len(student.student_variables) == 9 and student.head_names == ("student",)
    assert sum(int(np.prod(v.shape)) for v in student.student_variables) == 9_741
    assert student.interaction_multiply_adds() == 9_600

"""The plug-in explicit towers on hand-sized inputs (SPEC_WAVE2 §6.4)."""
import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf.layers import CINTower, CrossV1Stack, SelfAttentionTower

E2 = np.array([[[1.0, 2.0], [3.0, -1.0]]], np.float32)     # one sample, fields e_0 = (1, 2), e_1 = (3, −1)


def test_cross_v1_hand_computed():
    stack = CrossV1Stack(2)
    x0 = tf.constant([[1.0, 2.0]])
    stack(x0)
    stack.kernels[0].assign([[0.5], [-1.0]])
    stack.biases[0].assign([0.1, 0.1])
    stack.kernels[1].assign([[1.0], [1.0]])
    stack.biases[1].assign([0.0, 0.0])
    x1, x2 = stack(x0)
    np.testing.assert_allclose(x1.numpy(), [[-0.4, -0.9]], rtol=1e-6)
    np.testing.assert_allclose(x2.numpy(), [[-1.7, -3.5]], rtol=1e-6)


def test_cross_v1_init_and_parameters():
    stack = CrossV1Stack(3)
    stack(tf.zeros([2, 160]))
    assert sum(int(np.prod(v.shape)) for v in stack.trainable_variables) == 3 * 2 * 160
    kernel = stack.kernels[0].numpy()
    assert np.std(kernel) == pytest.approx(np.sqrt(2.0 / 161), rel=0.15) and not stack.biases[0].numpy().any()


def cin_with(units, kernels, biases=None):
    tower = CINTower(units)
    tower(tf.constant(E2))
    for k, layer in enumerate(tower.maps):
        layer.kernel.assign(kernels[k])
        layer.bias.assign(biases[k] if biases else np.zeros(units[k], np.float32))
    return tower


def test_cin_hand_computed():
    # channels f·H_{k-1} + m: layer 1 has F·F = 4 inputs, layer 2 F·H_1 = 2.
    ones = cin_with((1, 1), [np.ones([4, 1], np.float32), np.ones([2, 1], np.float32)])
    p1, p2 = ones(tf.constant(E2))
    assert float(p1[0, 0]) == pytest.approx(17.0) and float(p2[0, 0]) == pytest.approx(65.0)   # X¹ = (16, 1), X² = (64, 1)
    biased = cin_with((1,), [np.ones([4, 1], np.float32)], [np.array([0.5], np.float32)])
    assert float(biased(tf.constant(E2))[0][0, 0]) == pytest.approx(18.0)                 # + D·c
    only = np.zeros([4, 1], np.float32)
    only[1, 0] = 1.0                                                                     # W¹[0, f=0, m=1]
    assert float(cin_with((1,), [only])(tf.constant(E2))[0][0, 0]) == pytest.approx(1.0)   # e_0 ⊙ e_1 = (3, −2)


def test_cin_shapes_and_parameters():
    tower = CINTower((64, 64, 64))
    pooled = tower(tf.zeros([3, 10, 16]))
    assert [p.shape for p in pooled] == [(3, 64)] * 3
    assert tower.summary(pooled).shape == (3, 192)
    assert sum(int(np.prod(v.shape)) for v in tower.trainable_variables) == 88_512


def attention_with(stacked, dim, heads, weights, residual=None):
    tower = SelfAttentionTower(1, dim, heads)
    tower(tf.constant(stacked))
    for variable in tower.projections[0]:
        variable.assign(weights)
    if residual is not None:
        tower.residuals[0].assign(residual)
    return tower(tf.constant(stacked))[0].numpy().ravel()


def test_self_attention_hand_computed():
    identity = np.eye(2, dtype=np.float32)[None]
    np.testing.assert_allclose(attention_with(identity, 2, 1, np.eye(2, dtype=np.float32)),
                               [1.7310586, 0.2689414, 0.2689414, 1.7310586], rtol=1e-6)
    tower = SelfAttentionTower(1, 2, 1)
    tower(tf.constant(identity))
    query, key, value = tower.projections[0]
    query.assign(np.eye(2))
    key.assign(np.eye(2))
    value.assign(-np.eye(2))
    np.testing.assert_allclose(tower(tf.constant(identity))[0].numpy().ravel(), [0.2689414, 0, 0, 0.2689414],
                               rtol=1e-6, atol=1e-7)
    # two heads of width 1: heads are split from the last axis and concatenated back in order
    np.testing.assert_allclose(attention_with(E2, 2, 2, np.eye(2, dtype=np.float32)),
                               [3.7615942, 3.9925821, 5.9950548, 0.0], rtol=1e-6)
    doubled = np.concatenate([np.eye(2), np.eye(2)], axis=1).astype(np.float32)        # [I, I], 2 → 4
    np.testing.assert_allclose(attention_with(identity, 4, 1, doubled, residual=doubled),
                               [1.8807971, 0.1192029, 1.8807971, 0.1192029,
                                0.1192029, 1.8807971, 0.1192029, 1.8807971], rtol=1e-6)


def test_self_attention_shapes_parameters_and_dropout_modes():
    tower = SelfAttentionTower(3, 128, 2, attention_dropout=0.5, seed=3)
    x = tf.random.stateless_normal([4, 10, 16], seed=[1, 2])
    outputs = tower(x, training=False)
    assert [o.shape for o in outputs] == [(4, 1280)] * 3
    assert sum(int(np.prod(v.shape)) for v in tower.trainable_variables) == 106_496
    np.testing.assert_array_equal(tower(x, training=False)[-1].numpy(), outputs[-1].numpy())
    assert not np.array_equal(tower(x, training=True)[-1].numpy(), outputs[-1].numpy())


@pytest.mark.parametrize("tower", [CrossV1Stack(2), CINTower((4, 4)), SelfAttentionTower(2, 4, 2)])
def test_towers_are_batch_permutation_equivariant(tower):
    rng = np.random.default_rng(0)
    stacked = rng.normal(size=(5, 3, 4)).astype(np.float32)
    x = tf.constant(stacked.reshape(5, 12) if tower.input_view == "flat" else stacked)
    permutation = [3, 0, 4, 1, 2]
    direct = [o.numpy() for o in tower(x)]
    permuted = [o.numpy() for o in tower(tf.gather(x, permutation))]
    for a, b in zip(direct, permuted, strict=True):
        np.testing.assert_allclose(b, a[permutation], rtol=1e-5, atol=1e-6)

"""FlatBatchNorm: Keras' BatchNormalization on (B, H), trained through the fused kernel."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from fsdnet_tf.layers.batch_norm import FlatBatchNorm

WEIGHTS = [np.array([1.5, 0.5, 2.0, 1.0]), np.array([0.2, -0.1, 0.0, 0.3]),      # gamma, beta
           np.array([0.3, -1.0, 0.0, 2.0]), np.array([2.0, 0.5, 1.0, 4.0])]     # moving mean, variance


def pair(momentum=0.9):
    layers = (tf_keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-5),
              FlatBatchNorm(momentum=momentum, epsilon=1e-5))
    for layer in layers:
        layer(tf.zeros([2, 4]))
        layer.set_weights([w.astype(np.float32) for w in WEIGHTS])
    return layers


def train_once(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.constant([1.0, -2.0, 0.5, 3.0])) + tf.reduce_sum(tf.square(y)) / 10
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return y.numpy(), [g.numpy() for g in grads], layer.moving_mean.numpy(), layer.moving_variance.numpy()


@pytest.mark.parametrize("examples", [1, 2, 9, 500])
def test_training_matches_keras_in_output_gradients_and_moving_statistics(examples):
    x = tf.constant(np.random.default_rng(examples).normal(1.0, 3.0, size=(examples, 4)).astype(np.float32))
    keras, flat = pair()
    (y_k, g_k, mean_k, var_k), (y_f, g_f, mean_f, var_f) = train_once(keras, x), train_once(flat, x)
    assert np.all(np.isfinite(y_f)) and all(np.all(np.isfinite(g)) for g in g_f)
    # One example: x − mean is 0 up to rounding, which 1/√ε amplifies.
    np.testing.assert_allclose(y_f, y_k, rtol=1e-5, atol=1e-4 if examples == 1 else 1e-5)
    for mine, keras_grad in zip(g_f, g_k, strict=True):
        np.testing.assert_allclose(mine, keras_grad, rtol=1e-4, atol=1e-4)
    # the biased batch variance averaged in with momentum 0.9, as Keras does (1 example: variance 0)
    batch = x.numpy()
    np.testing.assert_allclose(mean_f, 0.9 * WEIGHTS[2] + 0.1 * batch.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var_f, 0.9 * WEIGHTS[3] + 0.1 * batch.var(0), rtol=1e-5)
    np.testing.assert_allclose(var_f, var_k, rtol=1e-5)


def test_inference_is_keras_own_and_checkpoints_are_interchangeable(tmp_path):
    keras, flat = pair()
    x = tf.random.normal([5, 4])
    np.testing.assert_array_equal(flat(x, training=False).numpy(), keras(x, training=False).numpy())
    path = tf.train.Checkpoint(bn=keras).write(str(tmp_path / "keras_bn"))
    restored = FlatBatchNorm()
    restored(tf.zeros([1, 4]))
    tf.train.Checkpoint(bn=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(restored.moving_variance.numpy(), WEIGHTS[3].astype(np.float32))


def graph_op_types(layer, x, jit_compile=False) -> set:
    step = tf.function(lambda x: tf.gradients(tf.reduce_sum(layer(x, training=True)), x), jit_compile=jit_compile)
    return {op.type for op in step.get_concrete_function(x).graph.get_operations()}


def test_training_runs_one_fused_kernel_and_its_gradient():
    """The fast path is taken: no element-wise moments (Keras' unfused ops), the fused op and its gradient."""
    keras, flat = pair()
    x = tf.TensorSpec([None, 4], tf.float32)
    ops = graph_op_types(flat, x)
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops and "SquaredDifference" not in ops
    assert "SquaredDifference" in graph_op_types(keras, x)


def test_trains_under_xla_and_in_float16():
    _, flat = pair()
    x = tf.random.normal([6, 4])
    eager = flat(x, training=True).numpy()
    flat.set_weights([w.astype(np.float32) for w in WEIGHTS])
    compiled = tf.function(lambda x: flat(x, training=True), jit_compile=True)(x).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-4)
    # under XLA, Keras' element-wise ops (XLA fuses them; its lowering of the fused kernel is slow)
    xla_ops = graph_op_types(flat, tf.TensorSpec([None, 4], tf.float32), jit_compile=True)
    assert "FusedBatchNormV3" not in xla_ops and "SquaredDifference" in xla_ops
    mixed = FlatBatchNorm(momentum=0.9, epsilon=1e-5, dtype="mixed_float16")     # as under mixed precision
    mixed(tf.zeros([2, 4]))
    mixed.set_weights([w.astype(np.float32) for w in WEIGHTS])
    half = mixed(x, training=True)
    assert half.dtype == tf.float16 and mixed.moving_mean.dtype == tf.float32
    assert "FusedBatchNormV3" in graph_op_types(mixed, tf.TensorSpec([None, 4], tf.float32))
    np.testing.assert_allclose(half.numpy().astype(np.float32), eager, rtol=1e-2, atol=1e-2)

"""The step's cheaper formulations equal the plain ones: 16-bit dropout masks, heads and the
hint on a fused vector's parts (never concatenated)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from fsdnet_tf import losses
from fsdnet_tf.layers import Fusion
from fsdnet_tf.layers.fusion import PartsLogit, concatenate
from fsdnet_tf.layers.towers import MASK_LEVELS, CountedDropout, keep_threshold, stateless_dropout_16bit
from fsdnet_tf.models import ModelOutputs

SEED = tf.constant([3, 11], tf.int64)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.7])
def test_16bit_dropout_keeps_its_exact_share_unbiased(rate):
    x = tf.ones([1000, 400])
    y = stateless_dropout_16bit(x, rate, SEED).numpy()
    kept = keep_threshold(rate) / MASK_LEVELS
    assert abs(kept - (1 - rate)) <= 2 ** -17
    assert set(np.unique(y)) == {0.0, np.float32(1 / kept)}
    # 400,000 Bernoulli draws: the kept share is within 5 standard deviations of its probability.
    assert abs((y > 0).mean() - kept) < 5 * np.sqrt(kept * (1 - kept) / y.size)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt((1 - kept) / kept / y.size)


def test_16bit_dropout_is_a_function_of_the_seed_for_any_shape():
    x = tf.reshape(tf.range(1, 3 * 5 * 7 + 1, dtype=tf.float32), [3, 5, 7])     # odd size: half a word unused
    first, again = (stateless_dropout_16bit(x, 0.5, SEED).numpy() for _ in range(2))
    other = stateless_dropout_16bit(x, 0.5, SEED + 1).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.shape == (3, 5, 7) and not np.array_equal(first, other)
    kept = first != 0
    np.testing.assert_allclose(first[kept], x.numpy()[kept] * MASK_LEVELS / keep_threshold(0.5))
    half = stateless_dropout_16bit(tf.cast(x, tf.float16), 0.5, SEED)
    assert half.dtype == tf.float16
    np.testing.assert_array_equal(half.numpy() != 0, kept)


def test_16bit_dropout_gradient_is_the_mask_times_the_scale():
    x = tf.Variable(tf.random.normal([64, 32], seed=1))
    with tf.GradientTape() as tape:
        y = stateless_dropout_16bit(x, 0.3, SEED)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_allclose(grad, (y.numpy() != 0) * MASK_LEVELS / keep_threshold(0.3))


def test_counted_dropout_rejects_a_rate_of_one():
    with pytest.raises(ValueError, match="not in"):
        CountedDropout(1.0, seed=0)


@pytest.mark.parametrize("kind", ["concat", "hadamard", "add", "attention", "none"])
def test_head_on_parts_equals_dense_on_the_concatenation(kind):
    fusion = Fusion(kind, 4)
    c, h = tf.random.normal([5, 6], seed=2), tf.random.normal([5, 4], seed=3)
    parts = fusion.parts(c, h)
    fused = fusion(c, h)
    np.testing.assert_array_equal(concatenate(parts).numpy(), fused.numpy())
    head, dense = PartsLogit(name="head_0"), tf_keras.layers.Dense(1, name="head_0")
    head(parts), dense(fused)
    dense.set_weights([w.numpy() + 0.25 for w in head.weights])
    head.set_weights(dense.get_weights())
    np.testing.assert_allclose(head(parts).numpy(), dense(fused).numpy()[:, 0], rtol=1e-5, atol=1e-6)


def test_parts_head_checkpoints_as_a_dense_layer(tmp_path):
    """A checkpoint of a Dense(1) head (every run before this layer) restores into it, and back."""
    dense = tf_keras.layers.Dense(1)
    dense(tf.ones([1, 10]))
    path = tf.train.Checkpoint(head=dense).write(str(tmp_path / "dense"))
    head = PartsLogit()
    head((tf.ones([1, 4]), tf.ones([1, 6])))
    tf.train.Checkpoint(head=head).read(path).assert_consumed()
    np.testing.assert_array_equal(head.kernel.numpy(), dense.kernel.numpy())


def test_hint_on_parts_equals_hint_on_the_vectors_with_the_same_gradients():
    rng = np.random.default_rng(0)
    teacher = [tf.Variable(rng.normal(size=(4, w)).astype(np.float32)) for w in (3, 5)]
    student = [tf.Variable(rng.normal(size=(4, w)).astype(np.float32)) for w in (3, 5)]
    with tf.GradientTape(persistent=True) as tape:
        on_parts = losses.hint_mse(tuple(teacher), tuple(student))
        whole = losses.hint_mse(tf.concat(teacher, -1), tf.concat(student, -1))
    np.testing.assert_allclose(on_parts.numpy(), whole.numpy(), rtol=1e-6)
    for mine, theirs in zip(tape.gradient(on_parts, teacher + student), tape.gradient(whole, teacher + student)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6)
    # Parts of different widths on the two sides are compared as whole vectors.
    regrouped = (tf.concat(student, -1)[:, :4], tf.concat(student, -1)[:, 4:])
    np.testing.assert_allclose(losses.hint_mse(tuple(teacher), regrouped).numpy(), whole.numpy(), rtol=1e-6)


@pytest.mark.parametrize("shape", ["parts", "vectors", "regrouped"])
def test_summed_hint_equals_the_per_student_hints_with_the_same_gradients(shape):
    """The fused hint (one pass, hand-written gradient) is Σ over students and examples of hint_mse."""
    rng = np.random.default_rng(1)
    teacher = [tf.Variable(rng.normal(size=(6, w)).astype(np.float32)) for w in (3, 5)]
    students = [[tf.Variable(rng.normal(size=(6, w)).astype(np.float32)) for w in (3, 5)] for _ in range(2)]

    def view(parts):
        if shape == "vectors":
            return tf.concat(parts, -1)
        if shape == "regrouped" and parts is students[1]:      # other widths: compared as whole vectors
            whole = tf.concat(parts, -1)
            return (whole[:, :4], whole[:, 4:])
        return tuple(parts)
    variables = teacher + [v for s in students for v in s]
    with tf.GradientTape(persistent=True) as tape:
        fused = losses.summed_hint(view(teacher), [view(s) for s in students])
        reference = tf.add_n([tf.reduce_sum(losses.hint_mse(tf.concat(teacher, -1), tf.concat(s, -1)))
                              for s in students])
    assert float(fused) == pytest.approx(float(reference), rel=1e-6)
    for mine, theirs in zip(tape.gradient(fused, variables), tape.gradient(reference, variables), strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)
    with tf.GradientTape() as tape:      # a detached teacher gets no gradient, the students theirs
        detached = losses.summed_hint(tf.nest.map_structure(tf.stop_gradient, view(teacher)),
                                      [view(s) for s in students])
    grads = tape.gradient(detached, variables)
    assert all(g is None for g in grads[:2]) and all(g is not None for g in grads[2:])


def test_objective_reads_the_hint_from_the_parts():
    """With parts given, the hint never reads the concatenated vector (here a wrong one)."""
    from fsdnet_tf.config import ModelConfig
    from fsdnet_tf.presets import objective
    logits = {f"head_{i}": tf.constant([0.5, -1.0]) for i in range(3)}
    parts = {f"fused/{i}": (tf.fill([2, 2], float(i)), tf.fill([2, 3], float(i))) for i in range(3)}
    wrong = {name: tf.zeros([2, 5]) for name in parts}
    values = losses.Objective(objective(ModelConfig(deep_units=(8, 8, 8))))(
        tf.constant([1, 0]), ModelOutputs(logits, wrong, None, {}, parts))
    assert float(values.logged["hint"]) == pytest.approx((2.0 - 0.0) ** 2 + (2.0 - 1.0) ** 2)


@pytest.mark.parametrize("widths", [(3, 5), (7,)])
def test_parts_head_gradients_equal_autodiff_of_a_dense_layer(widths):
    """The hand-written gradient of every part, the kernel and the bias is autodiff's of Dense(1)."""
    rng = np.random.default_rng(1)
    parts = tuple(tf.constant(rng.normal(size=(6, w)).astype(np.float32)) for w in widths)
    upstream = tf.constant(rng.normal(size=(6,)).astype(np.float32))
    head, dense = PartsLogit(), tf_keras.layers.Dense(1)
    head(parts), dense(tf.concat(parts, -1))
    head.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in head.get_weights()])
    dense.set_weights(head.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(parts)
        mine = tf.reduce_sum(head(parts) * upstream)
        theirs = tf.reduce_sum(dense(tf.concat(parts, -1))[:, 0] * upstream)
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5)
    ours = tape.gradient(mine, [*parts, head.kernel, head.bias])
    reference = tape.gradient(theirs, [*parts, dense.kernel, dense.bias])
    for got, want in zip(ours, reference, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)

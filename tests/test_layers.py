"""Layers and the model: hand-computed values, shapes, config errors, save/restore parity."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from fsdnet_tf.config import ConfigError, ModelConfig, load_config
from fsdnet_tf.layers import CrossStack, DeepTower, FieldEmbedding, Fusion
from fsdnet_tf.models import build_model

FIELDS = ("a", "b", "c")
VOCAB = {"a": 7, "b": 5, "c": 11}


def features(batch=6, seed=0):
    rng = np.random.default_rng(seed)
    return {f: tf.constant(rng.integers(0, VOCAB[f], batch), tf.int32) for f in FIELDS}


def test_cross_stack_hand_computed_with_ones_weights():
    stack = CrossStack(2)
    x0 = tf.constant([[1.0, 2.0, 3.0]])
    stack(x0)
    for cross in stack.crosses:
        cross._dense.kernel.assign(tf.ones([3, 3]))
        cross._dense.bias.assign(tf.zeros([3]))
    c1, c2 = stack(x0)
    # c1 = x0 + x0 ⊙ (W x0) = [1,2,3] + [1,2,3]·6 ; c2 = c1 + x0 ⊙ (W c1) = c1 + [1,2,3]·42
    np.testing.assert_allclose(c1.numpy(), [[7.0, 14.0, 21.0]])
    np.testing.assert_allclose(c2.numpy(), [[49.0, 98.0, 147.0]])
    stack.crosses[0]._dense.bias.assign(tf.ones([3]))
    np.testing.assert_allclose(stack(x0)[0].numpy(), [[8.0, 16.0, 24.0]])


def test_cross_initialisers_follow_the_spec():
    stack = CrossStack(3)
    stack(tf.zeros([2, 160]))
    kernel = stack.crosses[0]._dense.kernel.numpy()
    assert np.std(kernel) == pytest.approx(np.sqrt(2.0 / 320), rel=0.05)   # Glorot normal, fan_avg
    assert not stack.crosses[0]._dense.bias.numpy().any()


def test_embedding_init_and_regulariser():
    emb = FieldEmbedding(FIELDS, VOCAB, 4, l2=0.1)
    out = emb(features())
    assert out.shape == (6, 12) and np.std(out.numpy()) < 1e-3
    total = sum(float(tf.reduce_sum(tf.square(t.embeddings))) for t in emb.tables)
    assert float(tf.add_n(emb.losses)) == pytest.approx(0.05 * total, rel=1e-5)


def test_deep_tower_inference_mode_is_deterministic_and_training_drops():
    # Without batch norm both modes apply the same weights, so the zero fractions are comparable
    # (with it, inference uses the untrained moving statistics and any zero fraction can occur).
    tf_keras.utils.set_random_seed(0)
    tower = DeepTower((64, 64), dropout=0.5, batch_norm=False)
    x = tf.random.stateless_normal([256, 16], seed=[1, 2])
    a, b = tower(x, training=False), tower(x, training=False)
    np.testing.assert_array_equal(a[-1].numpy(), b[-1].numpy())
    assert len(a) == 2 and a[0].shape == (256, 64)
    # ReLU leaves about half the units at zero; dropout 0.5 zeroes about half of the rest.
    inference_zeros = (a[-1].numpy() == 0).mean()
    training_zeros = (tower(x, training=True)[-1].numpy() == 0).mean()
    assert 0.35 < inference_zeros < 0.65 and training_zeros > inference_zeros + 0.15
    bn = DeepTower((8, 8), dropout=0.5).blocks[0][1]
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


@pytest.mark.parametrize("kind, width", [("concat", 12), ("hadamard", 16), ("add", 16), ("attention", 12), ("none", 4)])
def test_fusion_widths(kind, width):
    fusion = Fusion(kind, 4)
    assert fusion(tf.ones([2, 8]), tf.ones([2, 4])).shape == (2, width)


def test_model_outputs_and_prediction_is_mean_of_head_probabilities():
    model = build_model(ModelConfig(deep_units=(16, 16, 16)), FIELDS, VOCAB)
    x = features()
    out = model.training_outputs(x, training=False)
    assert len(out.logits) == 3 and out.logits[0].shape == (6,)
    assert all(f.shape == (6, 3 * 16 + 16) for f in out.fused)
    expected = np.mean([tf.sigmoid(z).numpy() for z in out.logits], axis=0)
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-6)


def test_dcnv2_baseline_has_one_head_on_the_last_layer():
    model = build_model(ModelConfig(type="dcnv2", deep_units=(16, 16, 16)), FIELDS, VOCAB)
    out = model.training_outputs(features(), training=False)
    assert model.num_heads == 1 and len(out.logits) == 1 and out.fused[0].shape == (6, 64)
    assert not any("head_0" in v.name or "head_1" in v.name for v in model.trainable_variables)


def test_without_fusion_the_cross_network_is_dropped():
    model = build_model(ModelConfig(fusion="none", deep_units=(16, 16, 16)), FIELDS, VOCAB)
    assert model.cross is None and model.training_outputs(features()).fused[0].shape == (6, 16)


def test_unequal_layer_counts_are_a_config_error():
    with pytest.raises(ConfigError, match="model.deep_units: 2 deep layers but model.cross_layers is 3"):
        load_config("synthetic", ["model.deep_units=[16,16]"])


def test_checkpoint_save_restore_parity(tmp_path):
    cfg = ModelConfig(deep_units=(16, 16, 16))
    model = build_model(cfg, FIELDS, VOCAB)
    x = features(32)
    for layer in model.deep.blocks:   # make BN statistics non-trivial
        layer[1].moving_mean.assign(tf.random.normal(layer[1].moving_mean.shape))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    restored = build_model(cfg, FIELDS, VOCAB)
    tf.train.Checkpoint(model=restored).read(path).assert_existing_objects_matched()
    np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), atol=1e-7)


def test_saved_model_reload_parity(tmp_path):
    model = build_model(ModelConfig(deep_units=(16, 16, 16)), FIELDS, VOCAB)
    x = features(32)
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda feats: model(feats, training=False),
                               input_signature=[{f: tf.TensorSpec([None], tf.int32) for f in FIELDS}])
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(loaded.serve(x).numpy(), model(x).numpy(), atol=1e-7)
    assert tf_keras.__version__.startswith("2.")

import pytest

from fsdnet_tf.config import ConfigError, config_from_dict, load_config, shipped_config_names


def test_every_shipped_config_loads():
    assert set(shipped_config_names()) >= {"synthetic", "frappe", "criteo", "movielens1m", "mltag"}
    for name in shipped_config_names():
        load_config(name)


def test_frappe_uses_the_spec_hyperparameters():
    cfg = load_config("frappe")
    m, t = cfg.model, cfg.train
    assert (t.batch_size, m.embedding_l2, m.dropout, m.alpha, m.temperature, m.beta) == (10000, 0.1, 0.7, 0.9, 1.3, 0.01)
    assert (m.embedding_dim, m.deep_units, m.cross_layers, t.learning_rate, t.clip_norm, cfg.seed) == (
        16, (400, 400, 400), 3, 1e-3, 10.0, 2023)
    assert cfg.dataset.min_frequency == 2 and load_config("criteo").dataset.min_frequency == 10


@pytest.mark.parametrize("override, message", [
    ("model.alpah=0.3", "unknown key 'model.alpah'"),
    ("trian.batch_size=3", "unknown key 'trian'"),
    ("model.deep_units=[400,400]", "model.deep_units: 2 deep layers but model.cross_layers is 3"),
    ("model.deep_units=[400,200,400]", "widths [400, 200, 400] differ"),
    ("model.alpha=1.5", "model.alpha"),
    ("model.fusion=concatenate", "model.fusion: 'concatenate' is not one of"),
    ("train.batch_size=ten", "train.batch_size: expected an integer"),
    ("dataset.num_oov_buckets=0", "dataset.num_oov_buckets"),
    ("model.distill=none", "model.distill"),
])
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config("frappe", [override])


def test_overrides_are_applied_and_typed():
    cfg = load_config("frappe", ["model.type=dcnv2", "seed=7", "train.label_noise=0.1"])
    assert (cfg.model.type, cfg.seed, cfg.train.label_noise) == ("dcnv2", 7, 0.1)


def test_dataset_consistency_errors():
    base = {"name": "x", "format": "csv", "splits": {"files": {"train": "a", "valid": "b", "test": "c"}}}
    with pytest.raises(ConfigError, match="exactly one column must have kind label"):
        config_from_dict({"dataset": {**base, "columns": [{"name": "a", "kind": "categorical"}]}})
    with pytest.raises(ConfigError, match="column name 'a' appears twice"):
        config_from_dict({"dataset": {**base, "columns": [
            {"name": "y", "kind": "label"}, {"name": "a", "kind": "categorical"}, {"name": "a", "kind": "categorical"}]}})
    with pytest.raises(ConfigError, match="dataset.field_map: required"):
        config_from_dict({"dataset": {**base, "format": "libsvm", "columns": [
            {"name": "y", "kind": "label"}, {"name": "a", "kind": "categorical"}]}})
    with pytest.raises(ConfigError, match="unknown config 'nosuch'"):
        load_config("nosuch")


def test_execution_only_settings_do_not_make_another_experiment():
    from fsdnet_tf.config import same_experiment
    base = load_config("frappe")
    assert same_experiment(base, load_config("frappe", ["train.steps_per_execution=10"]))
    assert not same_experiment(base, load_config("frappe", ["train.batch_size=4096"]))


def test_scientific_notation_without_a_dot_is_a_number():
    cfg = load_config("frappe", ["train.learning_rate=1e-4", "model.type=kd_dagfm",
                                 "model.dagfm.finetune_learning_rate=2E-5"])
    assert cfg.train.learning_rate == 1e-4 and cfg.model.dagfm.finetune_learning_rate == 2e-5
    with pytest.raises(ConfigError, match="train.learning_rate: expected a number, got 'fast'"):
        load_config("frappe", ["train.learning_rate=fast"])


@pytest.mark.parametrize("overrides, message", [
    (["train.monitor={ndcg: 1}"], "train.monitor: .*'ndcg' is not a metric"),
    (["train.monitor={auc: 0}"], "train.monitor: weights of auc and/or gauc"),
    (["dataset.group_field=nobody"], "dataset.group_field: 'nobody' is not a feature column"),
])
def test_monitor_and_group_field_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("frappe", overrides)

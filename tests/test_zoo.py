"""Every model preset: Table 4 parameter counts, config errors, and train → export → reload."""
import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf.config import PARALLEL_TYPES, ConfigError, load_config
from fsdnet_tf.models import build_model, count_parameters

FRAPPE_VOCAB = {"user": 942, "item": 4084, "daytime": 9, "weekday": 9, "isweekend": 4, "homework": 5, "cost": 4,
                "weather": 11, "country": 82, "city": 233}          # V = 5,383 (SPEC_WAVE2 §6.5)
FRAPPE_PARAMETERS = {"dcnv2": 551_569, "fsdnet": 552_691, "dcn": 475_249, "dcn_fsd": 476_371,
                     "xdeepfm": 568_217, "xdeepfm_fsd": 563_635, "autoint": 587_289, "autoint_fsd": 585_267,
                     # SPEC_WAVE2 §6.5 for tf4ctr; by hand for ours: 16V + 8V + cross on d0/2 = 80
                     # (3·(80² + 80)) + deep 387,600 + easy head 81 + hard head 401 (+ wsf 2 | + 3 heads of 481)
                     "tf4ctr": 711_996, "tf4ctr_dcnv2": 536_716, "tf4ctr_fsd": 538_157}
SMALL = ["model.deep_units=[32,32,32]", "dataset.synthetic.rows=20000", "train.max_epochs=1",
         "train.max_steps_per_epoch=2"]
SMALL_TOWERS = {"xdeepfm": ["model.cin.units=[8,8,8]"], "xdeepfm_fsd": ["model.cin.units=[8,8,8]"],
                "autoint": ["model.attention.dim=8"], "autoint_fsd": ["model.attention.dim=8"],
                "tf4ctr": ["model.tf4ctr.easy_units=[32,32]"]}
PER_LAYER_HEADS = {"fsdnet", "dcn_fsd", "xdeepfm_fsd", "autoint_fsd", "tf4ctr_fsd"}
HEADS = {"tf4ctr": 3, "tf4ctr_dcnv2": 3, "tf4ctr_fsd": 5}


def test_every_preset_has_a_parameter_count():
    assert set(FRAPPE_PARAMETERS) == set(PARALLEL_TYPES)


@pytest.mark.parametrize("model_type", sorted(FRAPPE_PARAMETERS))
def test_frappe_parameter_counts_equal_spec(model_type):
    cfg = load_config("frappe", [f"model.type={model_type}"]).model
    model = build_model(cfg, tuple(FRAPPE_VOCAB), FRAPPE_VOCAB)
    assert count_parameters(model) == FRAPPE_PARAMETERS[model_type]


@pytest.mark.parametrize("overrides, message", [
    (["model.explicit_tower=cin2"], "model.explicit_tower: 'cin2' is not one of"),
    (["model.readout=heads"], "model.readout: 'heads' is not one of"),
    (["model.type=dcnv3"], "model.type: 'dcnv3' is not one of"),
    (["model.type=dcnv2", "model.attention={layers: 3}"], "model.attention: not used by model.type=dcnv2"),
    (["model.type=xdeepfm_fsd", "model.cin.units=[64,64]"], "model.cin.units: 2 CIN layers but 3 deep layers"),
    (["model.type=xdeepfm_fsd", "model.cin.units=[64,32,64]"], r"model.cin.units: widths \[64, 32, 64\] differ"),
    (["model.type=autoint_fsd", "model.attention.layers=2"], "model.attention.layers: 2 attention layers"),
    (["model.type=autoint", "model.attention.heads=3"], "model.attention.dim: 128 does not split into 3"),
    (["model.type=autoint", "model.attention.dim=ten"], "model.attention.dim: expected an integer"),
    (["model.type=autoint", "model.attention.width=8"], "unknown key 'model.attention.width'"),
    (["model.type=xdeepfm", "model.fusion=add"], "model.fusion: the sum_of_logits readout"),
    (["model.type=dcn", "model.projection_dim=8"], "model.projection_dim: only the cross_v2 tower"),
])
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("frappe", overrides)


def test_baselines_may_pair_towers_of_other_depths():
    cfg = load_config("frappe", ["model.type=xdeepfm", "model.cin.units=[32,16]"]).model
    assert cfg.num_layers == 2 and cfg.readout_kind == "sum_of_logits"


def test_an_explicit_tower_override_replaces_the_presets():
    cfg = load_config("frappe", ["model.explicit_tower=cin"]).model
    assert (cfg.type, cfg.tower_kind, cfg.readout_kind, cfg.cin.units) == ("fsdnet", "cin", "per_layer_heads", (64, 64, 64))


@pytest.mark.parametrize("model_type", sorted(FRAPPE_PARAMETERS))
def test_preset_trains_exports_and_serves_its_prediction(model_type, synthetic_transform, tmp_path):
    import tensorflow_transform as tft

    from fsdnet_tf.export import ServingModule, export_run
    from fsdnet_tf.features import PROBABILITY_OUTPUT, RAW_SIGNATURE
    from fsdnet_tf.export.saved_model import load_raw_sample, raw_tensors
    from fsdnet_tf.training import Trainer, restore_model
    cfg = load_config("synthetic", SMALL + [f"model.type={model_type}"] + SMALL_TOWERS.get(model_type, []))
    run_dir = tmp_path / "run"
    metrics = Trainer(cfg, str(synthetic_transform), str(run_dir), progress_bar=False).run()
    assert len(metrics["epochs"]) == 1 and metrics["parameters"] > 0
    assert len(metrics["test"]["heads"]) == HEADS.get(model_type, 3 if model_type in PER_LAYER_HEADS else 1)
    outputs = ["prediction", "teacher_head"] if model_type in PER_LAYER_HEADS else ["prediction"]
    _, _, transform = restore_model(run_dir)
    rows = load_raw_sample(transform)[:200]
    for output in outputs:
        out = export_run(str(run_dir), str(tmp_path / output), "zoo", output=output)
        assert out["verification"]["examples_vs_in_memory"] <= 1e-6
        assert out["parameters"] <= metrics["parameters"]           # auxiliary heads may be left out
        loaded = tf.saved_model.load(out["path"])
        served = loaded.signatures[RAW_SIGNATURE](**raw_tensors(rows, transform.contract))[PROBABILITY_OUTPUT].numpy()
        assert served.shape == (len(rows),) and np.all((served > 0) & (served < 1))
        if output == "prediction":     # the pruned serving model scores as the full trained one
            full, _, _ = restore_model(run_dir)
            module = ServingModule(full, tft.TFTransformOutput(str(transform.path)).transform_features_layer(),
                                   transform.contract)
            np.testing.assert_allclose(served, module.score_raw(raw_tensors(rows, transform.contract)).numpy(),
                                       atol=1e-6)


def test_an_output_the_model_does_not_serve_is_refused(trained_run, tmp_path):
    from fsdnet_tf.export import ExportError, export_run
    run_dir, _, _ = trained_run
    with pytest.raises(ExportError, match="--output 'student': model fsdnet serves prediction or teacher_head"):
        export_run(str(run_dir), str(tmp_path / "m"), "fsdnet", output="student")
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_print_config_shows_what_the_preset_builds(capsys):
    from fsdnet_tf.training.cli import main as train
    assert train(["--config", "frappe", "--set", "model.type=autoint_fsd", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "  attention:\n    layers: 3\n    dim: 128" in out
    for line in ("explicit_tower: self_attention", "readout: per_layer_heads", "0.1·kl(head_2 → head_0, head_1, T=1.3)",
                 "- teacher_head"):
        assert line in out, line
    assert train(["--config", "frappe", "--set", "model.explicit_tower=cin3", "--print-config"]) == 2
    assert "model.explicit_tower: 'cin3' is not one of" in capsys.readouterr().err

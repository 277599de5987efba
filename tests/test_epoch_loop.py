"""The epoch loop: in-graph row gathering and the tf.data iterator, one step per call or K, give the same epoch."""
import pytest

from fsdnet_tf.config import load_config

OVERRIDES = ["dataset.synthetic.rows=20000", "model.deep_units=[32,32,32]", "train.batch_size=1500"]


def one_epoch(transform, tmp_path, name, in_graph, steps_per_execution):
    from fsdnet_tf.training import Trainer
    cfg = load_config("synthetic", OVERRIDES + [f"train.steps_per_execution={steps_per_execution}"])
    trainer = Trainer(cfg, str(transform), str(tmp_path / name), progress_bar=False)
    trainer._prepare_run_dir()
    trainer._build()
    trainer.epoch_runner.in_graph_rows = in_graph
    seen = []
    sums, steps = trainer.epoch_runner.run(1, None, lambda done, last: seen.append(done))
    return {k: float(v) for k, v in sums.items()}, steps, seen


def test_in_graph_rows_equal_the_iterator_and_chunk_size_changes_nothing(synthetic_transform, tmp_path):
    reference = one_epoch(synthetic_transform, tmp_path, "iterator", in_graph=False, steps_per_execution=1)
    for name, in_graph, chunk in (("rows", True, 4), ("rows1", True, 1), ("iterator4", False, 4)):
        sums, steps, seen = one_epoch(synthetic_transform, tmp_path, name, in_graph, chunk)
        assert steps == reference[1] == 11            # 16,000 training rows in batches of 1,500: the last one short
        # progress every 5 steps one by one; after every chunk of K (the short batch is a chunk of its own)
        assert seen == ([5, 10, 11] if chunk == 1 else [4, 8, 10, 11] if in_graph else [4, 8, 11])
        assert sums.keys() == reference[0].keys()
        # Equal up to float noise: the same batches in the same order through the same step. (Weights
        # are no test: Adam turns the noise-only gradients of biases before batch norm into full steps.)
        for key, value in sums.items():
            assert value == pytest.approx(reference[0][key], rel=2e-6), (name, key)

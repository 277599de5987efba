"""The tf.Transform pipeline on small files the tests write, and on the real Criteo sample."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BEAM_ARGS, REPO, SHARED_DATA
from helpers import dead_letters, read_records, stats, vocabulary

from fsdnet_tf.config import load_config
from pipelines.transform import DataError, run_transform

CONFIG = """
dataset:
  name: tiny
  format: csv
  header: true
  columns:
    - {name: label, kind: label}
    - {name: a, kind: categorical}
    - {name: n, kind: integer}
  min_frequency: 2
  num_oov_buckets: 1
  splits: {files: {train: train.csv, valid: valid.csv, test: test.csv}}
"""
TRAIN = """label,a,n
1,x,3
0,x,1
1,x,100
0,y,
1,y,3
0,z,2
1,,-1
2,x,1
0,x,4.5
0,x
"""
VALID = "label,a,n\n1,w,0\n0,y,100\n"
TEST = "label,a,n\n0,x,1\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    data.mkdir()
    for name, text in (("train.csv", TRAIN), ("valid.csv", VALID), ("test.csv", TEST)):
        (data / name).write_text(text)
    (root / "tiny.yaml").write_text(CONFIG)
    cfg = load_config(str(root / "tiny.yaml"))
    out = root / "out"
    run_transform(cfg.dataset, str(data), str(out), BEAM_ARGS)
    return root, data, out, cfg


def test_criteo_integer_rule_golden():
    import tensorflow as tf

    from fsdnet_tf.data.preprocessing import criteo_integer_token
    raw = tf.constant(["-1", "0", "1", "2", "3", "100", "", "-7"])
    # v > 2 → floor((ln v)^2): ln 3 = 1.0986 → 1.207 → 1; ln 100 = 4.605 → 21.2 → 21
    assert criteo_integer_token(raw).numpy().tolist() == [b"-1", b"0", b"1", b"2", b"1", b"21", b"", b"-7"]


def test_vocabularies_use_threshold_and_train_only(tiny):
    _, _, out, _ = tiny
    # train a: x×3 (good rows), y×2, z×1, ''×1 → threshold 2 keeps x, y (most frequent first)
    assert vocabulary(out, "a") == ["x", "y"]
    # n tokens on good train rows: 3→1, 1, 100→21, missing, 3→1, 2, -1 → "1" three times only
    assert vocabulary(out, "n") == ["1"]


def test_encoded_rows_map_rare_unseen_and_empty_to_oov(tiny):
    _, _, out, _ = tiny
    oov = 2  # vocab a has 2 entries, one OOV bucket
    assert read_records(out, "train") == sorted([
        (0, 0, 1), (0, 0, 0), (0, 1, 1), (1, 1, 0), (1, 0, 1), (2, 1, 0), (oov, 1, 1)])
    assert read_records(out, "valid") == sorted([(oov, 1, 1), (1, 1, 0)])   # w unseen; 100 → 21 rare
    assert read_records(out, "test") == [(0, 0, 0)]


def test_dead_letters_keep_reasons_and_lines_and_stats_reconcile(tiny):
    _, _, out, _ = tiny
    rejected = dead_letters(out)
    assert sorted((r["split"], r["line"], r["reason"]) for r in rejected) == [
        ("train", "0,x", "expected 3 columns, found 2"),
        ("train", "0,x,4.5", "column n: '4.5' is not an integer"),
        ("train", "2,x,1", "label '2' is neither positive ['1'] nor negative ['0']")]
    s = stats(out)
    assert s["splits"]["train"] == {"read": 10, "written": 7, "rejected": 3}
    assert s["splits"]["valid"] == {"read": 2, "written": 2, "rejected": 0}
    for split in s["splits"].values():
        assert split["read"] == split["written"] + split["rejected"]
    assert s["vocab_size"] == {"a": 2, "n": 1}
    assert s["oov_rate"]["valid"]["a"] == 0.5 and math.isclose(s["oov_rate"]["train"]["a"], 2 / 7)
    assert s["seconds"] > 0 and s["rows_per_second"] > 0
    assert (out / "raw_metadata" / "schema.pbtxt").is_file() and (out / "transformed_metadata").is_dir()


def test_same_inputs_give_identical_outputs(tiny, tmp_path):
    _, data, out, cfg = tiny
    again = tmp_path / "again"
    run_transform(cfg.dataset, str(data), str(again), BEAM_ARGS)
    for field in ("a", "n"):
        assert (out / "transform_fn/assets" / f"vocab_{field}").read_bytes() == \
               (again / "transform_fn/assets" / f"vocab_{field}").read_bytes()
    for split in ("train", "valid", "test"):
        assert read_records(out, split) == read_records(again, split)


def test_input_problems_stop_with_a_clear_error_and_leave_nothing(tiny, tmp_path):
    _, data, _, cfg = tiny
    out = tmp_path / "out"
    with pytest.raises(DataError, match="valid.csv does not exist"):
        bad = tmp_path / "missing"
        bad.mkdir()
        (bad / "train.csv").write_text(TRAIN)
        run_transform(cfg.dataset, str(bad), str(out), BEAM_ARGS)
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("train.csv", "valid.csv", "test.csv"):
        (empty / name).write_text(TRAIN if name != "test.csv" else "")
    with pytest.raises(DataError, match="test.csv is empty"):
        run_transform(cfg.dataset, str(empty), str(out), BEAM_ARGS)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for name in ("train.csv", "valid.csv", "test.csv"):
        (wrong / name).write_text(TRAIN.replace("label,a,n", "label,b,n"))
    with pytest.raises(DataError, match="header .* does not match dataset.columns"):
        run_transform(cfg.dataset, str(wrong), str(out), BEAM_ARGS)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_data_that_does_not_match_the_config_fails_without_output(tmp_path):
    cfg = load_config("criteo")   # 40 tab-separated columns expected
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("".join(f"{i % 2},a,b\n" for i in range(200)))
    out = tmp_path / "out"
    with pytest.raises(DataError, match="rows of split train were rejected"):
        run_transform(cfg.dataset, str(data), str(out), BEAM_ARGS)
    assert list(tmp_path.iterdir()) == [data]   # no output, no temporary directory


def test_existing_output_is_not_overwritten_by_default(tiny):
    _, data, out, cfg = tiny
    with pytest.raises(DataError, match="already exists"):
        run_transform(cfg.dataset, str(data), str(out), BEAM_ARGS)


def test_cli_bad_config_key_is_one_line_and_nonzero(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.transform_cli", "--config", "frappe",
                           "--set", "dataset.min_frequncy=3", "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "fsdnet-transform: error: unknown key 'dataset.min_frequncy' (known keys: " + ", ".join(sorted(
            ["name", "format", "columns", "label", "header", "delimiter", "min_frequency", "num_oov_buckets",
             "splits", "field_map", "movielens", "synthetic", "group_field"])) + ")")


CRITEO = SHARED_DATA / "criteo_sample"


@pytest.mark.skipif(not (CRITEO / "train.txt").exists(), reason=f"{CRITEO} is absent")
def test_real_criteo_sample_matches_an_independent_pandas_encoding(tmp_path):
    import pandas as pd

    from pipelines.reading import split_of
    cfg = load_config("criteo")
    out = tmp_path / "criteo"
    s = run_transform(cfg.dataset, str(CRITEO), str(out), BEAM_ARGS)
    lines = (CRITEO / "train.txt").read_bytes().split(b"\n")
    lines = [line.rstrip(b"\r") for line in lines if line]
    assert sum(v["read"] for v in s["splits"].values()) == len(lines)
    frame = pd.DataFrame([line.decode().split("\t") for line in lines],
                         columns=["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)])
    frame["split"] = [("train", "valid", "test")[split_of(l, 2023, (0.8, 0.1, 0.1))] for l in lines]

    def integer_token(value: str) -> str:
        if value == "":
            return ""
        v = int(value)
        return str(int(np.floor(np.log(v) ** 2))) if v > 2 else str(v)

    fields = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    for f in fields[:13]:
        frame[f] = frame[f].map(integer_token)
    train = frame[frame.split == "train"]
    expected_rows = {split: [] for split in ("train", "valid", "test")}
    ids = {}
    for f in fields:
        counts = train[f][train[f] != ""].value_counts()
        kept = counts[counts >= 10]
        vocab = vocabulary(out, f)
        assert sorted(vocab) == sorted(kept.index), f
        assert [kept[t] for t in vocab] == sorted(kept.values, reverse=True), f   # most frequent first
        index = {t: i for i, t in enumerate(vocab)}
        ids[f] = frame[f].map(lambda t: index.get(t, len(vocab)))
        assert s["vocab_size"][f] == len(vocab)
    encoded = pd.DataFrame(ids)
    encoded["label"] = frame["label"].astype(int)
    for split in expected_rows:
        rows = encoded[frame.split == split]
        assert read_records(out, split) == sorted(map(tuple, rows[fields + ["label"]].values.tolist()))
        oov = {f: float((rows[f] == s["vocab_size"][f]).mean()) for f in fields}
        assert all(math.isclose(oov[f], s["oov_rate"][split][f], abs_tol=1e-12) for f in fields)


def test_parsed_rows_stream_from_the_reader_to_the_writer_in_one_stage(tmp_path, monkeypatch):
    """Bounded memory: the local runner holds a PCollection whole only between stages, so the
    transform pass must read, transform and write in one fused stage, and the analysis must read
    the input on its own (a Flatten of splits or a shared read would put every parsed row between stages)."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    stages = []
    run_stages = fn_runner.FnApiRunner.run_stages

    def recording(self, context, planned):
        stages.extend({t.unique_name for t in stage.transforms} for stage in planned)
        return run_stages(self, context, planned)

    monkeypatch.setattr(fn_runner.FnApiRunner, "run_stages", recording)
    cfg = load_config("synthetic", ["dataset.synthetic.rows=2000"])
    run_transform(cfg.dataset, None, str(tmp_path / "out"), BEAM_ARGS)
    transform = [s for s in stages if "Parse/ParDo(ParseLines)" in s]
    analysis = [s for s in stages if "AnalysisParse/ParDo(ParseLines)" in s]
    assert len(transform) == 1 and {"Transform/Transform", "Write"} <= transform[0]
    assert len(analysis) == 1 and not analysis[0] & {"Transform/Transform", "Write"}

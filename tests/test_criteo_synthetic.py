"""The Criteo-shaped synthetic log: format, determinism, Criteo-like statistics, a planted signal,
and an atomic writer."""
import gzip

import numpy as np
import pytest

from fsdnet_tf.config import load_config
from fsdnet_tf.data import criteo_synthetic as synth
from fsdnet_tf.data.readers import DelimitedParser
from pipelines.criteo_synth_cli import write_log
from helpers import auc


def test_lines_parse_as_criteo_with_forty_cells():
    parser = DelimitedParser(load_config("criteo").dataset)
    lines = synth.chunk_lines(5, 0, 3000).splitlines()
    assert len(lines) == 3000
    for line in lines:
        cells = line.split(b"\t")
        assert len(cells) == 40 and cells[0] in (b"0", b"1")
        assert all(len(c) in (0, 8) and all(ch in b"0123456789abcdef" for ch in c) for c in cells[14:])
        values, label = parser(line)
        assert label in (0, 1) and len(values) == 39


def test_deterministic_per_chunk_and_seed():
    assert synth.chunk_lines(5, 3, 500) == synth.chunk_lines(5, 3, 500)
    assert synth.chunk_lines(5, 3, 500) != synth.chunk_lines(6, 3, 500)
    assert synth.chunk_lines(5, 3, 500) != synth.chunk_lines(5, 4, 500)


def test_criteo_like_statistics():
    data = synth.generate_chunk(11, 0, 20_000)
    missing = (data["categorical"] < 0).mean(axis=0)
    np.testing.assert_allclose(missing, synth.CATEGORICAL_MISSING, atol=0.02)
    np.testing.assert_allclose(np.isnan(data["integers"]).mean(axis=0), synth.INTEGER_MISSING, atol=0.02)
    assert 0.2 < data["label"].mean() < 0.33
    assert data["categorical"].max(axis=0).tolist() <= [c - 1 for c in synth.CARDINALITIES]
    assert len(np.unique(data["categorical"][:, 8])) == 3         # C9 has three values
    assert len(np.unique(data["categorical"][:, 2])) > 3000      # C3 is huge and long-tailed
    assert np.nanmin(data["integers"][:, 1]) < 0 <= np.nanmin(data["integers"][:, 0])
    tokens = synth.hex_tokens(2, np.arange(100_000))
    assert len(set(tokens.tolist())) == 100_000                  # distinct values, distinct tokens


def test_the_planted_interactions_carry_signal(monkeypatch):
    data = synth.generate_chunk(11, 0, 20_000)
    assert auc(data["label"], data["logit"]) > 0.75
    monkeypatch.setattr(synth, "PAIR_SCALE", 0.0)
    without_pairs = synth.generate_chunk(11, 0, 20_000)["logit"]
    assert auc(data["label"], data["logit"]) - auc(data["label"], without_pairs) > 0.03


def test_write_log_plain_and_gzip_hold_the_same_lines(tmp_path):
    plain, packed = tmp_path / "t.txt", tmp_path / "t.txt.gz"
    rows = synth.CHUNK_ROWS + 123
    assert write_log(plain, rows, 3)["rows"] == rows
    write_log(packed, rows, 3)
    text = plain.read_bytes()
    assert gzip.decompress(packed.read_bytes()) == text and text.count(b"\n") == rows
    assert text == synth.chunk_lines(3, 0, synth.CHUNK_ROWS) + synth.chunk_lines(3, 1, 123)


def test_a_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    import pipelines.criteo_synth_cli as cli
    calls = []

    def failing(seed, chunk, rows):
        calls.append(chunk)
        if chunk == 1:
            raise KeyboardInterrupt
        return synth.chunk_lines(seed, chunk, rows)
    monkeypatch.setattr(cli, "chunk_lines", failing)
    with pytest.raises(KeyboardInterrupt):
        write_log(tmp_path / "t.txt", 2 * synth.CHUNK_ROWS, 3)
    assert calls == [0, 1] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [(["--rows", "0"], "--rows must be >= 1"),
                                           (["--rows", "5", "--output", "/nonexistent/dir/t.txt"], "does not exist")])
def test_bad_arguments_are_clear_errors_and_write_nothing(args, message, capsys, tmp_path):
    from pipelines.criteo_synth_cli import main
    if "--output" not in args:
        args = args + ["--output", str(tmp_path / "t.txt")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

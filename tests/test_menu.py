"""fsdnet-menu: side-by-side export, cost and latency report, and the budgeted choice."""
import json

import pytest

from serving.menu import Entry, cheapest_within_budget


def test_the_cheapest_model_within_the_budget_is_chosen():
    rows = [{"name": "big", "test_auc": 0.985, "grpc_sustained_examples_per_second": 100, "multiply_adds": 9},
            {"name": "small", "test_auc": 0.9843, "grpc_sustained_examples_per_second": 900, "multiply_adds": 1},
            {"name": "tiny", "test_auc": 0.9830, "grpc_sustained_examples_per_second": 5000, "multiply_adds": 1}]
    assert cheapest_within_budget(rows, 0.001)["name"] == "small"
    assert cheapest_within_budget(rows, 0.0)["name"] == "big"
    assert cheapest_within_budget(rows, 0.01)["name"] == "tiny"


@pytest.mark.parametrize("text, message", [("fsdnet", "expected NAME=RUN_DIR"), ("a b=run", "model name may hold"),
                                           ("=run", "expected NAME=RUN_DIR")])
def test_bad_entries_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        Entry.parse(text)
    assert Entry.parse("t=/runs/x:teacher_head") == Entry("t", "/runs/x", "teacher_head")


def test_menu_exports_measures_and_reports(trained_run, tmp_path, capsys):
    from serving.menu import main
    run_dir = trained_run[0]
    code = main(["--out-dir", str(tmp_path / "menu"), "--entry", f"fsdnet={run_dir}",
                 "--entry", f"fsdnet_teacher={run_dir}:teacher_head", "--repeats", "20", "--sustain-seconds", "0.2"])
    assert code == 0
    menu = json.loads((tmp_path / "menu" / "menu.json").read_text())
    rows = {r["name"]: r for r in menu["entries"]}
    assert rows["fsdnet"]["multiply_adds"] == rows["fsdnet"]["graph_multiply_adds"]
    assert rows["fsdnet_teacher"]["multiply_adds"] < rows["fsdnet"]["multiply_adds"]
    for row in rows.values():
        assert set(row["latency"]) == {"batch_1", "batch_64", "batch_1024"}
        assert row["latency"]["batch_64"]["grpc"]["p99_ms"] >= row["latency"]["batch_64"]["grpc"]["p50_ms"] > 0
        rates = row["grpc_sustained"]
        assert set(rates) == {"tf_default", "request_thread"}
        assert all(set(levels) == {"threads_1", "threads_2", "threads_4"} for levels in rates.values())
        best = max(rate for levels in rates.values() for rate in levels.values())
        assert row["grpc_sustained_examples_per_second"] == best > 0
        setting, level = row["grpc_sustained_best"].split(", ")
        assert rates[setting][level.replace(" ", "_")] == best
        assert (tmp_path / "menu" / "models" / row["name"] / "1" / "saved_model.pb").is_file()
    assert menu["choice"] in rows and (tmp_path / "menu" / "menu.png").stat().st_size > 0
    assert 'name: "fsdnet_teacher"' in (tmp_path / "menu" / "models.config").read_text()
    assert "Cheapest within 0.001 AUC" in (tmp_path / "menu" / "menu.md").read_text()
    assert "cheapest within 0.001 AUC of the best" in capsys.readouterr().out


def test_duplicate_names_and_unfinished_runs_are_refused(tmp_path, capsys):
    from serving.menu import main
    with pytest.raises(SystemExit):
        main(["--out-dir", str(tmp_path / "m"), "--entry", "a=/x", "--entry", "a=/y"])
    assert "model names must be distinct" in capsys.readouterr().err
    assert main(["--out-dir", str(tmp_path / "m"), "--entry", f"a={tmp_path}"]) == 2
    assert "is not a finished training run" in capsys.readouterr().err

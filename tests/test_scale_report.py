"""benchmarks/scale.py: which runner mode the target reads, growth per mode, and the process-tree memory."""
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))

import scale  # noqa: E402


def entry(rows: int, mode: str, seconds: float, peak: float, default: str = "processes") -> dict:
    return {"rows": rows, "mode": mode, "default_mode": default, "transform_seconds": seconds,
            "rows_per_second": round(rows / seconds), "peak_rss_gib": peak, "input_bytes": rows * 100,
            "output_bytes": rows * 140, "vocabulary_tokens": 10, "code": "abc", "conditions": "idle"}


def test_the_target_reads_the_default_runner_at_ten_million_rows():
    results = [entry(1_000_000, "in-process", 66.0, 1.2), entry(1_000_000, "processes", 59.0, 3.1),
               entry(10_000_000, "in-process", 400.0, 1.5), entry(10_000_000, "processes", 250.0, 3.9)]
    text = scale.report(results)
    assert "**met** (default runner, largest measured: 10,000,000 rows at 40,000 rows/s, peak 3.9 GiB)" in text
    assert "10,000,000 rows: the worker processes run 1.60× as fast as one process" in text
    assert "processes: from 1,000,000 to 10,000,000 rows the time grows 4.24×" in text
    assert "in-process: from 1,000,000 to 10,000,000 rows the time grows 6.06×" in text
    # A default run over the memory limit, or a fast run that is not the default, does not meet it.
    over = results[:3] + [entry(10_000_000, "processes", 250.0, 4.2)]
    assert "**not met**" in scale.report(over)
    in_process_default = [dict(r, default_mode="in-process") for r in results]
    assert "**not met** (default runner, largest measured: 10,000,000 rows at 25,000 rows/s" in \
        scale.report(in_process_default)


def test_default_mode_follows_the_tool_threshold():
    from pipelines.local_runner import PARALLEL_INPUT_BYTES, usable_cores
    assert scale.default_mode(PARALLEL_INPUT_BYTES - 1) == "in-process"
    assert scale.default_mode(PARALLEL_INPUT_BYTES) == ("processes" if usable_cores() > 1 else "in-process")


def test_tree_memory_counts_the_children():
    import time
    child = subprocess.Popen([sys.executable, "-c", "import time; b = b'x' * (300 << 20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while scale.tree_rss_bytes(child.pid) < (300 << 20) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scale.tree_rss_bytes(child.pid) >= 300 << 20
        own = int(pathlib.Path("/proc/self/statm").read_text().split()[1]) * scale.PAGE_BYTES
        assert scale.tree_rss_bytes(os.getpid()) - own >= 300 << 20
    finally:
        child.kill()
        child.wait()

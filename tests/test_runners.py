"""The transform job runs unchanged on Beam's in-process runner, its multi-processing runner and
PortableRunner with a job service and an external worker pool (the Fn API protocol the Flink and
Spark runners speak): same vocabularies, same decoded records, same counts."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

ROWS = ["--set", "dataset.synthetic.rows=3000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service on port {port} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def portable_services():
    """A local Beam job service and an external SDK worker pool, as a Flink/Spark cluster would run."""
    job_port, pool_port = free_port(), free_port()
    # The pool starts each SDK worker as `python` from PATH: it must be this environment's Python.
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    services = [subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                  "--port", str(job_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                  f"--service_port={pool_port}"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)]
    try:
        wait_for_port(job_port, services[0])
        wait_for_port(pool_port, services[1])
        yield job_port, pool_port
    finally:
        for service in services:
            service.terminate()
            service.wait(timeout=30)


def transform(output, beam_args) -> dict:
    done = subprocess.run([sys.executable, "-m", "pipelines.transform_cli", "--config", "synthetic",
                           "--output", str(output)] + ROWS + beam_args,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # The terminal keeps the tool's own lines: no runner chatter (Beam logs it at INFO on the root logger).
    assert " INFO root:" not in done.stderr + done.stdout, done.stderr[-2000:]
    return json.loads((output / "stats.json").read_text())


def decoded(output) -> dict:
    from fsdnet_tf.data.input import load_arrays
    from fsdnet_tf.data.transform_output import TransformDir
    out = TransformDir(str(output))
    records = {}
    for split in ("train", "valid", "test"):
        arrays = load_arrays(out, split)
        keys = sorted(arrays)
        rows = np.stack([arrays[k].astype(np.float64) for k in keys], axis=1)
        records[split] = rows[np.lexsort(rows.T[::-1])]      # the runners may write rows in other orders
    vocabularies = {p.name: p.read_bytes() for p in sorted((output / "transform_fn" / "assets").iterdir())}
    return {"records": records, "vocabularies": vocabularies}


def test_job_service_runners_get_a_job_server_timeout_longer_than_a_job():
    from pipelines.local_runner import JOB_SERVER_TIMEOUT, with_runner_defaults
    assert with_runner_defaults([]) == ["--runner=FnApiRunner"]
    assert with_runner_defaults(["--runner=PortableRunner"]) == ["--runner=PortableRunner", JOB_SERVER_TIMEOUT]
    assert with_runner_defaults(["--runner=FlinkRunner", "--job_server_timeout=60"])[-1] == "--job_server_timeout=60"
    assert with_runner_defaults(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]


def test_a_large_input_runs_on_one_worker_process_per_core_unless_told_otherwise():
    from pipelines.local_runner import PARALLEL_INPUT_BYTES, with_runner_defaults
    processes = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=4"]
    assert with_runner_defaults([], PARALLEL_INPUT_BYTES, cores=4) == processes
    assert with_runner_defaults(["--temp_location=/t"], PARALLEL_INPUT_BYTES, cores=4) == processes + ["--temp_location=/t"]
    assert with_runner_defaults([], PARALLEL_INPUT_BYTES - 1, cores=4) == ["--runner=FnApiRunner"]
    assert with_runner_defaults([], PARALLEL_INPUT_BYTES, cores=1) == ["--runner=FnApiRunner"]
    assert with_runner_defaults(["--direct_num_workers=1"], PARALLEL_INPUT_BYTES, cores=4) == [
        "--runner=FnApiRunner", "--direct_num_workers=1"]
    assert with_runner_defaults(["--runner=DirectRunner"], PARALLEL_INPUT_BYTES, cores=4) == ["--runner=DirectRunner"]


def test_compressed_files_are_read_in_one_stripe_per_local_worker():
    from apache_beam.options.pipeline_options import PipelineOptions
    from pipelines.local_runner import local_workers
    assert local_workers(PipelineOptions(["--runner=FnApiRunner"])) == 1
    assert local_workers(PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                                          "--direct_num_workers=3"])) == 3
    assert local_workers(PipelineOptions(["--direct_running_mode=multi_threading", "--direct_num_workers=2"])) == 2
    assert local_workers(PipelineOptions(["--runner=PortableRunner", "--direct_num_workers=3",
                                          "--direct_running_mode=multi_processing"])) == 1


def test_the_local_worker_processes_start_through_the_quiet_worker_command():
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
    from pipelines.local_runner import WORKER_COMMAND, local_process_runner
    assert local_process_runner(PipelineOptions(["--runner=FnApiRunner"])) is None
    assert local_process_runner(PipelineOptions(["--runner=PortableRunner"])) is None
    options = PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                               "--direct_num_workers=2"])
    runner = local_process_runner(options)
    assert runner._default_environment.command_string == WORKER_COMMAND
    # Beam would otherwise swap its own worker command back in.
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert options.view_as(DirectOptions).direct_num_workers == 2


def test_three_runners_give_the_same_output(tmp_path, portable_services):
    job_port, pool_port = portable_services
    runs = {"in_process": [],
            "multi_processing": ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                                 "--direct_num_workers=2"],
            "portable": ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                         "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"]}
    stats = {name: transform(tmp_path / name, args) for name, args in runs.items()}
    outputs = {name: decoded(tmp_path / name) for name in runs}
    reference = outputs["in_process"]
    assert len(reference["vocabularies"]) == 8 and all(reference["vocabularies"].values())
    for name in ("multi_processing", "portable"):
        assert outputs[name]["vocabularies"] == reference["vocabularies"], name
        for split, rows in reference["records"].items():
            np.testing.assert_array_equal(outputs[name]["records"][split], rows, err_msg=f"{name} {split}")
        assert stats[name]["splits"] == stats["in_process"]["splits"]
        assert stats[name]["vocab_size"] == stats["in_process"]["vocab_size"]


def test_a_gzipped_log_read_in_stripes_by_two_worker_processes_gives_the_same_output(tmp_path):
    """The multi-process default on a compressed Criteo-shaped log: each worker decompresses the
    file and parses every other block; the output equals the one-process run's."""
    from pipelines.criteo_synth_cli import write_log
    from pipelines.reading import BLOCK_BYTES, byte_ranges, read_blocks
    log = tmp_path / "data" / "train.txt.gz"
    log.parent.mkdir()
    write_log(log, 20_000, seed=5)
    stripes = byte_ranges(str(log), stripes=2)
    assert all(sum(len(block) for block in read_blocks(task, False)) > 0 for task in stripes), \
        f"the log must hold more than one {BLOCK_BYTES}-byte block for both stripes to read lines"
    outputs, stats = {}, {}
    for name, args in {"one": ["--direct_running_mode=in_memory"],
                       "two": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]}.items():
        done = subprocess.run([sys.executable, "-m", "pipelines.transform_cli", "--config", "criteo",
                               "--data-dir", str(log.parent), "--set", "dataset.splits.source=train.txt.gz",
                               "--set", "dataset.min_frequency=2", "--output", str(tmp_path / name)] + args,
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        # The workers' TensorFlow start-up lines stay off the terminal, as the tool's own do.
        assert "cuda" not in done.stderr.lower() and "INFO:tensorflow" not in done.stderr, done.stderr[-2000:]
        outputs[name], stats[name] = decoded(tmp_path / name), json.loads((tmp_path / name / "stats.json").read_text())
    assert stats["two"]["splits"] == stats["one"]["splits"]
    assert sum(s["written"] for s in stats["one"]["splits"].values()) == 20_000
    assert outputs["two"]["vocabularies"] == outputs["one"]["vocabularies"]
    for split, rows in outputs["one"]["records"].items():
        np.testing.assert_array_equal(outputs["two"]["records"][split], rows, err_msg=split)

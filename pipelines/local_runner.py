"""Which Beam runner the transform uses when the command line names none, and how it runs locally.

Without ``--runner``, the job runs on Beam's FnApiRunner on this machine: in the tool's own
process for small inputs, or with one worker process per core once the input is large enough
for the second core to pay for the workers' start-up. The worker processes are Beam's own SDK
workers started through :mod:`pipelines.local_worker`, which keeps TensorFlow's C++ start-up
lines off the terminal as the tool itself does. Beam is imported only where needed: the
command line reads the defaults before any heavy import.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

# Named explicitly: Beam's DirectRunner first tries to download a Prism binary.
DEFAULT_LOCAL_RUNNER = ["--runner=FnApiRunner"]
LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner")
# Each worker process imports TensorFlow and loads the graphs (about 10 s), so small inputs run
# faster in one process. On 2 cores, Criteo-shaped rows: 500k uncompressed (118 MiB) tied, 1 M
# gzipped (100 MiB) ran 1.20x faster on two processes, 10 M gzipped 1.58x (benchmarks/scale.py).
PARALLEL_INPUT_BYTES = 96 << 20
# Beam's job-service runners put --job_server_timeout (default 300 s) on the job's state stream
# too, so a transform longer than that fails with DEADLINE_EXCEEDED; give them a day unless set.
JOB_SERVICE_RUNNERS = ("PortableRunner", "FlinkRunner", "SparkRunner")
JOB_SERVER_TIMEOUT = "--job_server_timeout=86400"
WORKER_COMMAND = f"{sys.executable} -m pipelines.local_worker"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def with_runner_defaults(beam_args: list[str], input_bytes: int = 0, cores: Optional[int] = None) -> list[str]:
    """Beam's arguments with this tool's defaults: without a runner, the local FnApiRunner, with one
    worker process per core when the input files total at least ``PARALLEL_INPUT_BYTES`` (unless
    the arguments say how the direct runner should run)."""
    if not any(a.startswith("--runner") for a in beam_args):
        cores = cores or usable_cores()
        if (input_bytes >= PARALLEL_INPUT_BYTES and cores > 1
                and not any(a.startswith("--direct_") for a in beam_args)):
            return DEFAULT_LOCAL_RUNNER + ["--direct_running_mode=multi_processing",
                                           f"--direct_num_workers={cores}"] + beam_args
        return DEFAULT_LOCAL_RUNNER + beam_args
    runner = next(a.split("=", 1)[-1] for a in beam_args if a.startswith("--runner"))
    if runner in JOB_SERVICE_RUNNERS and not any(a.startswith(("--job_server_timeout", "--job-server-timeout"))
                                                 for a in beam_args):
        return beam_args + [JOB_SERVER_TIMEOUT]
    return beam_args


def _direct_options(options):
    """The direct-runner options (``DirectOptions``), or None when the job runs on another runner."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
    if (options.view_as(StandardOptions).runner or "DirectRunner") not in LOCAL_RUNNERS:
        return None
    return options.view_as(DirectOptions)


def local_workers(options) -> int:
    """How many workers a local runner runs the job with; 1 for any other runner (whose workers
    this process cannot count)."""
    direct = _direct_options(options)
    if direct is None or direct.direct_running_mode == "in_memory":
        return 1
    return direct.direct_num_workers or usable_cores()


class _DropWorkerCountWarning(logging.Filter):
    """FnApiRunner warns that several workers want a multi-process mode, not knowing that its
    environment already is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "direct_num_workers" not in record.getMessage()


def local_process_runner(options):
    """The runner for a local multi-process job, workers started by :mod:`pipelines.local_worker`
    (``options`` adjusted so that Beam keeps that environment); None for every other job, whose
    runner Beam builds from the options."""
    direct = _direct_options(options)
    if direct is None or direct.direct_running_mode != "multi_processing":
        return None
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.transforms.environments import SubprocessSDKEnvironment
    # FnApiRunner replaces its environment with Beam's own worker command in this mode.
    direct.direct_running_mode = "in_memory"
    direct.direct_num_workers = direct.direct_num_workers or usable_cores()
    runner_log = logging.getLogger(fn_runner.__name__)
    if not any(isinstance(f, _DropWorkerCountWarning) for f in runner_log.filters):
        runner_log.addFilter(_DropWorkerCountWarning())
    return fn_runner.FnApiRunner(
        default_environment=SubprocessSDKEnvironment.from_command_string(WORKER_COMMAND))

"""A worker process of the local multi-process transform: Beam's SDK worker, with TensorFlow imported
first and its C++ start-up lines and the frameworks' INFO logs kept off the terminal, unless the
tool runs with --verbose.

Started by the FnApiRunner of :func:`pipelines.local_runner.local_process_runner`, which passes
the control endpoints in the environment, as for Beam's own worker command.
"""
import logging
import os
import sys

from fsdnet_tf import preflight

if __name__ == "__main__":
    if not os.environ.get(preflight.VERBOSE_ENV):
        preflight.quiet_framework_loggers()
        # It warns that no main session was staged: the transform stages none (its DoFns import
        # what they need), so the warning says nothing to the user.
        logging.getLogger("apache_beam.runners.worker.sdk_worker_main").setLevel(logging.ERROR)
        preflight.import_tensorflow_quietly()
    from apache_beam.runners.worker import sdk_worker_main
    sdk_worker_main.main(sys.argv)

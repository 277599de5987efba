"""fsdnet-serve: a local server speaking TensorFlow Serving's gRPC and REST APIs, for development and tests.

Arguments and the model base path are checked before TensorFlow is imported; the server
itself is :class:`serving.server.Server`.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Optional

from fsdnet_tf import features as names
from fsdnet_tf import preflight

log = logging.getLogger("fsdnet_tf.serve")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model-base-path", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--port", type=int, default=8500, help="gRPC port")
    parser.add_argument("--rest-api-port", type=int, default=8501,
                        help="REST (JSON over HTTP) port, as TF Serving's --rest_api_port; 0 turns REST off")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
    parser.add_argument("--workers", type=int, default=8, help="request threads")
    parser.add_argument("--max-batch", type=int, default=names.MAX_BATCH_SIZE)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="threads one op may use (0: all cores), as TF Serving's --tensorflow_intra_op_parallelism")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="threads running independent ops (0: one per core; -1: each request's own thread), "
                             "as TF Serving's --tensorflow_inter_op_parallelism")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's and absl's own log lines")
    args = parser.parse_args(argv)
    if args.intra_op_threads < 0:
        parser.error(f"--intra-op-threads must be 0 (all cores) or more, got {args.intra_op_threads}")
    if args.inter_op_threads < -1:
        parser.error(f"--inter-op-threads must be -1 (request thread), 0 (one per core) or more, "
                     f"got {args.inter_op_threads}")
    try:
        preflight.require_port("--port", args.port, "any free port")
        preflight.require_port("--rest-api-port", args.rest_api_port, "REST off")
        preflight.require_servable(args.model_base_path)
    except preflight.UsageError as err:
        return preflight.fail("fsdnet-serve", str(err))
    preflight.start(args.verbose)
    from fsdnet_tf.config import ConfigError
    from serving.server import Server
    try:
        server = Server(args.model_base_path, args.model_name, args.port, args.workers, args.max_batch,
                        args.poll_seconds, args.host, args.intra_op_threads, args.inter_op_threads,
                        args.rest_api_port or None).start()
    except (ConfigError, OSError) as err:
        return preflight.fail("fsdnet-serve", str(err))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    log.info("listening on %s:%d (gRPC, TF Serving PredictionService)", args.host, server.port)
    if server.rest_port:
        log.info("listening on http://%s:%d (REST, /v1/models/%s)", args.host, server.rest_port, args.model_name)
    print(f"READY {args.host}:{server.port}", flush=True)
    done.wait()
    log.info("shutting down")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""gRPC client for the exported model, against TF Serving or fsdnet-serve alike.

``connect`` picks the transport from the target: HOST:PORT is gRPC, ``http://HOST:PORT``
TF Serving's REST API (:mod:`serving.rest_client`, the same methods).

Rows are dicts of raw feature strings. They are sent in batches as serialized
tf.Examples (``serving_default``) or as one string tensor per feature
(``predict_raw``), with a per-call deadline and retries on UNAVAILABLE.

fsdnet-score reads rows from CSV (header = raw feature names) or JSON lines and
writes the input rows with a ``probability`` column appended.
"""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import argparse
import csv
import json
import logging
import os
import pathlib
import sys
import time
from typing import Iterable, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from fsdnet_tf import features as names

log = logging.getLogger("fsdnet_tf.client")


class RowClient:
    """What the gRPC and REST clients share: settings, the model's feature list, batching."""

    def __init__(self, model_name: str, timeout: float, retries: int, batch_size: int, backoff: float):
        self.model_name, self.timeout, self.retries = model_name, timeout, retries
        self.batch_size, self.backoff = batch_size, backoff
        self._fields: Optional[list[str]] = None

    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def signatures(self) -> dict:
        raise NotImplementedError

    def feature_names(self) -> list[str]:
        """The raw features, read from the model's raw-tensor signature (no hard-coded names)."""
        if self._fields is None:
            self._fields = sorted(self.signatures()[names.RAW_SIGNATURE].inputs)
        return self._fields

    def _batches(self, rows: list[dict]) -> Iterable[list[dict]]:
        for start in range(0, len(rows), self.batch_size):
            yield rows[start:start + self.batch_size]

    def _check_rows(self, rows: list[dict]) -> None:
        missing = {f for f in self.feature_names() for r in rows if f not in r}
        if missing:
            raise KeyError(f"rows lack feature(s) {sorted(missing)}")


class ScoringClient(RowClient):
    def __init__(self, target: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 batch_size: int = 1024, backoff: float = 0.2):
        super().__init__(model_name, timeout, retries, batch_size, backoff)
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20),
                                                              ("grpc.max_send_message_length", 64 << 20)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, method, request):
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2 ** attempt)

    # ------------------------------------------------------------------ metadata
    def status(self) -> list[tuple[int, str]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        response = self._call(self.models.GetModelStatus, request)
        return [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
                for s in response.model_version_status]

    def signatures(self) -> dict:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)

    # ------------------------------------------------------------------ scoring
    def predict_request(self, rows: list[dict], raw_tensors: bool = False) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        if raw_tensors:
            request.model_spec.signature_name = names.RAW_SIGNATURE
            for field in self.feature_names():
                request.inputs[field].CopyFrom(tf.make_tensor_proto([str(r[field]) for r in rows], dtype=tf.string))
        else:
            request.model_spec.signature_name = names.PREDICT_SIGNATURE
            request.inputs[names.EXAMPLES_INPUT].CopyFrom(
                tf.make_tensor_proto(self.serialize(rows), dtype=tf.string))
        request.output_filter.append(names.PROBABILITY_OUTPUT)
        return request

    def serialize(self, rows: list[dict]) -> list[bytes]:
        return names.serialize_examples(rows, self.feature_names())

    def predict(self, rows: list[dict], raw_tensors: bool = False) -> np.ndarray:
        self._check_rows(rows)
        scores = []
        for batch in self._batches(rows):
            response = self._call(self.prediction.Predict, self.predict_request(batch, raw_tensors))
            scores.append(tf.make_ndarray(response.outputs[names.PROBABILITY_OUTPUT]))
        return np.concatenate(scores) if scores else np.zeros([0], np.float32)

    def _example_requests(self, rows: list[dict], request_type, method):
        for batch in self._batches(rows):
            request = request_type()
            request.model_spec.name = self.model_name
            for raw in self.serialize(batch):
                request.input.example_list.examples.add().ParseFromString(raw)
            yield self._call(method, request)

    def classify(self, rows: list[dict]) -> np.ndarray:
        """P(class 1) per row through the Classify API."""
        return np.array([{c.label: c.score for c in result.classes}["1"]
                         for response in self._example_requests(rows, classification_pb2.ClassificationRequest,
                                                                self.prediction.Classify)
                         for result in response.result.classifications], np.float32)

    def regress(self, rows: list[dict]) -> np.ndarray:
        return np.array([r.value for response in self._example_requests(rows, regression_pb2.RegressionRequest,
                                                                        self.prediction.Regress)
                         for r in response.result.regressions], np.float32)


def connect(target: str, model_name: str, timeout: float = 10.0, retries: int = 3, batch_size: int = 1024):
    """A scoring client for ``target``: ``http(s)://HOST:PORT`` speaks REST, ``HOST:PORT`` gRPC."""
    if target.startswith(("http://", "https://")):
        from serving.rest_client import RestScoringClient
        return RestScoringClient(target, model_name, timeout, retries, batch_size)
    return ScoringClient(target, model_name, timeout, retries, batch_size)


# --------------------------------------------------------------------------- CLI

def read_rows(path: pathlib.Path) -> tuple[list[dict], list[str]]:
    text = path.read_text()
    if path.suffix in (".json", ".jsonl"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        columns = list(dict.fromkeys(k for r in rows for k in r))
    else:
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ",")
        rows, columns = list(reader), list(reader.fieldnames or [])
    return rows, columns


def write_scores(path: pathlib.Path, rows: list[dict], columns: list[str], scores: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns + [names.PROBABILITY_OUTPUT], extrasaction="ignore")
        writer.writeheader()
        for row, score in zip(rows, scores):
            writer.writerow({**row, names.PROBABILITY_OUTPUT: f"{score:.8f}"})
    os.replace(tmp, path)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fsdnet-score", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True,
                        help="TF Serving or fsdnet-serve: HOST:PORT (gRPC) or http://HOST:PORT (REST)")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--input", required=True, help="rows: .csv/.tsv with a header, or .jsonl")
    parser.add_argument("--output", required=True, help="CSV: the input columns plus probability")
    parser.add_argument("--raw-tensors", action="store_true", help="use the raw-tensor signature")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=3, help="retries on UNAVAILABLE")
    args = parser.parse_args(argv)
    path = pathlib.Path(args.input)
    if not path.is_file():
        print(f"fsdnet-score: error: input file {path} does not exist", file=sys.stderr)
        return 2
    try:
        rows, columns = read_rows(path)
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        print(f"fsdnet-score: error: {path} is not readable rows: {err}", file=sys.stderr)
        return 2
    if not rows:
        print(f"fsdnet-score: error: {path} has no rows", file=sys.stderr)
        return 2
    started = time.perf_counter()
    from serving.rest_client import RestError
    with connect(args.target, args.model_name, args.deadline, args.retries, args.batch_size) as client:
        try:
            scores = client.predict(rows, raw_tensors=args.raw_tensors)
        except KeyError as err:
            print(f"fsdnet-score: error: {path}: {err.args[0]}", file=sys.stderr)
            return 2
        except grpc.RpcError as err:
            print(f"fsdnet-score: error: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        except RestError as err:
            print(f"fsdnet-score: error: {err}", file=sys.stderr)
            return 1
    write_scores(pathlib.Path(args.output), rows, columns, scores)
    seconds = time.perf_counter() - started
    print(f"scored {len(rows):,} rows via {args.target} in {seconds:.2f} s ({len(rows) / seconds:,.0f} rows/s); "
          f"mean probability {scores.mean():.4f} → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

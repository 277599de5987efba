"""gRPC client for the exported model, against TF Serving or fsdnet-serve alike.

``connect`` picks the transport from the target: HOST:PORT is gRPC, ``http://HOST:PORT``
TF Serving's REST API (:mod:`serving.rest_client`, the same methods).

Rows are dicts of raw feature strings. They are sent in batches as serialized
tf.Examples (``serving_default``) or as one string tensor per feature
(``predict_raw``), with a per-call deadline and retries on UNAVAILABLE.

``fsdnet-score`` (:mod:`serving.score_cli`) is its command line.
"""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import time
from typing import Iterable, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from fsdnet_tf import features as names

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

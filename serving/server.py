"""The local server behind fsdnet-serve (:mod:`serving.serve_cli`): TensorFlow Serving's gRPC and REST APIs,
for development and tests.

Production uses TensorFlow Serving (see docker/). This server implements the same
protocols over the same model base path layout, so clients and exports are tested
against the real API: PredictionService Predict, Classify, Regress and
GetModelMetadata, and ModelService GetModelStatus over gRPC, and the same calls as
TF Serving's JSON REST API (:mod:`serving.rest`) on ``--rest-api-port``.

Behaviour, as in TF Serving with the "latest" version policy: the highest integer
version under ``--model-base-path`` is served; a newer version is loaded in the
background (warmup records replayed) and swapped in atomically while requests in
flight finish on the old one; bad requests get INVALID_ARGUMENT / NOT_FOUND with a
message naming the input, and never take the server down.
"""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

from concurrent import futures
from typing import Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)

from fsdnet_tf import features as names
from serving.rest import RestApi, RestServer
from serving.versions import LoadedVersion, ModelManager, RequestError


def _signature(loaded: LoadedVersion, name: str, method: Optional[str] = None) -> str:
    name = name or names.PREDICT_SIGNATURE
    if name not in loaded.signature_defs:
        raise RequestError(grpc.StatusCode.NOT_FOUND, f"Serving signature key '{name}' not found; available: "
                                                      f"{', '.join(sorted(loaded.signature_defs))}")
    if method and loaded.signature_defs[name].method_name != method:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"signature '{name}' is not a {method.rsplit('/', 1)[-1]} signature")
    return name


def _check_batch(name: str, array: np.ndarray, max_batch: int) -> int:
    if array.ndim != 1:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input '{name}' must have shape [batch], got {list(array.shape)}")
    if array.shape[0] == 0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is an empty batch")
    if array.shape[0] > max_batch:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input '{name}' has batch size {array.shape[0]} > the limit {max_batch}")
    return array.shape[0]


_TF_ERROR_NOISE = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")


def tf_error_reason(message: str) -> str:
    """The line of a TensorFlow error that says what is wrong (e.g. which feature is missing)."""
    lines = [line.strip() for line in message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(_TF_ERROR_NOISE)]
    return (useful or lines or ["invalid input"])[0].removeprefix("Name: <unknown>, ")


def _run(loaded: LoadedVersion, signature: str, inputs: dict, outputs: list[str]) -> dict:
    try:
        return loaded.runner.run(signature, inputs, outputs)
    except tf.errors.InvalidArgumentError as err:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, tf_error_reason(err.message)) from None


def _examples_from_input(request_input: inference_pb2.Input) -> np.ndarray:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = request_input.example_list.examples
        return np.array([e.SerializeToString() for e in examples], dtype=object)
    if kind == "example_list_with_context":
        context = request_input.example_list_with_context.context
        merged = []
        for example in request_input.example_list_with_context.examples:
            combined = tf.train.Example()
            combined.CopyFrom(context)
            combined.MergeFrom(example)
            merged.append(combined.SerializeToString())
        return np.array(merged, dtype=object)
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "request has no input examples")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, max_batch: int):
        self.manager, self.max_batch = manager, max_batch

    def _guard(self, handler, request, context):
        try:
            return handler(request)
        except RequestError as err:
            context.abort(err.code, str(err))

    def Predict(self, request, context):
        return self._guard(self._predict, request, context)

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        loaded = self.manager.get(request.model_spec)
        name = _signature(loaded, request.model_spec.signature_name)
        definition = loaded.signature_defs[name]
        missing = sorted(set(definition.inputs) - set(request.inputs))
        if missing:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"missing input '{missing[0]}' for signature '{name}'")
        unknown = sorted(set(request.inputs) - set(definition.inputs))
        if unknown:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown input '{unknown[0]}' for signature '{name}'")
        wanted = list(request.output_filter) or sorted(definition.outputs)
        for key in wanted:
            if key not in definition.outputs:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown output '{key}'")
        inputs, sizes = {}, set()
        for key, info in definition.inputs.items():
            proto = request.inputs[key]
            if proto.dtype != info.dtype:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{key}' must be {tf.dtypes.as_dtype(info.dtype).name}, got "
                                   f"{tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else 'no dtype'}")
            try:
                array = tf.make_ndarray(proto)
            except Exception as err:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' is malformed: {err}") from None
            sizes.add(_check_batch(key, array, self.max_batch))
            inputs[key] = array
        if len(sizes) > 1:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"inputs have different batch sizes {sorted(sizes)}")
        outputs = _run(loaded, name, inputs, wanted)
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = self.manager.model_name, name
        response.model_spec.version.value = loaded.version
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def Classify(self, request, context):
        return self._guard(self._classify, request, context)

    def _run_on_examples(self, request, default_signature: str, method: str, response):
        """Shared by Classify and Regress: resolve, validate, run; fill the response's model spec."""
        loaded = self.manager.get(request.model_spec)
        name = _signature(loaded, request.model_spec.signature_name or default_signature, method)
        examples = _examples_from_input(request.input)
        _check_batch(names.CLASSIFY_REGRESS_INPUT, examples, self.max_batch)
        response.model_spec.name, response.model_spec.signature_name = self.manager.model_name, name
        response.model_spec.version.value = loaded.version
        return _run(loaded, name, {names.CLASSIFY_REGRESS_INPUT: examples}, sorted(loaded.signature_defs[name].outputs))

    def _classify(self, request: classification_pb2.ClassificationRequest):
        response = classification_pb2.ClassificationResponse()
        outputs = self._run_on_examples(request, names.CLASSIFY_SIGNATURE, "tensorflow/serving/classify", response)
        for labels, scores in zip(outputs[names.CLASSIFY_CLASSES_OUTPUT], outputs[names.CLASSIFY_SCORES_OUTPUT]):
            classifications = response.result.classifications.add()
            for label, score in zip(labels, scores):
                classifications.classes.add(label=label.decode(), score=float(score))
        return response

    def Regress(self, request, context):
        return self._guard(self._regress, request, context)

    def _regress(self, request: regression_pb2.RegressionRequest):
        response = regression_pb2.RegressionResponse()
        outputs = self._run_on_examples(request, names.REGRESS_SIGNATURE, "tensorflow/serving/regress", response)
        for value in outputs[names.REGRESS_OUTPUT]:
            response.result.regressions.add(value=float(value))
        return response

    def GetModelMetadata(self, request, context):
        return self._guard(self._metadata, request, context)

    def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        loaded = self.manager.get(request.model_spec)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"metadata_field must be ['signature_def'], got {fields}")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in loaded.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(definition)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.manager.model_name
        response.model_spec.version.value = loaded.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            return self.manager.status(request.model_spec)
        except RequestError as err:
            context.abort(err.code, str(err))


class Server:
    def __init__(self, model_base_path: str, model_name: str, port: int = 8500, workers: int = 8,
                 max_batch: int = names.MAX_BATCH_SIZE, poll_seconds: float = 1.0, host: str = "127.0.0.1",
                 intra_op_threads: int = 0, inter_op_threads: int = 0, rest_port: Optional[int] = None):
        """``rest_port``: None serves gRPC only; 0 picks a free port for REST (see ``self.rest_port``)."""
        self.manager = ModelManager(model_base_path, model_name, poll_seconds, intra_op_threads, inter_op_threads)
        predictions = PredictionService(self.manager, max_batch)
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
                                       options=[("grpc.max_receive_message_length", 64 << 20)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(predictions, self.grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.manager), self.grpc_server)
        self.port = self.grpc_server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self.rest = None if rest_port is None else RestServer(RestApi(predictions, self.manager), host, rest_port)
        self.rest_port = self.rest.port if self.rest else None

    def start(self) -> "Server":
        self.manager.start()
        self.grpc_server.start()
        if self.rest:
            self.rest.start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        self.manager.stop()
        if self.rest:
            self.rest.stop()
        self.grpc_server.stop(grace).wait()

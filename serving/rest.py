"""TF Serving's REST API (JSON over HTTP) for fsdnet-serve, on the same model as its gRPC API.

Each JSON request is turned into the gRPC request proto and answered by the same
:class:`~serving.server.PredictionService` code, so validation, error messages and scores
are those of the gRPC API. Routes, as in TF Serving:

    GET  /v1/models/NAME[/versions/V]              model status
    GET  /v1/models/NAME[/versions/V]/metadata     signature defs
    POST /v1/models/NAME[/versions/V]:predict      {"instances": [...]} (row) or {"inputs": ...} (columnar)
    POST /v1/models/NAME[/versions/V]:classify     {"examples": [{feature: value}], "context": {...}}
    POST /v1/models/NAME[/versions/V]:regress

Strings travel as JSON strings, or as {"b64": "..."} for arbitrary bytes; string outputs
whose name ends in ``_bytes`` are returned base64-encoded the same way. Errors are
``{"error": message}`` with the HTTP code of the gRPC status (400 invalid argument, 404 not
found, 503 unavailable, ...).
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, model_pb2,
                                     predict_pb2, regression_pb2)

from fsdnet_tf import features as names
from serving.versions import RequestError

log = logging.getLogger("fsdnet_tf.serve")

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<action>/metadata|:predict|:classify|:regress)?$")
MAX_BODY_BYTES = 64 << 20


def invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


# --------------------------------------------------------------------------- JSON ↔ tensors

def _decode_string(value, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error as err:
            raise invalid(f"{where}: 'b64' value is not base64: {err}") from None
    raise invalid(f"{where}: JSON value {json.dumps(value)[:60]} is not a string (send a string or "
                  "{\"b64\": ...})")


def _shape(value, where: str) -> list[int]:
    """The shape of a nested JSON list, which must be rectangular."""
    if not isinstance(value, list):
        return []
    shapes = [_shape(item, where) for item in value]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise invalid(f"{where}: nested lists of different lengths (the tensor must be rectangular)")
    return [len(value)] + (shapes[0] if shapes else [])


def _leaves(value) -> list:
    return [leaf for item in value for leaf in _leaves(item)] if isinstance(value, list) else [value]


def json_to_tensor(value, dtype_enum: int, where: str) -> tf.compat.v1.TensorProto:
    dtype = tf.dtypes.as_dtype(dtype_enum)
    shape = _shape(value, where)
    leaves = _leaves(value)
    if dtype == tf.string:
        array = np.array([_decode_string(leaf, where) for leaf in leaves], dtype=object).reshape(shape)
    else:
        if any(isinstance(leaf, (str, dict, bool)) or leaf is None for leaf in leaves):
            raise invalid(f"{where}: values must be numbers for a {dtype.name} input")
        try:
            array = np.array(leaves, dtype=dtype.as_numpy_dtype).reshape(shape)
        except (OverflowError, ValueError) as err:
            raise invalid(f"{where}: not {dtype.name} values: {err}") from None
    return tf.make_tensor_proto(array, dtype=dtype)


def tensor_to_json(name: str, proto) -> object:
    array = tf.make_ndarray(proto)
    if array.dtype == object:
        encode = ((lambda b: {"b64": base64.b64encode(b).decode()}) if name.endswith("_bytes")
                  else (lambda b: b.decode(errors="replace")))
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def _columns_from_instances(instances: list, input_names: list[str]) -> dict:
    """Row format: each instance is {input: value}, or a bare value when the signature has one input."""
    if not instances:
        raise invalid("'instances' is an empty list")
    named = all(isinstance(i, dict) and set(i) != {"b64"} for i in instances)
    if not named:
        if len(input_names) != 1:
            raise invalid(f"each instance must be an object naming the inputs {input_names}")
        return {input_names[0]: instances}
    keys = sorted(instances[0])
    for number, instance in enumerate(instances):
        if sorted(instance) != keys:
            raise invalid(f"instance {number} has inputs {sorted(instance)} but instance 0 has {keys}")
    return {key: [instance[key] for instance in instances] for key in keys}


def predict_request(body: dict, spec: model_pb2.ModelSpec, signature_defs: dict) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.CopyFrom(spec)
    request.model_spec.signature_name = body.get("signature_name", "")
    definition = signature_defs.get(request.model_spec.signature_name or names.PREDICT_SIGNATURE)
    if definition is None:
        return request      # the service reports the unknown signature
    input_names = sorted(definition.inputs)
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    if "instances" in body:
        if not isinstance(body["instances"], list):
            raise invalid("'instances' must be a list")
        columns = _columns_from_instances(body["instances"], input_names)
    else:
        inputs = body["inputs"]
        named = isinstance(inputs, dict) and set(inputs) != {"b64"}
        if not named and len(input_names) != 1:
            raise invalid(f"'inputs' must be an object naming the inputs {input_names}")
        columns = inputs if named else {input_names[0]: inputs}
    for key, value in columns.items():
        if key not in definition.inputs:
            raise invalid(f"unknown input '{key}' for signature '{request.model_spec.signature_name or names.PREDICT_SIGNATURE}'"
                          f" (it has {', '.join(input_names)})")
        request.inputs[key].CopyFrom(json_to_tensor(value, definition.inputs[key].dtype, f"input '{key}'"))
    return request


def _feature(value, where: str) -> tf.train.Feature:
    """A JSON value as a tf.train.Feature: strings → bytes, integers → int64, numbers → float."""
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, str) or (isinstance(v, dict) and set(v) == {"b64"}) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[_decode_string(v, where) for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise invalid(f"{where}: values must be all strings, all integers or all numbers")


def _example(features, where: str) -> tf.train.Example:
    if not isinstance(features, dict):
        raise invalid(f"{where} must be an object of features")
    return tf.train.Example(features=tf.train.Features(
        feature={name: _feature(value, f"{where} feature '{name}'") for name, value in features.items()}))


def fill_examples(body: dict, request) -> None:
    """Classify / Regress: 'examples' (and an optional shared 'context') as tf.Examples."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("the request must have a non-empty 'examples' list")
    request.model_spec.signature_name = body.get("signature_name", "")
    if "context" in body:
        target = request.input.example_list_with_context
        target.context.CopyFrom(_example(body["context"], "'context'"))
    else:
        target = request.input.example_list
    for number, features in enumerate(examples):
        target.examples.add().CopyFrom(_example(features, f"example {number}"))


# --------------------------------------------------------------------------- the API

class RestApi:
    """Maps (method, path, JSON body) to (HTTP status, JSON reply) through the gRPC services' code."""

    def __init__(self, service, manager):
        self.service, self.manager = service, manager

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        try:
            return 200, self._route(method, path, body)
        except RequestError as err:
            return HTTP_STATUS.get(err.code, 500), {"error": str(err)}
        except Exception as err:        # a bug must not take the server down, nor hide behind a 200
            log.exception("REST %s %s failed", method, path)
            return 500, {"error": f"internal error: {type(err).__name__}: {err}"}

    def _route(self, method: str, path: str, body: bytes) -> dict:
        match = ROUTE.match(path.split("?", 1)[0])
        action = match and (match["action"] or "")
        if not match or (method == "GET") != (action in ("", "/metadata")) or method not in ("GET", "POST"):
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
        spec = model_pb2.ModelSpec(name=match["name"])
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise invalid(f"version '{match['version']}' is not an integer")
            spec.version.value = int(match["version"])
        if match["label"] is not None:
            spec.version_label = match["label"]
        if action == "":
            return {"model_version_status": [
                {"version": str(s.version), "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                 "status": {"error_code": "OK", "error_message": ""}}
                for s in self.manager.status(spec).model_version_status]}
        if action == "/metadata":
            return self._metadata(spec)
        request_body = self._json(body)
        if action == ":predict":
            return self._predict(request_body, spec)
        request = (classification_pb2.ClassificationRequest() if action == ":classify"
                   else regression_pb2.RegressionRequest())
        request.model_spec.CopyFrom(spec)
        fill_examples(request_body, request)
        if action == ":classify":
            response = self.service._classify(request)
            return {"result": [[[c.label, c.score] for c in result.classes]
                               for result in response.result.classifications]}
        return {"result": [r.value for r in self.service._regress(request).result.regressions]}

    @staticmethod
    def _json(body: bytes) -> dict:
        try:
            parsed = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise invalid(f"JSON Parse error: {err}") from None
        if not isinstance(parsed, dict):
            raise invalid("the request body must be a JSON object")
        return parsed

    def _metadata(self, spec) -> dict:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(spec)
        response = self.service._metadata(request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {"model_spec": json_format.MessageToDict(response.model_spec, preserving_proto_field_name=True),
                "metadata": {"signature_def": json_format.MessageToDict(signature_map,
                                                                        preserving_proto_field_name=True)}}

    def _predict(self, body: dict, spec) -> dict:
        loaded = self.manager.get(spec)
        response = self.service._predict(predict_request(body, spec, loaded.signature_defs))
        outputs = {key: tensor_to_json(key, proto) for key, proto in sorted(response.outputs.items())}
        if "inputs" in body:
            return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        rows = len(next(iter(outputs.values())))
        return {"predictions": [{key: values[i] for key, values in outputs.items()} for i in range(rows)]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive, as TF Serving
    api: RestApi

    def _reply(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            status, reply = 400, {"error": f"invalid Content-Length {self.headers.get('Content-Length')!r}"}
            self.close_connection = True
        elif length > MAX_BODY_BYTES:
            status, reply = 413, {"error": f"request body of {length} bytes exceeds {MAX_BODY_BYTES}"}
            self.close_connection = True
        else:
            status, reply = self.api.handle(method, self.path, self.rfile.read(length) if length else b"")
        payload = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._reply("GET")

    def do_POST(self):  # noqa: N802
        self._reply("POST")

    def log_message(self, format, *args):  # noqa: A002 — requests are logged at DEBUG, not on stderr
        log.debug("REST %s", format % args)


class RestServer:
    """The REST API on its own port, served by a thread per connection."""

    def __init__(self, api: RestApi, host: str, port: int):
        handler = type("RestHandler", (_Handler,), {"api": api})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "RestServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

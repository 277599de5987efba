"""REST client for the exported model (TF Serving's JSON API), with the gRPC client's methods.

``RestScoringClient("http://host:8501", "fsdnet")`` sends the same requests as
:class:`serving.client.ScoringClient` does over gRPC: serialized tf.Examples as base64
(``serving_default``) or one string per raw feature (``predict_raw``), Classify and Regress
on feature objects. Retries on 503 (UNAVAILABLE) and on connection failures, as the gRPC
client does on UNAVAILABLE.
"""
from __future__ import annotations

import base64
import json
import http.client
import threading
import time
import urllib.parse
from typing import Optional

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from fsdnet_tf import features as names
from serving.client import RowClient


class RestError(Exception):
    """A non-200 reply: the HTTP status and TF Serving's error message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class RestScoringClient(RowClient):
    """Keeps one HTTP/1.1 connection per calling thread (keep-alive, as TF Serving allows)."""

    def __init__(self, target: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 batch_size: int = 1024, backoff: float = 0.2):
        super().__init__(model_name, timeout, retries, batch_size, backoff)
        url = urllib.parse.urlsplit(target)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"REST target {target!r} must be http(s)://HOST:PORT")
        self.target, self.scheme, self.host = target, url.scheme, url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.path = f"{url.path.rstrip('/')}/v1/models/{model_name}"
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self.host, self.port, timeout=self.timeout)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _call(self, suffix: str, body: Optional[dict] = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            try:
                connection = self._connection()
                connection.request("GET" if body is None else "POST", self.path + suffix, body=data,
                                   headers={"Content-Type": "application/json"})
                reply = connection.getresponse()
                status, payload = reply.status, reply.read()
            except (OSError, http.client.HTTPException) as err:   # refused, reset, closed: as gRPC's UNAVAILABLE
                self._drop_connection()
                if attempt == self.retries:
                    raise RestError(503, f"cannot reach {self.target}: {err}") from None
            else:
                if status == 200:
                    return json.loads(payload)
                try:
                    message = json.loads(payload).get("error", str(status))
                except (json.JSONDecodeError, AttributeError):
                    message = payload.decode(errors="replace")[:200]
                if status != 503 or attempt == self.retries:
                    raise RestError(status, message)
            time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Closes the calling thread's connection (other threads' close with them)."""
        self._drop_connection()

    # ------------------------------------------------------------------ metadata
    def status(self) -> list[tuple[int, str]]:
        reply = self._call("")
        return [(int(s["version"]), s["state"]) for s in reply["model_version_status"]]

    def signatures(self) -> dict:
        signature_map = json_format.ParseDict(self._call("/metadata")["metadata"]["signature_def"],
                                              get_model_metadata_pb2.SignatureDefMap())
        return dict(signature_map.signature_def)

    # ------------------------------------------------------------------ scoring
    def predict_body(self, rows: list[dict], raw_tensors: bool = False) -> dict:
        if raw_tensors:
            return {"signature_name": names.RAW_SIGNATURE,
                    "instances": [{f: str(r[f]) for f in self.feature_names()} for r in rows]}
        serialized = names.serialize_examples(rows, self.feature_names())
        return {"signature_name": names.PREDICT_SIGNATURE,
                "inputs": {names.EXAMPLES_INPUT: [{"b64": base64.b64encode(s).decode()} for s in serialized]}}

    def predict(self, rows: list[dict], raw_tensors: bool = False) -> np.ndarray:
        self._check_rows(rows)
        scores = []
        for batch in self._batches(rows):
            reply = self._call(":predict", self.predict_body(batch, raw_tensors))
            if raw_tensors:     # row format: one value per row, or an object per row if several outputs
                scores.append(np.asarray([p[names.PROBABILITY_OUTPUT] if isinstance(p, dict) else p
                                          for p in reply["predictions"]], np.float32))
            else:               # columnar: the output's column, or an object of columns
                outputs = reply["outputs"]
                scores.append(np.asarray(outputs[names.PROBABILITY_OUTPUT] if isinstance(outputs, dict) else outputs,
                                         np.float32))
        return np.concatenate(scores) if scores else np.zeros([0], np.float32)

    def _examples(self, rows: list[dict]) -> list[dict]:
        return [{f: str(r[f]) for f in self.feature_names()} for r in rows]

    def classify(self, rows: list[dict]) -> np.ndarray:
        """P(class 1) per row through the Classify API."""
        return np.array([dict(result)["1"] for batch in self._batches(rows)
                         for result in self._call(":classify", {"examples": self._examples(batch)})["result"]],
                        np.float32)

    def regress(self, rows: list[dict]) -> np.ndarray:
        return np.array([value for batch in self._batches(rows)
                         for value in self._call(":regress", {"examples": self._examples(batch)})["result"]],
                        np.float32)

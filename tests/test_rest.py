"""TF Serving's REST API on fsdnet-serve: the same rows get the same scores as over gRPC; bad
requests get TF Serving's HTTP codes and an {"error": ...} body, and the server keeps serving."""
import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from fsdnet_tf import features as names
from fsdnet_tf.export import export_run
from serving.client import ScoringClient, connect
from serving.latency import free_port
from serving.rest import invalid, json_to_tensor, tensor_to_json
from serving.rest_client import RestError, RestScoringClient
from serving.server import Server
from serving.versions import RequestError


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    run_dir, _, _ = trained_run
    base = tmp_path_factory.mktemp("rest_models") / "fsdnet"
    export_run(str(run_dir), str(base), "fsdnet")
    srv = Server(str(base), "fsdnet", port=free_port(), max_batch=256, rest_port=0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clients(server):
    grpc_client = ScoringClient(f"127.0.0.1:{server.port}", "fsdnet", timeout=20, batch_size=100)
    rest_client = connect(f"http://127.0.0.1:{server.rest_port}", "fsdnet", timeout=20, batch_size=100)
    yield grpc_client, rest_client
    grpc_client.close()


@pytest.fixture(scope="module")
def rows(synthetic_transform):
    lines = (synthetic_transform / "raw_sample_test.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:250]]


def http(server, method, path, body=None):
    """(status, parsed JSON) of one raw HTTP request, as curl would send it."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_connect_picks_the_transport_from_the_target(clients):
    assert isinstance(clients[1], RestScoringClient)
    assert isinstance(connect("127.0.0.1:1", "m"), ScoringClient)


def test_the_same_rows_get_the_same_scores_over_grpc_and_rest(clients, rows):
    grpc_client, rest_client = clients
    assert rest_client.feature_names() == grpc_client.feature_names()
    expected = grpc_client.predict(rows)
    np.testing.assert_array_equal(rest_client.predict(rows), expected)                    # examples, columnar
    np.testing.assert_array_equal(rest_client.predict(rows, raw_tensors=True), expected)  # raw tensors, rows
    np.testing.assert_array_equal(rest_client.classify(rows), grpc_client.classify(rows))
    np.testing.assert_array_equal(rest_client.regress(rows), grpc_client.regress(rows))
    assert rest_client.status() == grpc_client.status() == [(1, "AVAILABLE")]
    assert set(rest_client.signatures()) == set(grpc_client.signatures())


def test_curl_style_requests(server, clients, rows):
    fields = clients[0].feature_names()
    instances = [{f: r[f] for f in fields} for r in rows[:3]]
    status, reply = http(server, "POST", "/v1/models/fsdnet/versions/1:predict",
                         {"signature_name": names.RAW_SIGNATURE, "instances": instances})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(reply["predictions"], np.float32), clients[0].predict(rows[:3]))
    columns = {f: [i[f] for i in instances] for f in fields}
    status, columnar = http(server, "POST", "/v1/models/fsdnet:predict",
                            {"signature_name": names.RAW_SIGNATURE, "inputs": columns})
    assert status == 200 and columnar["outputs"] == reply["predictions"]
    status, shared = http(server, "POST", "/v1/models/fsdnet:classify",
                          {"context": {f: rows[0][f] for f in fields[1:]},
                           "examples": [{fields[0]: r[fields[0]]} for r in rows[:2]]})
    assert status == 200 and len(shared["result"]) == 2 and sorted(c for c, _ in shared["result"][0]) == ["0", "1"]
    status, model = http(server, "GET", "/v1/models/fsdnet")
    assert status == 200 and model == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    status, metadata = http(server, "GET", "/v1/models/fsdnet/versions/1/metadata")
    assert status == 200 and metadata["model_spec"]["name"] == "fsdnet"
    assert names.RAW_SIGNATURE in metadata["metadata"]["signature_def"]["signature_def"]


RAW = names.RAW_SIGNATURE


@pytest.mark.parametrize("method, path, body, code, message", [
    ("POST", "/v1/models/fsdnet:predict", b'{"instances": [', 400, "JSON Parse error"),
    ("POST", "/v1/models/fsdnet:predict", b'[1, 2]', 400, "must be a JSON object"),
    ("POST", "/v1/models/nope:predict", {"instances": [{"f0": "a"}]}, 404, "Servable not found"),
    ("POST", "/v1/models/fsdnet/versions/7:predict", {"instances": ["x"]}, 404, "version 7 is not loaded"),
    ("POST", "/v1/models/fsdnet/versions/x:predict", {"instances": ["x"]}, 400, "not an integer"),
    ("POST", "/v1/models/fsdnet/labels/stable:predict", {"instances": ["x"]}, 404, "no version label"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": "nope", "instances": ["x"]}, 404, "'nope' not found"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW}, 400, "exactly one of 'instances'"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "instances": [], "inputs": {}}, 400,
     "exactly one of"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "instances": []}, 400, "empty list"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "instances": ["a"]}, 400, "object naming"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "inputs": {"f0": ["a"]}}, 400, "missing input"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "inputs": {"zz": ["a"]}}, 400, "unknown input 'zz'"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "instances": [{"f0": "a"}, {"f1": "b"}]}, 400,
     "instance 1 has inputs"),
    ("POST", "/v1/models/fsdnet:predict", {"signature_name": RAW, "inputs": {"f0": [1, 2]}}, 400, "is not a string"),
    ("POST", "/v1/models/fsdnet:predict", {"inputs": [{"b64": "***"}]}, 400, "not base64"),
    ("POST", "/v1/models/fsdnet:predict", {"inputs": [["a"], ["b", "c"]]}, 400, "rectangular"),
    ("POST", "/v1/models/fsdnet:predict", {"inputs": [["a"], ["b"]]}, 400, "must have shape [batch]"),
    ("POST", "/v1/models/fsdnet:predict", {"inputs": [{"b64": base64.b64encode(b"junk").decode()}]}, 400, ""),
    ("POST", "/v1/models/fsdnet:classify", {"examples": []}, 400, "non-empty 'examples'"),
    ("POST", "/v1/models/fsdnet:regress", {"examples": [{"f0": [True]}]}, 400, "all strings, all integers"),
    ("POST", "/v1/models/fsdnet:classify", {"examples": [{"f0": "a"}] * 300}, 400, "> the limit 256"),
    ("GET", "/v1/models/fsdnet:predict", None, 404, "Malformed request"),
    ("POST", "/v1/models/fsdnet", {}, 404, "Malformed request"),
    ("GET", "/v2/anything", None, 404, "Malformed request"),
    ("GET", "/v1/models/other", None, 404, "Could not find any versions of model other"),
])
def test_bad_requests_get_tf_servings_codes_and_the_server_keeps_serving(server, clients, rows, method, path, body,
                                                                          code, message):
    status, reply = http(server, method, path, body)
    assert status == code and set(reply) == {"error"} and message in reply["error"], reply
    np.testing.assert_array_equal(clients[1].predict(rows[:5]), clients[0].predict(rows[:5]))


def test_a_bad_content_length_is_a_400(server, clients, rows):
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
    connection.putrequest("POST", "/v1/models/fsdnet:predict")
    connection.putheader("Content-Length", "lots")
    connection.endheaders()
    reply = connection.getresponse()
    assert reply.status == 400 and "invalid Content-Length 'lots'" in json.loads(reply.read())["error"]
    connection.close()
    np.testing.assert_array_equal(clients[1].predict(rows[:3]), clients[0].predict(rows[:3]))


def test_rest_client_reports_errors_with_status_and_message(server):
    client = RestScoringClient(f"http://127.0.0.1:{server.rest_port}", "nope", timeout=5, retries=0)
    with pytest.raises(RestError, match="HTTP 404: Could not find any versions of model nope") as err:
        client.status()
    assert err.value.status == 404
    nobody = RestScoringClient(f"http://127.0.0.1:{free_port()}", "fsdnet", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(RestError, match="HTTP 503: cannot reach"):
        nobody.status()


def test_rest_client_keeps_its_connection_and_checks_its_target(clients):
    rest_client = clients[1]
    rest_client.status()
    first = rest_client._connection()
    rest_client.status()
    assert rest_client._connection() is first       # keep-alive: one connection per thread
    with pytest.raises(ValueError, match="must be http"):
        RestScoringClient("ftp://127.0.0.1:1", "fsdnet")


def test_json_tensor_conversions():
    proto = json_to_tensor([[1, 2], [3, 4]], tf.int64.as_datatype_enum, "input 'x'")
    np.testing.assert_array_equal(tf.make_ndarray(proto), [[1, 2], [3, 4]])
    strings = json_to_tensor(["a", {"b64": base64.b64encode(b"\x00\xff").decode()}], tf.string.as_datatype_enum, "x")
    assert tf.make_ndarray(strings).tolist() == [b"a", b"\x00\xff"]
    with pytest.raises(RequestError, match="must be numbers"):
        json_to_tensor(["1"], tf.float32.as_datatype_enum, "x")
    with pytest.raises(RequestError, match="not int32 values"):
        json_to_tensor([2 ** 40], tf.int32.as_datatype_enum, "x")
    raw = tf.make_tensor_proto(np.array([b"\x00\xff"], dtype=object))
    assert tensor_to_json("image_bytes", raw) == [{"b64": "AP8="}]
    assert tensor_to_json("label", tf.make_tensor_proto(np.array([b"yes"], dtype=object))) == ["yes"]
    assert str(invalid("m")) == "m"


def test_score_cli_over_rest_writes_the_grpc_scores(server, rows, tmp_path, capsys):
    from serving.score_cli import main as score
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    for name, target in (("grpc", f"127.0.0.1:{server.port}"), ("rest", f"http://127.0.0.1:{server.rest_port}")):
        assert score(["--target", target, "--model-name", "fsdnet", "--input", str(path),
                      "--output", str(tmp_path / f"{name}.csv")]) == 0
    assert (tmp_path / "grpc.csv").read_text() == (tmp_path / "rest.csv").read_text()
    assert score(["--target", f"http://127.0.0.1:{server.rest_port}", "--model-name", "nope", "--input", str(path),
                  "--output", str(tmp_path / "o.csv")]) == 1
    assert "HTTP 404" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()

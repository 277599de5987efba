"""Export round trip and the gRPC API: every RPC, bad requests, version swap, concurrent load."""
import json
import shutil
import socket
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from helpers import vocabulary

from fsdnet_tf import features as names
from fsdnet_tf.export import ExportError, export_run
from fsdnet_tf.export import saved_model as export_module
from fsdnet_tf.training import restore_model
from serving.client import ScoringClient
from serving.server import Server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    run_dir, metrics, _ = trained_run
    base = tmp_path_factory.mktemp("models") / "fsdnet"
    summary = export_run(str(run_dir), str(base), "fsdnet")
    return run_dir, base, summary


@pytest.fixture(scope="module")
def server(exported):
    _, base, _ = exported
    srv = Server(str(base), "fsdnet", port=free_port(), max_batch=256, poll_seconds=0.2).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with ScoringClient(f"127.0.0.1:{server.port}", "fsdnet", timeout=20, batch_size=128) as c:
        yield c


@pytest.fixture(scope="module")
def rows(synthetic_transform):
    lines = (synthetic_transform / "raw_sample_test.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:300]]


def expected_scores(run_dir, transform_dir, rows, teacher=False):
    """ŷ computed without the transform graph: ids looked up in the vocabulary files by hand."""
    model, _, transform = restore_model(run_dir)
    ids = {}
    for field in transform.contract.fields:
        index = {t: i for i, t in enumerate(vocabulary(transform_dir, field))}
        ids[field] = tf.constant([index.get(r[field], len(index)) for r in rows], tf.int32)
    probabilities = model.head_probabilities(ids, training=False).numpy()
    return probabilities[:, -1] if teacher else probabilities.mean(axis=1)


def test_export_layout_and_verification(exported):
    _, base, summary = exported
    version = base / "1"
    assert summary["version"] == 1 and (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / names.WARMUP_FILE).is_file()
    assert any(p.name.startswith("vocab_") for p in (version / "assets").iterdir())
    assert summary["verification"]["examples_vs_in_memory"] <= 1e-5
    loaded = tf.saved_model.load(str(version))
    assert set(loaded.signatures) == {names.PREDICT_SIGNATURE, names.RAW_SIGNATURE,
                                      names.CLASSIFY_SIGNATURE, names.REGRESS_SIGNATURE}
    outputs = loaded.signatures[names.PREDICT_SIGNATURE].structured_outputs
    assert list(outputs) == [names.PROBABILITY_OUTPUT]   # nothing training-only is served


def test_served_scores_equal_the_trained_model(client, exported, rows, synthetic_transform):
    run_dir, _, _ = exported
    expected = expected_scores(run_dir, synthetic_transform, rows)
    np.testing.assert_allclose(client.predict(rows), expected, atol=1e-5)
    np.testing.assert_allclose(client.predict(rows, raw_tensors=True), expected, atol=1e-5)
    np.testing.assert_allclose(client.classify(rows), expected, atol=1e-5)
    np.testing.assert_allclose(client.regress(rows), expected, atol=1e-5)


def test_thread_settings_serve_the_same_scores(exported, rows, client):
    """Requests run in their own thread (inter-op -1) on one intra-op thread: the same ŷ."""
    _, base, _ = exported
    single = Server(str(base), "fsdnet", port=free_port(), intra_op_threads=1, inter_op_threads=-1).start()
    try:
        with ScoringClient(f"127.0.0.1:{single.port}", "fsdnet", timeout=20) as other:
            np.testing.assert_allclose(other.predict(rows), client.predict(rows), atol=1e-6)
    finally:
        single.stop()


def test_metadata_and_status(client):
    assert client.status() == [(1, "AVAILABLE")]
    signatures = client.signatures()
    assert signatures[names.CLASSIFY_SIGNATURE].method_name == "tensorflow/serving/classify"
    assert signatures[names.REGRESS_SIGNATURE].method_name == "tensorflow/serving/regress"
    assert set(signatures[names.RAW_SIGNATURE].inputs) == {f"f{i}" for i in range(8)}


def test_teacher_only_export(trained_run, synthetic_transform, rows, tmp_path):
    run_dir, _, _ = trained_run
    out = export_run(str(run_dir), str(tmp_path / "teacher"), "fsdnet", output="teacher_head")
    loaded = tf.saved_model.load(out["path"])
    scores = loaded.signatures[names.RAW_SIGNATURE](
        **{f: tf.constant([r[f] for r in rows]) for f in out["fields"]})[names.PROBABILITY_OUTPUT].numpy()
    np.testing.assert_allclose(scores, expected_scores(run_dir, synthetic_transform, rows, teacher=True), atol=1e-5)


def test_interrupted_export_publishes_nothing(trained_run, tmp_path, monkeypatch):
    run_dir, _, _ = trained_run
    base = tmp_path / "models"

    def broken(*args, **kwargs):
        raise ExportError("simulated failure after the SavedModel was written")
    monkeypatch.setattr(export_module, "verify", broken)
    with pytest.raises(ExportError):
        export_run(str(run_dir), str(base), "fsdnet")
    assert list(base.iterdir()) == []


def _predict(client, request):
    return client._call(client.prediction.Predict, request)


def _status(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_bad_requests_get_the_right_status(client, rows):
    base = client.predict_request(rows[:4])
    request = predict_pb2.PredictRequest()
    request.CopyFrom(base)
    request.model_spec.name = "other"
    assert _status(lambda: _predict(client, request))[0] == grpc.StatusCode.NOT_FOUND
    request.CopyFrom(base)
    request.model_spec.signature_name = "nope"
    code, details = _status(lambda: _predict(client, request))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
    request.CopyFrom(base)
    request.model_spec.version.value = 99
    assert _status(lambda: _predict(client, request))[0] == grpc.StatusCode.NOT_FOUND

    missing_feature = [{k: v for k, v in r.items() if k != "f3"} for r in rows[:2]]
    request = client.predict_request(rows[:2])
    request.inputs[names.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto([
        tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
            for k, v in r.items() if k != "label"})).SerializeToString() for r in missing_feature]))
    code, details = _status(lambda: _predict(client, request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Feature: f3 (data type: string) is required" in details

    raw = client.predict_request(rows[:3], raw_tensors=True)
    del raw.inputs["f5"]
    code, details = _status(lambda: _predict(client, raw))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "missing input 'f5'" in details

    raw = client.predict_request(rows[:3], raw_tensors=True)
    raw.inputs["f2"].CopyFrom(tf.make_tensor_proto([1, 2, 3], dtype=tf.int64))
    code, details = _status(lambda: _predict(client, raw))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "input 'f2' must be string" in details

    raw = client.predict_request(rows[:4], raw_tensors=True)
    raw.inputs["f2"].CopyFrom(tf.make_tensor_proto([["a", "b"], ["c", "d"]], dtype=tf.string))
    code, details = _status(lambda: _predict(client, raw))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "input 'f2' must have shape [batch]" in details

    empty = client.predict_request(rows[:1])
    empty.inputs[names.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto([], dtype=tf.string))
    code, details = _status(lambda: _predict(client, empty))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "empty batch" in details

    big = client.predict_request(rows[:1] * 257)
    code, details = _status(lambda: _predict(client, big))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "257 > the limit 256" in details

    garbage = client.predict_request(rows[:1])
    garbage.inputs[names.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto([b"\x01not a proto"], dtype=tf.string))
    assert _status(lambda: _predict(client, garbage))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert client.status() == [(1, "AVAILABLE")]   # the server is still up


def test_unseen_categories_get_a_valid_score(client, rows):
    unseen = [{**r, "f0": "never-seen", "f7": ""} for r in rows[:5]]
    scores = client.predict(unseen)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


def test_concurrent_load_has_no_errors(client, rows):
    errors, done = [], []

    def worker(offset):
        for i in range(500):
            try:
                done.append(client.predict([rows[(offset + i) % len(rows)]])[0])
            except Exception as err:   # any failure is a test failure, counted
                errors.append(err)
    threads = [threading.Thread(target=worker, args=(k * 37,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(done) == 4000


def test_version_swap_while_a_client_keeps_sending(client, server, exported, rows):
    _, base, _ = exported
    failures, versions, stop = [], set(), threading.Event()

    def keep_sending():
        request = client.predict_request(rows[:16])
        while not stop.is_set():
            try:
                versions.add(_predict(client, request).model_spec.version.value)
            except Exception as err:
                failures.append(err)
    sender = threading.Thread(target=keep_sending)
    sender.start()
    staging = base / ".staging-2"
    shutil.copytree(base / "1", staging)
    staging.rename(base / "2")          # publish as an exporter does: rename into place
    deadline = threading.Event()
    for _ in range(300):
        if server.manager.current().version == 2:
            break
        deadline.wait(0.1)
    deadline.wait(0.5)
    stop.set()
    sender.join()
    assert failures == [] and versions == {1, 2}
    assert client.status() == [(2, "AVAILABLE")]


def test_score_cli_round_trip_and_bad_inputs(server, rows, tmp_path, capsys):
    from serving.score_cli import main as score
    target = ["--target", f"127.0.0.1:{server.port}", "--model-name", "fsdnet"]
    good = tmp_path / "rows.csv"
    fields = [f"f{i}" for i in range(8)]
    good.write_text(",".join(fields + ["id"]) + "\n" + "".join(
        ",".join([r[f] for f in fields] + [str(i)]) + "\n" for i, r in enumerate(rows[:20])))
    assert score(target + ["--input", str(good), "--output", str(tmp_path / "out.csv")]) == 0
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].endswith(",id,probability") and len(lines) == 21
    assert score(target + ["--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv")]) == 2
    bad_json = tmp_path / "rows.jsonl"
    bad_json.write_text('{"f0": "v1"\n')
    assert score(target + ["--input", str(bad_json), "--output", str(tmp_path / "o.csv")]) == 2
    missing = tmp_path / "missing.csv"
    missing.write_text("f0,f1\nv1,v2\n")
    assert score(target + ["--input", str(missing), "--output", str(tmp_path / "o.csv")]) == 2
    assert "rows lack feature(s) ['f2'" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_export_of_an_unfinished_run_is_a_clear_error(tmp_path):
    from serving.export_cli import main as export
    (tmp_path / "run").mkdir()
    assert export(["--run-dir", str(tmp_path / "run"), "--model-base-path", str(tmp_path / "m")]) == 2


def test_serving_an_empty_base_path_is_a_clear_error(tmp_path, capsys):
    from serving.serve_cli import main as serve
    (tmp_path / "models" / ".export-unfinished").mkdir(parents=True)   # only a staging dir
    assert serve(["--model-base-path", str(tmp_path / "models"), "--model-name", "m", "--port", "0"]) == 2
    assert "no servable version under" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--intra-op-threads", "-1"), ("--inter-op-threads", "-2")])
def test_bad_thread_settings_are_a_clear_error(flag, value, tmp_path, capsys):
    from serving.serve_cli import main as serve
    with pytest.raises(SystemExit) as exit_info:
        serve(["--model-base-path", str(tmp_path), "--model-name", "m", flag, value])
    assert exit_info.value.code == 2
    assert f"{flag} must be" in capsys.readouterr().err

"""The Kubernetes manifests in docker/k8s are valid objects of the Kubernetes API (checked field by
field against the `kubernetes` client's models, then built by its deserializer) and fit together:
selectors, ports, probes, the autoscaler's target, TF_CONFIG per worker, the trainer's arguments."""
import json
import re

import pytest
import yaml

from conftest import REPO

from kubernetes import client as k8s

MANIFESTS = sorted((REPO / "docker" / "k8s").glob("*.yaml"))
MODELS = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service",
          ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler", ("batch/v1", "Job"): "V1Job"}
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "date": str}


def schema_problems(value, type_name: str, path: str) -> list[str]:
    """Unknown keys and wrongly typed values, against the client's openapi_types (recursively)."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, item in enumerate(value) for p in schema_problems(item, type_name[5:-1], f"{path}[{i}]")]
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [p for k, v in value.items() for p in schema_problems(v, inner, f"{path}.{k}")]
    if type_name == "object":           # IntOrString, Quantity
        return [] if isinstance(value, (str, int)) else [f"{path}: expected a string or an integer"]
    if type_name in SCALARS:
        ok = isinstance(value, SCALARS[type_name]) and not (type_name != "bool" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    by_json = {json_key: attribute for attribute, json_key in model.attribute_map.items()}
    problems = [f"{path}.{key}: not a field of {type_name}" for key in value if key not in by_json]
    return problems + [p for key, v in value.items() if key in by_json
                       for p in schema_problems(v, model.openapi_types[by_json[key]], f"{path}.{key}")]


def documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def test_every_manifest_is_a_valid_api_object():
    docs = documents()
    assert {doc["kind"] for _, doc in docs} == {"Deployment", "Service", "HorizontalPodAutoscaler", "Job"}
    api = k8s.ApiClient()
    for name, doc in docs:
        model = MODELS[(doc["apiVersion"], doc["kind"])]
        assert schema_problems(doc, model, f"{name}:{doc['kind']}") == []
        built = api._ApiClient__deserialize(doc, model)      # the client's own typed build (required fields)
        assert built.metadata.name == doc["metadata"]["name"]


def test_schema_check_catches_unknown_keys_and_wrong_types():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "lables": {}},
           "spec": {"ports": [{"port": "8500"}]}}
    assert schema_problems(bad, "V1Service", "s") == ["s.metadata.lables: not a field of V1ObjectMeta",
                                                      "s.spec.ports[0].port: expected int, got '8500'"]
    nameless = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}}
    assert schema_problems(nameless, "V1Job", "j") == []
    with pytest.raises(ValueError, match="name"):                # a required field, found by the client's build
        k8s.ApiClient()._ApiClient__deserialize(nameless, "V1Job")


def test_serving_objects_fit_together_and_with_the_model_config():
    (deployment,), (hpa,) = by_kind("Deployment"), by_kind("HorizontalPodAutoscaler")
    service = next(s for s in by_kind("Service") if s["metadata"]["name"] == deployment["metadata"]["name"])
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}          # docker/serving.Dockerfile's --port, --rest_api_port
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    config = (REPO / "serving" / "configs" / "models.config").read_text()
    model_name, base_path = re.search(r'name: "(\w+)"', config)[1], re.search(r'base_path: "([^"]+)"', config)[1]
    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": f"/v1/models/{model_name}/metadata", "port": "http"}
    (mount,) = container["volumeMounts"]
    assert base_path.startswith(mount["mountPath"] + "/") and mount["readOnly"]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {mount["name"]}
    assert container["resources"]["requests"]["cpu"]      # the autoscaler's utilisation needs a request
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment",
                                                                     deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert container["image"].split(":")[0] in (REPO / "docker" / "serving.Dockerfile").read_text()


def test_training_job_gives_each_worker_its_tf_config(capsys):
    (job,) = by_kind("Job")
    pod = job["spec"]["template"]["spec"]
    headless = next(s for s in by_kind("Service") if s["metadata"]["name"] == pod["subdomain"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert job["spec"]["completionMode"] == "Indexed"
    workers = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == workers == 2
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert list(env) == ["WORKER_INDEX", "TF_CONFIG"]      # $(WORKER_INDEX) must be defined before its use
    assert "job-completion-index" in env["WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    port = headless["spec"]["ports"][0]["port"]
    for index in range(workers):
        tf_config = json.loads(env["TF_CONFIG"]["value"].replace("$(WORKER_INDEX)", str(index)))
        assert tf_config["task"] == {"type": "worker", "index": index}
        assert tf_config["cluster"]["worker"] == [f"{job['metadata']['name']}-{i}.{pod['subdomain']}:{port}"
                                                  for i in range(workers)]
    assert port in {p["containerPort"] for p in container["ports"]}
    # The image's entry point is fsdnet-train (docker/train-gpu.Dockerfile): its parser and config accept the args.
    assert 'ENTRYPOINT ["fsdnet-train"]' in (REPO / "docker" / "train-gpu.Dockerfile").read_text()
    from fsdnet_tf.training.cli import main as train
    assert train(container["args"] + ["--print-config"]) == 0
    assert "mixed_precision: true" in capsys.readouterr().out
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    args = dict(zip(container["args"][::2], container["args"][1::2]))
    assert all(any(args[flag].startswith(m + "/") for m in mounts) for flag in ("--transform-dir", "--run-dir"))

"""Export a trained run as one TF Serving SavedModel scoring raw features (SPEC §8).

The served graph is the tf.Transform graph followed by the model; it returns one
output, ``probability``: the model's served prediction ŷ (``output="prediction"``; for
FSD models the mean of the heads' probabilities) or a named alternative such as
``teacher_head`` (the deepest head alone). Other logits, representations and the loss
exist only in training and are not part of it.

Signatures (names in :mod:`fsdnet_tf.features`):
  serving_default  examples: serialized tf.Example [B] → probability [B]
  predict_raw      one string tensor [B] per raw feature → probability [B]
  classification   inputs: serialized tf.Example [B] → classes [B,2], scores [B,2]
  regression       inputs: serialized tf.Example [B] → outputs [B]
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import uuid
import numpy as np
import tensorflow as tf

from fsdnet_tf import features as names
from fsdnet_tf.data.transform_output import TransformDir
from fsdnet_tf.features import FeatureContract, serialize_examples
from fsdnet_tf.models import ParallelCTRModel, count_parameters

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5
WARMUP_REQUESTS = 20
METHOD_NAMES = {names.CLASSIFY_SIGNATURE: "tensorflow/serving/classify",
                names.REGRESS_SIGNATURE: "tensorflow/serving/regress"}


class ExportError(RuntimeError):
    """The export could not be verified; nothing was published."""


HEADS_ALIASES = {"all": "prediction", "teacher": "teacher_head"}


def served_outputs(model: ParallelCTRModel) -> tuple[str, ...]:
    return ("prediction",) + (("teacher_head",) if model.readout == "per_layer_heads" else ())


class ServingModule(tf.Module):
    def __init__(self, model: ParallelCTRModel, tft_layer, contract: FeatureContract, output: str = "prediction"):
        super().__init__(name="fsdnet_serving")
        if output not in served_outputs(model):
            raise ExportError(f"--output {output!r}: model {model.cfg.type} serves "
                              f"{' or '.join(served_outputs(model))}")
        self.model, self.tft_layer, self.contract, self.output = model, tft_layer, contract, output
        self.raw_spec = contract.raw_feature_spec(with_label=False)

    def score_raw(self, raw: dict) -> tf.Tensor:
        transformed = self.tft_layer(raw)
        outputs = self.model.named_outputs({f: transformed[f] for f in self.contract.fields}, training=False)
        return outputs.prediction if self.output == "prediction" else outputs.alternatives[self.output]

    def score_examples(self, examples: tf.Tensor) -> tf.Tensor:
        return self.score_raw(tf.io.parse_example(examples, self.raw_spec))

    def signatures(self) -> dict:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.EXAMPLES_INPUT)])
        def serve_examples(examples):
            return {names.PROBABILITY_OUTPUT: self.score_examples(examples)}

        raw_specs = {f: tf.TensorSpec([None], tf.string, name=f) for f in self.contract.fields}

        @tf.function(input_signature=[raw_specs])
        def serve_raw(raw):
            return {names.PROBABILITY_OUTPUT: self.score_raw(raw)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.CLASSIFY_REGRESS_INPUT)])
        def classify(inputs):
            p = self.score_examples(inputs)
            batch = tf.shape(p)[0]
            return {names.CLASSIFY_CLASSES_OUTPUT: tf.tile(tf.constant([["0", "1"]]), [batch, 1]),
                    names.CLASSIFY_SCORES_OUTPUT: tf.stack([1.0 - p, p], axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=names.CLASSIFY_REGRESS_INPUT)])
        def regress(inputs):
            return {names.REGRESS_OUTPUT: self.score_examples(inputs)}

        return {names.PREDICT_SIGNATURE: serve_examples, names.RAW_SIGNATURE: serve_raw.get_concrete_function(),
                names.CLASSIFY_SIGNATURE: classify, names.REGRESS_SIGNATURE: regress}


def raw_tensors(rows: list[dict], contract: FeatureContract) -> dict:
    return {f: tf.constant([str(r[f]) for r in rows], tf.string) for f in contract.fields}


def load_raw_sample(transform: TransformDir) -> list[dict]:
    path = transform.path / "raw_sample_test.jsonl"
    if not path.is_file():
        raise ExportError(f"{path} is missing: re-run fsdnet-transform to get the raw test sample")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _set_method_names(export_dir: pathlib.Path) -> None:
    """tf.saved_model.save marks every signature 'predict'; TF Serving's Classify and
    Regress APIs accept only signatures marked classify / regress."""
    from tensorflow.core.protobuf import saved_model_pb2
    path = export_dir / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in proto.meta_graphs:
        for key, method in METHOD_NAMES.items():
            meta_graph.signature_def[key].method_name = method
    path.write_bytes(proto.SerializeToString())


def _write_warmup(export_dir: pathlib.Path, examples: list[bytes], model_name: str) -> None:
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    extra = export_dir / "assets.extra"
    extra.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / names.WARMUP_FILE)) as writer:
        for size in (1, 8, 64):
            for start in range(0, min(len(examples), WARMUP_REQUESTS * size), size * 4):
                batch = examples[start:start + size]
                if len(batch) < size:
                    break
                request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                    name=model_name, signature_name=names.PREDICT_SIGNATURE))
                request.inputs[names.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
                log_entry = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log_entry.SerializeToString())


def verify(export_dir: pathlib.Path, module: ServingModule, rows: list[dict]) -> dict:
    """Reload the SavedModel; its ŷ must equal the in-memory model's and both signatures agree."""
    contract = module.contract
    expected = module.score_raw(raw_tensors(rows, contract)).numpy()
    loaded = tf.saved_model.load(str(export_dir))
    examples = tf.constant(serialize_examples(rows, contract.fields))
    by_example = loaded.signatures[names.PREDICT_SIGNATURE](examples=examples)[names.PROBABILITY_OUTPUT].numpy()
    by_raw = loaded.signatures[names.RAW_SIGNATURE](**raw_tensors(rows, contract))[names.PROBABILITY_OUTPUT].numpy()
    regress = loaded.signatures[names.REGRESS_SIGNATURE](inputs=examples)[names.REGRESS_OUTPUT].numpy()
    differences = {"examples_vs_in_memory": float(np.max(np.abs(by_example - expected))),
                   "raw_vs_examples": float(np.max(np.abs(by_raw - by_example))),
                   "regress_vs_examples": float(np.max(np.abs(regress - by_example)))}
    worst = max(differences, key=differences.get)
    if differences[worst] > PARITY_TOLERANCE:
        raise ExportError(f"export check failed: max |Δ| {worst} = {differences[worst]:.3g} > {PARITY_TOLERANCE}")
    return {"rows": len(rows), **differences}


def next_version(base: pathlib.Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.exists() else []
    return max(versions, default=0) + 1


def export_run(run_dir: str, model_base_path: str, model_name: str = "fsdnet", output: str = "prediction") -> dict:
    """Export, verify, then publish atomically as the next version. Returns a summary."""
    import tensorflow_transform as tft

    from fsdnet_tf.training import restore_model
    model, config, transform = restore_model(run_dir, for_serving=True)
    module = ServingModule(model, tft.TFTransformOutput(str(transform.path)).transform_features_layer(),
                           transform.contract, output)
    rows = load_raw_sample(transform)
    base = pathlib.Path(model_base_path).resolve()
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".export-{uuid.uuid4().hex[:12]}"
    try:
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        _set_method_names(staging)
        _write_warmup(staging, serialize_examples(rows, transform.contract.fields), model_name)
        check = verify(staging, module, rows)
        metrics = json.loads((pathlib.Path(run_dir) / "metrics.json").read_text())
        teacher = model.head_names.index(model.prediction_heads[-1])
        test = metrics["test"] if output == "prediction" else metrics["test"]["heads"][teacher]
        description = {"model": config.model.type, "output": output, "dataset": config.dataset.name,
                       "run_dir": str(pathlib.Path(run_dir).resolve()), "fields": list(transform.contract.fields),
                       "parameters": count_parameters(model),
                       "test": {"auc": test["auc"], "logloss": test["logloss"]}, "verification": check}
        (staging / "assets.extra" / "fsdnet_model.json").write_text(json.dumps(description, indent=2) + "\n")
        while True:
            version = next_version(base)
            try:
                os.rename(staging, base / str(version))   # fails if another export took the number
                break
            except OSError:
                if (base / str(version)).exists():
                    continue
                raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"version": version, "path": str(base / str(version)), **description}

"""The tf.Transform pipeline: raw logs → vocabulary-encoded TFRecords + transform graph.

Output layout (``--output DIR``)::

    transform_fn/ transformed_metadata/   tf.Transform graph (vocabularies in assets/)
    raw_metadata/                         schema of the raw features
    data/{train,valid,test}-*.tfrecord.gz transformed tf.Examples
    dead_letter/{split}-*.jsonl           rejected rows: reason and the raw line
    raw_sample_test.jsonl                 up to 1000 raw test rows (deterministic sample)
    config.yaml                           the resolved dataset config
    stats.json                            counts, vocabulary sizes, OOV rates, timing

Everything is written under a temporary sibling directory that is renamed into
place only after the run succeeded, so an interrupted run never leaves output
that looks complete. Vocabularies are fitted on train only.
"""
from __future__ import annotations

from fsdnet_tf import _env  # noqa: F401  (before TensorFlow)

import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from typing import Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from fsdnet_tf.config import SPLITS, DatasetConfig, dump_config
from fsdnet_tf.features import LABEL_KEY, FeatureContract, vocabulary_name
from pipelines.example_encoding import ExampleEncoder
from pipelines.inputs import check_arguments
from pipelines.local_runner import local_process_runner, local_workers, with_runner_defaults
from pipelines.reading import (METRIC_NAMESPACE, SPLIT_COLUMN, DataError, arrow_schema, input_files,
                               load_movielens_tables, read_and_parse)

log = logging.getLogger("fsdnet_tf.transform")


def input_bytes(ds: DatasetConfig, data_dir: Optional[str]) -> int:
    """The total size of the raw input files (0 for the synthetic generator)."""
    paths = [path for paths in input_files(ds, data_dir).values() for path in paths]
    return sum(FileSystems.match([path])[0].metadata_list[0].size_in_bytes for path in paths)


RAW_SAMPLE_ROWS = 1000
RAW_SAMPLE_FILE = "raw_sample_test.jsonl"
# zlib level 1 writes ~4x faster than the default level 6 for ~40 % larger files.
TFRECORD_OPTIONS = dict(compression_type="GZIP", compression_level=1)


def raw_test_rows(batch: pa.RecordBatch) -> list[dict]:
    """The test rows of a parsed raw RecordBatch as {field: str, label: int}."""
    codes = batch.column(batch.schema.get_field_index(SPLIT_COLUMN)).flatten().to_numpy()
    batch = batch.filter(pa.array(codes == SPLITS.index("test")))
    columns = {name: batch.column(i).flatten().to_pylist() for i, name in enumerate(batch.schema.names)
               if name != SPLIT_COLUMN}
    return [{k: (v[i] if k == LABEL_KEY else v[i].decode("utf-8", "backslashreplace"))
             for k, v in columns.items()} for i in range(batch.num_rows)]


def _row_digest(row: dict) -> bytes:
    return hashlib.blake2b(json.dumps(row, sort_keys=True).encode(), digest_size=8).digest()


def write_raw_sample(rows: list[dict], path: str) -> None:
    """A deterministic sample of raw test rows (for export checks, warmup and examples)."""
    with FileSystems.create(path) as handle:
        for row in sorted(rows, key=_row_digest):
            handle.write((json.dumps(row, sort_keys=True) + "\n").encode())


# --------------------------------------------------------------------------- outputs

def vocabulary_sizes(transform_fn_dir: str, contract: FeatureContract) -> dict[str, int]:
    """Count the lines of each vocabulary asset of a (possibly temporary) transform graph."""
    sizes = {}
    for field in contract.fields:
        with FileSystems.open(FileSystems.join(transform_fn_dir, "assets", vocabulary_name(field))) as handle:
            sizes[field] = sum(1 for _ in handle)
    return sizes


class EncodeAndWrite(beam.DoFn):
    """Transformed RecordBatches of all splits → gzipped TFRecord files of tf.Examples,
    one per split per bundle.

    A batch's records are serialized together (:mod:`pipelines.example_encoding`) and written
    by TensorFlow's C++ writer, not as one Beam element each (which cost more than everything
    else together). Each bundle writes temporary files and emits ``(split, path)``; only paths
    of committed bundles reach :func:`finalize_shards`, so a retried bundle cannot duplicate
    rows. Also counts written rows and OOV ids per split and field.
    """

    def __init__(self, contract: FeatureContract, directory: str):
        self.contract, self.directory = contract, directory
        self.columns = list(contract.transformed_feature_spec())
        self.written = {s: Metrics.counter(METRIC_NAMESPACE, f"written.{s}") for s in SPLITS}
        self.oov = {s: {f: Metrics.counter(METRIC_NAMESPACE, f"oov.{s}.{f}") for f in contract.fields}
                    for s in SPLITS}

    def setup(self):
        self.encoder = ExampleEncoder(self.columns)

    def start_bundle(self):
        self.writers: dict = {}

    def process(self, batch_and_passthrough, vocab_sizes):
        batch = batch_and_passthrough[0]
        codes = batch.column(batch.schema.get_field_index(SPLIT_COLUMN)).flatten().to_numpy()
        columns = [one_value_per_row(batch, name) for name in self.columns]
        present = np.unique(codes)
        for code in present:
            rows = codes == code
            self._write(SPLITS[code], columns if len(present) == 1 else [c[rows] for c in columns], vocab_sizes)

    def _write(self, split: str, columns: list[np.ndarray], vocab_sizes: dict) -> None:
        import tensorflow as tf
        for field, ids in zip(self.columns, columns):
            if field in vocab_sizes:
                self.oov[split][field].inc(int(np.count_nonzero(ids >= vocab_sizes[field])))
        if split not in self.writers:
            path = FileSystems.join(self.directory, f".{split}-{uuid.uuid4().hex}.tfrecord.gz")
            self.writers[split] = (tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(**TFRECORD_OPTIONS)), path)
        writer = self.writers[split][0]
        records, offsets = self.encoder.encode(columns)
        records, offsets = records.tobytes(), offsets.tolist()
        for start, end in zip(offsets[:-1], offsets[1:]):
            writer.write(records[start:end])
        self.written[split].inc(len(columns[0]))

    def finish_bundle(self):
        for split, (writer, path) in self.writers.items():
            writer.close()
            yield WindowedValue((split, path), MIN_TIMESTAMP, [GlobalWindow()])


def one_value_per_row(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """A transformed column's values: the transform graph gives every record exactly one id."""
    column = batch.column(batch.schema.get_field_index(name))
    if column.null_count or not (column.value_lengths().to_numpy(zero_copy_only=False) == 1).all():
        raise ValueError(f"transformed feature {name!r} has records without exactly one value")
    return column.flatten().to_numpy()


def finalize_shards(split_and_paths: tuple[str, list[str]], directory: str) -> None:
    """Rename one split's committed temporary files to ``{split}-NNNNN-of-MMMMM.tfrecord.gz``."""
    split, temp_paths = split_and_paths[0], list(split_and_paths[1])
    total = len(temp_paths)
    FileSystems.rename(sorted(temp_paths), [
        FileSystems.join(directory, f"{split}-{i:05d}-of-{total:05d}.tfrecord.gz") for i in range(total)])


# --------------------------------------------------------------------------- pipeline

def build_and_run(ds: DatasetConfig, data_dir: Optional[str], work_dir: str,
                  beam_args: list[str]) -> dict:
    """Build and run the pipeline writing into ``work_dir``; return the metric counts."""
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx_bsl.public import tfxio

    from fsdnet_tf.data.preprocessing import make_preprocessing_fn

    contract = FeatureContract.from_dataset(ds)
    raw_schema = schema_utils.schema_from_feature_spec(contract.raw_feature_spec())
    tensor_adapter_config = tfxio.TensorAdapterConfig(arrow_schema(contract),
                                                      _dense_representations(contract))
    movielens_tables = load_movielens_tables(ds, data_dir) if ds.format == "movielens" else None
    options = PipelineOptions(beam_args)
    stripes = local_workers(options)
    records_dir = os.path.join(work_dir, "data")
    FileSystems.mkdirs(records_dir)
    with beam.Pipeline(runner=local_process_runner(options), options=options) as pipeline, tft_beam.Context(
            temp_dir=os.path.join(work_dir, "tmp"), force_tf_compat_v1=False, passthrough_keys={SPLIT_COLUMN}):
        # The input is read twice: once for the analysis of train, and again for the transform,
        # whose read runs only once the transform graph exists. Reading once would make the
        # runner hold every parsed row between the two (memory growing with the data).
        analysed, _ = read_and_parse(pipeline, ds, data_dir, contract, movielens_tables, splits=("train",),
                                     accounting=False, stage="Analysis", compressed_stripes=stripes)
        parsed, dead_letters = read_and_parse(pipeline, ds, data_dir, contract, movielens_tables,
                                              compressed_stripes=stripes)
        for split in SPLITS:
            _ = (dead_letters[split]
                 | f"WriteDeadLetter{split}" >> beam.io.WriteToText(
                     os.path.join(work_dir, "dead_letter", split), file_name_suffix=".jsonl"))

        preprocessing_fn = make_preprocessing_fn(contract, ds.min_frequency)
        transform_fn = ((analysed, tensor_adapter_config)
                        | "Analyze" >> tft_beam.AnalyzeDataset(preprocessing_fn))
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(work_dir)
        vocab_sizes = beam.pvalue.AsSingleton(
            transform_fn[0] | "VocabSizes" >> beam.Map(vocabulary_sizes, contract))
        _ = (parsed
             | "RawRows" >> beam.FlatMap(raw_test_rows)
             | "SampleRaw" >> beam.combiners.Top.Of(RAW_SAMPLE_ROWS, key=_row_digest, reverse=True)
             | "WriteRawSample" >> beam.Map(write_raw_sample, os.path.join(work_dir, RAW_SAMPLE_FILE)))
        transformed, _ = (((parsed, tensor_adapter_config), transform_fn)
                          | "Transform" >> tft_beam.TransformDataset(output_record_batches=True))
        _ = (transformed
             | "Write" >> beam.ParDo(EncodeAndWrite(contract, records_dir), vocab_sizes)
             | "ShardsPerSplit" >> beam.GroupByKey()
             | "Finalize" >> beam.Map(finalize_shards, records_dir))
    result = pipeline.result
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(raw_schema),
                               os.path.join(work_dir, "raw_metadata"))
    counters = result.metrics().query(MetricsFilter().with_namespace(METRIC_NAMESPACE))["counters"]
    counts = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + value
    return counts


def _dense_representations(contract: FeatureContract) -> dict:
    from tensorflow_metadata.proto.v0 import schema_pb2
    reps = {}
    for name in list(contract.fields) + [LABEL_KEY]:
        rep = schema_pb2.TensorRepresentation()
        rep.dense_tensor.column_name = name
        rep.dense_tensor.shape.SetInParent()
        reps[name] = rep
    return reps


def make_stats(ds: DatasetConfig, counts: dict, vocab_sizes: dict, seconds: float) -> dict:
    contract = FeatureContract.from_dataset(ds)
    splits = {}
    for split in SPLITS:
        read, written, rejected = (counts.get(f"{k}.{split}", 0) for k in ("read", "written", "rejected"))
        if read != written + rejected:
            raise RuntimeError(f"split {split}: read {read} != written {written} + rejected {rejected}")
        splits[split] = {"read": read, "written": written, "rejected": rejected}
    oov = {split: {f: (counts.get(f"oov.{split}.{f}", 0) / splits[split]["written"]
                       if splits[split]["written"] else 0.0) for f in contract.fields} for split in SPLITS}
    total = sum(s["read"] for s in splits.values())
    return {"dataset": ds.name, "splits": splits, "vocab_size": vocab_sizes, "oov_rate": oov,
            "num_oov_buckets": ds.num_oov_buckets, "min_frequency": ds.min_frequency,
            "seconds": round(seconds, 3), "rows_per_second": round(total / seconds, 1) if seconds else None}


def run_transform(ds: DatasetConfig, data_dir: Optional[str], output: str,
                  beam_args: Optional[list[str]] = None, overwrite: bool = False) -> dict:
    """Run the pipeline and atomically publish ``output``; return the stats."""
    check_arguments(ds, data_dir, output, overwrite)
    output_path = pathlib.Path(output).resolve()
    beam_args = with_runner_defaults(list(beam_args or []), input_bytes(ds, data_dir))
    log.info("Beam: %s", " ".join(a for a in beam_args if a.startswith(("--runner", "--direct_"))))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f".{output_path.name}.tmp-", dir=output_path.parent))
    started = time.perf_counter()
    try:
        counts = build_and_run(ds, data_dir, str(work_dir), beam_args)
        seconds = time.perf_counter() - started
        shutil.rmtree(work_dir / "tmp", ignore_errors=True)
        contract = FeatureContract.from_dataset(ds)
        stats = make_stats(ds, counts, vocabulary_sizes(str(work_dir / "transform_fn"), contract), seconds)
        for split, figures in stats["splits"].items():
            if figures["read"] and not figures["written"]:
                raise DataError(f"all {figures['read']} rows of split {split} were rejected: the data "
                                f"does not match config {ds.name} (first reasons are in the log above)")
        (work_dir / "config.yaml").write_text(dump_config(ds))
        (work_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        _publish(work_dir, output_path)
        return stats
    except BaseException:
        _log_dead_letters(work_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
        raise


def _log_dead_letters(work_dir: pathlib.Path, most: int = 3) -> None:
    shown = 0
    for path in sorted((work_dir / "dead_letter").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if shown < most:
                log.error("rejected row: %s", line[:300])
                shown += 1


def _publish(work_dir: pathlib.Path, output: pathlib.Path) -> None:
    if output.exists():
        trash = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(output, trash)
        os.replace(work_dir, output)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(work_dir, output)


# --------------------------------------------------------------------------- CLI

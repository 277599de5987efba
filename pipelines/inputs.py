"""Checks of the transform's arguments and input files that need neither Beam nor TensorFlow,
so that fsdnet-transform reports a mistake before its heavy imports."""
from __future__ import annotations

import glob
import os
import pathlib
from typing import Optional

from fsdnet_tf.config import SPLITS, DatasetConfig


class DataError(ValueError):
    """The input data cannot be processed as configured (missing, empty, mismatched)."""


def check_arguments(ds: DatasetConfig, data_dir: Optional[str], output: str, overwrite: bool) -> None:
    output_path = pathlib.Path(output).resolve()
    if output_path.exists() and not overwrite:
        raise DataError(f"output {output_path} already exists (pass --overwrite to replace it)")
    if ds.format != "synthetic" and not data_dir:
        raise DataError(f"dataset {ds.name} needs --data-dir")


def input_names(ds: DatasetConfig) -> list[str]:
    """The file names (or glob patterns) the dataset reads, relative to its data directory."""
    if ds.format == "synthetic":
        return []
    if ds.splits.files is not None:
        return [ds.splits.files[split] for split in SPLITS]
    if ds.format == "movielens":
        return [ds.movielens.ratings, ds.movielens.users, ds.movielens.movies]
    return [ds.splits.source]


def check_local_inputs(ds: DatasetConfig, data_dir: Optional[str]) -> None:
    """Every input file exists, when the data directory is local (remote ones are Beam's to check)."""
    if not data_dir or "://" in data_dir:
        return
    for name in input_names(ds):
        pattern = os.path.join(data_dir, name)
        if not glob.glob(pattern):
            raise DataError(f"input file {pattern} does not exist")

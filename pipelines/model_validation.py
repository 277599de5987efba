"""The pipeline's gate and publish steps: compare a candidate SavedModel with the one being
served on held-out rows, and copy an approved candidate into the serving base path.

``validate`` scores the same labelled raw rows (the transform's test sample) with both
models' ``predict_raw`` signature and approves the candidate unless its AUC is more than
``max_auc_drop`` below the served model's. ``push`` publishes the candidate as the next
integer version the way fsdnet-export does: written beside the versions under a hidden
name, then renamed, so TF Serving never sees half a version.
"""
from __future__ import annotations

import logging
import os
import pathlib
import shutil
import numpy as np

from fsdnet_tf.preflight import newest_version

log = logging.getLogger("fsdnet_tf.pipeline")


def labelled_rows(transform_dir: str | pathlib.Path) -> list[dict]:
    """The transform's raw test sample (each row with its label), as the export checks read it."""
    from fsdnet_tf.data.transform_output import TransformDir
    from fsdnet_tf.export.saved_model import load_raw_sample
    return load_raw_sample(TransformDir(transform_dir))


def version_auc(version_dir: pathlib.Path, rows: list[dict]) -> float:
    """AUC of one SavedModel version on raw rows, through its raw-tensor signature."""
    import tensorflow as tf

    from fsdnet_tf import features as names
    from fsdnet_tf.metrics import roc_auc
    signature = tf.saved_model.load(str(version_dir)).signatures[names.RAW_SIGNATURE]
    inputs = {name: tf.constant([str(r[name]) for r in rows]) for name in signature.structured_input_signature[1]}
    scores = signature(**inputs)[names.PROBABILITY_OUTPUT].numpy()
    return roc_auc(np.array([r["label"] for r in rows]), scores)


def validate(candidate_base: str | pathlib.Path, serving_base: str | pathlib.Path, rows: list[dict],
             max_auc_drop: float) -> dict:
    candidate = newest_version(candidate_base)
    if candidate is None:
        raise FileNotFoundError(f"no SavedModel version under {candidate_base}")
    candidate_auc = version_auc(pathlib.Path(candidate_base) / str(candidate), rows)
    served = newest_version(serving_base)
    if served is None:
        return {"approved": True, "candidate_auc": candidate_auc, "served_auc": None, "served_version": None,
                "reason": f"nothing is served under {serving_base} yet"}
    try:
        served_auc = version_auc(pathlib.Path(serving_base) / str(served), rows)
    except (KeyError, TypeError, ValueError) as err:     # the served model reads other features
        return {"approved": False, "candidate_auc": candidate_auc, "served_auc": None, "served_version": served,
                "reason": f"the served version {served} cannot score these rows ({type(err).__name__}: {err})"}
    approved = candidate_auc >= served_auc - max_auc_drop
    return {"approved": approved, "candidate_auc": candidate_auc, "served_auc": served_auc, "served_version": served,
            "reason": (f"candidate AUC {candidate_auc:.5f} vs served version {served} {served_auc:.5f} "
                       f"(allowed drop {max_auc_drop})")}


def push(candidate_base: str | pathlib.Path, serving_base: str | pathlib.Path) -> int:
    """Copy the candidate's newest version into ``serving_base`` as its next version; return it."""
    candidate = newest_version(candidate_base)
    if candidate is None:
        raise FileNotFoundError(f"no SavedModel version under {candidate_base}")
    serving = pathlib.Path(serving_base)
    serving.mkdir(parents=True, exist_ok=True)
    version = (newest_version(serving) or 0) + 1
    staging = serving / f".push-unfinished-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(pathlib.Path(candidate_base) / str(candidate), staging)
    os.rename(staging, serving / str(version))
    log.info("pushed %s/%d as %s/%d", candidate_base, candidate, serving, version)
    return version

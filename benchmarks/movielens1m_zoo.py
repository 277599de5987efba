"""Is FSD model-agnostic on MovieLens-1M? DCN, xDeepFM, AutoInt+ and DCNv2, each with and without FSD.

    .venv/bin/python benchmarks/movielens1m_zoo.py --work-dir /work/study/ml1m [--jobs 2]
    .venv/bin/python benchmarks/movielens1m_zoo.py --report-only

``zoo.py``'s study on the fixed CTR split (``../shared/data/movielens1m/ctr``) with the shipped
``movielens1m_ctr`` config (SPEC §3's ML-1M settings) for every model and seeds 2023–2025;
FSDNet and DCNv2 are ``movielens1m_study.py``'s stored runs of the same seeds. Beside the
paper's ML-1M Table 3 (SPEC_WAVE2 §4.7, on its own split). Resumable; runs stored in
``benchmarks/results/movielens1m_zoo_runs/``, the report in ``movielens1m_zoo.md`` / ``.json``.
"""
from __future__ import annotations

import sys

import zoo

import movielens1m_study

COMMAND = ".venv/bin/python benchmarks/movielens1m_zoo.py --work-dir /work/study/ml1m --jobs 2"
ML1M = zoo.ZooData("movielens1m", "MovieLens-1M", movielens1m_study.CONFIG, "movielens1m_zoo",
                   zoo.PAPER_TABLE3_ML1M, None, movielens1m_study.RUNS_DIR,
                   lambda model, seed: zoo.ZooRun(model, seed, group="movielens1m", config=movielens1m_study.CONFIG),
                   COMMAND)


def write_report(results_dir):
    return zoo.write_report(results_dir, ML1M)


def main(argv: list[str] | None = None) -> int:
    return zoo.study_cli(argv, __doc__, "movielens1m_zoo", zoo.plan(ML1M), ML1M.runs_dir, write_report,
                         ML1M.config, ("movielens1m/ctr", "MovieLens-1M"))


if __name__ == "__main__":
    sys.exit(main())

"""Is FSD model-agnostic? DCN, xDeepFM, AutoInt+ and DCNv2, each with and without FSD, on Frappe.

    .venv/bin/python benchmarks/zoo.py --work-dir /work/study [--jobs 2]
    .venv/bin/python benchmarks/zoo.py --report-only

The paper's Tables 3–4 (RQ2), SPEC_WAVE2 §4: every model with the shipped ``frappe``
settings and seeds 2023–2025. FSDNet and DCNv2 are the main study's stored runs
(``benchmarks/reproduce.py``; kept only while their configs still resolve to the plan's).
Runs are resumable exactly as in ``reproduce.py``: stored copies in
``benchmarks/results/frappe_zoo_runs/`` are never trained again, and the report
(``frappe_zoo.md`` / ``frappe_zoo.json``) is rebuilt after every finished run. Steps-only
throughput comes from ``benchmarks/train_speed.py --models all`` (all models in one
process), stored as ``frappe_zoo_speed.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import pathlib
import sys
from typing import Callable

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fsdnet_tf.config import load_config, to_dict  # noqa: E402  (no TensorFlow import)

import reproduce  # noqa: E402
from study_common import plus_minus, write_atomic, mean_std, target_lines, welch_p_value  # noqa: E402


SEEDS = (2023, 2024, 2025)
FSD_OF = {"dcn": "dcn_fsd", "xdeepfm": "xdeepfm_fsd", "autoint": "autoint_fsd", "dcnv2": "fsdnet"}
LABELS = {"dcn": "DCN", "xdeepfm": "xDeepFM", "autoint": "AutoInt+", "dcnv2": "DCNv2"}
REUSED = ("fsdnet", "dcnv2")          # stored by the main study
PAPER_TABLE3 = {"dcn": (0.9838, 0.1544), "dcn_fsd": (0.9852, 0.1357), "xdeepfm": (0.9844, 0.1454),
                "xdeepfm_fsd": (0.9855, 0.1370), "autoint": (0.9841, 0.1520), "autoint_fsd": (0.9853, 0.1338),
                "dcnv2": (0.9845, 0.1581), "fsdnet": (0.9856, 0.1367)}
PAPER_TABLE4 = {"dcn": 475_249, "dcn_fsd": 476_932, "xdeepfm": 568_217, "xdeepfm_fsd": 569_211,
                "autoint": 587_289, "autoint_fsd": 591_931, "dcnv2": 551_569, "fsdnet": 553_252}
# SPEC_WAVE2 §4.7: the paper's Table 3 on MovieLens-1M (its own split; ours is ../shared/data/movielens1m/ctr)
PAPER_TABLE3_ML1M = {"dcn": (0.8143, 0.5162), "dcn_fsd": (0.8182, 0.5109), "xdeepfm": (0.8142, 0.5149),
                     "xdeepfm_fsd": (0.8187, 0.5103), "autoint": (0.8138, 0.5182), "autoint_fsd": (0.8186, 0.5099),
                     "dcnv2": (0.8145, 0.5200), "fsdnet": (0.8190, 0.5087)}
COMMAND = ".venv/bin/python benchmarks/zoo.py --work-dir /work/study --jobs 2"
SPEED_COMMAND = (".venv/bin/python benchmarks/train_speed.py --transform-dir /work/study/transform --models all "
                 "--steps 10 --real-epochs '' --output benchmarks/results/frappe_zoo_speed.json")
TARGET_P = 0.05


@dataclasses.dataclass(frozen=True)
class ZooRun:
    """One run of a preset with the shipped ``frappe`` config and ``settings`` changed from it."""
    model: str
    seed: int
    group: str = "zoo"
    noise: float = 0.0
    settings: tuple[tuple[str, object], ...] = ()
    label: str = ""            # the variant's name where one model is run with several settings
    config: str = reproduce.CONFIG   # the shipped config the run starts from

    @property
    def variant(self) -> str:
        return self.label or self.model

    @property
    def name(self) -> str:
        return f"{self.variant}_s{self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [f"model.type={self.model}"] + [f"{k}={v}" for k, v in self.settings] + [f"seed={self.seed}"]

    def expected_config(self) -> dict:
        return to_dict(load_config(self.config, self.overrides))


@dataclasses.dataclass(frozen=True)
class ZooData:
    """One dataset's zoo study: its shipped config, the paper's figures on it, where its runs live, and
    where the dataset's main study keeps the FSDNet and DCNv2 runs the zoo reuses."""
    key: str                       # the results' file names: <key>_zoo.md, <key>_zoo_runs/
    title: str
    config: str
    group: str
    paper: dict                    # model → the paper's (test AUC, logloss) on this dataset
    paper_parameters: dict | None  # model → the paper's Table 4 count (Frappe only)
    main_runs_dir: str
    main_run: Callable[[str, int], object]   # (model, seed) → the main study's run of a reused model
    command: str

    @property
    def runs_dir(self) -> str:
        return f"{self.key}_zoo_runs"

    def run(self, model: str, seed: int) -> ZooRun:
        return ZooRun(model, seed, group=self.group, config=self.config)


FRAPPE = ZooData("frappe", "Frappe", reproduce.CONFIG, "zoo", PAPER_TABLE3, PAPER_TABLE4, "frappe_runs",
                 lambda model, seed: reproduce.Run("main", model, seed), COMMAND)


def plan(data: ZooData = FRAPPE) -> list[ZooRun]:
    """The runs to train, each seed's six models together so that a partial study compares pairs."""
    models = [m for base, fsd in FSD_OF.items() for m in (base, fsd) if m not in REUSED]
    return [data.run(m, s) for s in SEEDS for m in models]


def collect(results_dir: pathlib.Path, data: ZooData = FRAPPE) -> tuple[dict, list[str]]:
    """model → stored runs (the main study's for FSDNet/DCNv2), and the planned runs still missing."""
    runs, missing = {}, []
    for model in data.paper:
        for seed in SEEDS:
            run = data.run(model, seed)
            stored = (reproduce.stored_result(data.main_run(model, seed), results_dir / data.main_runs_dir)
                      if model in REUSED else reproduce.stored_result(run, results_dir / data.runs_dir))
            if stored is None:
                missing.append(run.name)
            else:
                runs.setdefault(model, []).append(stored)
    return runs, missing


def compute(runs: dict, speed: dict | None, data: ZooData = FRAPPE) -> dict:
    models = {}
    for model, chosen in runs.items():
        auc, ll = mean_std([r["test"]["auc"] for r in chosen]), mean_std([r["test"]["logloss"] for r in chosen])
        models[model] = {"seeds": [r["seed"] for r in chosen], "auc_mean": auc[0], "auc_std": auc[1],
                         "logloss_mean": ll[0], "logloss_std": ll[1],
                         "epochs_mean": sum(len(r["epochs"]) for r in chosen) / len(chosen),
                         "parameters": (speed or {}).get("parameters", {}).get(model) or chosen[0].get("parameters"),
                         "paper_parameters": (data.paper_parameters or {}).get(model),
                         "steps_only_examples_per_second": (speed or {}).get("examples_per_second", {}).get(model)}
    gains = {}
    for base, fsd in FSD_OF.items():
        if base in runs and fsd in runs:
            a, b = runs[base], runs[fsd]
            gains[base] = {
                "auc_gain": models[fsd]["auc_mean"] - models[base]["auc_mean"],
                "logloss_gain": models[base]["logloss_mean"] - models[fsd]["logloss_mean"],
                "p_value_auc": welch_p_value([r["test"]["auc"] for r in b], [r["test"]["auc"] for r in a]),
                "p_value_logloss": welch_p_value([r["test"]["logloss"] for r in b], [r["test"]["logloss"] for r in a]),
                "paper_auc_gain": data.paper[fsd][0] - data.paper[base][0],
                "paper_logloss_gain": data.paper[base][1] - data.paper[fsd][1]}
    return {"models": models, "fsd_gains": gains}


def targets(result: dict) -> list[tuple[str, bool | None, str]]:
    gains = result["fsd_gains"]
    complete = len(gains) == len(FSD_OF) and all(len(m["seeds"]) == len(SEEDS) for m in result["models"].values())
    lower = [b for b, g in gains.items() if g["logloss_gain"] > 0 and (g["p_value_logloss"] or 1) < TARGET_P]
    higher = [b for b, g in gains.items() if g["auc_gain"] > 0]
    return [("FSD lowers the test logloss of every base model with Welch p < 0.05",
             len(lower) == len(FSD_OF) if complete else None,
             f"holds for {len(lower)} of the {len(gains)} base models measured "
             f"({', '.join(LABELS[b] for b in lower) or 'none'})"),
            ("FSD raises the test AUC of at least three of the four base models",
             len(higher) >= 3 if complete else None,
             f"holds for {len(higher)} of the {len(gains)} base models measured "
             f"({', '.join(LABELS[b] for b in higher) or 'none'})")]


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def render(result: dict, missing: list[str], speed: dict | None, data: ZooData = FRAPPE) -> str:
    tables = "Tables 3–4" if data.paper_parameters else "Table 3"
    lines = [f"# {data.title}: FSD on four base models (paper {tables})",
             "", f"Generated {datetime.date.today().isoformat()} by `{data.command}` from the stored runs "
             f"(FSDNet and DCNv2: the main study's runs of the same seeds). Settings: the shipped `{data.config}` config "
             "(SPEC §3) for every model, the tower settings of SPEC_WAVE2 §4; test figures of the served ŷ "
             "(mean of the heads for FSD models).", ""]
    if missing:
        lines += [f"**Partial**: {len(missing)} planned runs not stored yet: {', '.join(missing)}.", ""]
    lines += ["| model | seeds | test AUC | test logloss | paper AUC / logloss | parameters (paper) | "
              "steps-only examples/s | epochs |", "|---|---|---|---|---|---|---|---|"]
    for model in data.paper:
        m = result["models"].get(model)
        if m is None:
            continue
        params = f"{m['parameters']:,}" if m["parameters"] else "—"
        rate = f"{m['steps_only_examples_per_second']:,}" if m["steps_only_examples_per_second"] else "—"
        paper = data.paper[model]
        paper_params = f"{m['paper_parameters']:,}" if m["paper_parameters"] else "—"
        lines.append(f"| {model} | {len(m['seeds'])} | {plus_minus(m['auc_mean'], m['auc_std'])} | "
                     f"{plus_minus(m['logloss_mean'], m['logloss_std'], 4)} | {paper[0]} / {paper[1]} | "
                     f"{params} ({paper_params}) | {rate} | {m['epochs_mean']:.1f} |")
    lines += ["", "## FSD gain per base model (Welch two-tailed p over seeds)", "",
              "| base | AUC gain | p (AUC) | logloss reduction | p (logloss) | paper AUC gain | paper logloss reduction |",
              "|---|---|---|---|---|---|---|"]
    for base, g in result["fsd_gains"].items():
        lines.append(f"| {LABELS[base]} → + FSD | {g['auc_gain']:+.5f} | {_p(g['p_value_auc'])} | "
                     f"{g['logloss_gain']:+.4f} | {_p(g['p_value_logloss'])} | {g['paper_auc_gain']:+.4f} | "
                     f"{g['paper_logloss_gain']:+.4f} |")
    lines += ["", "## Targets", ""]
    lines += target_lines(targets(result))
    if data is not FRAPPE:
        return "\n".join(lines + ["", "Parameters are the trainable variables our code builds on this transform; "
                                   "the paper's figures come from its own split (SPEC_WAVE2 §4.7)."]) + "\n"
    lines += ["", "Parameters are the trainable variables our code builds on this transform (5,355 table rows; "
              "with the Frappe_x1 vocabulary of 5,383 rows they equal SPEC_WAVE2 §6.5, checked by "
              "`tests/test_zoo.py`, and the paper's Table 4 for the base models). FSD versions build no unused "
              "output layer (SPEC_WAVE2 §4.5), so they sit below the paper's FSD counts, which include them. "
              f"Steps-only throughput: `{SPEED_COMMAND}`" + (f", {speed['measured']}" if speed else " (not run yet)")
              + "; all models in one process, alternating rounds, batch 10,000."]
    return "\n".join(lines) + "\n"


def write_report(results_dir: pathlib.Path, data: ZooData = FRAPPE) -> dict:
    speed_path = results_dir / f"{data.key}_zoo_speed.json"
    speed = json.loads(speed_path.read_text()) if speed_path.is_file() else None
    runs, missing = collect(results_dir, data)
    computed = compute(runs, speed, data)
    result = {**computed, "missing": missing,
              "targets": [{"target": t, "met": m, "detail": d} for t, m, d in targets(computed)]}
    write_atomic(results_dir / f"{data.key}_zoo.json", json.dumps(result, indent=1) + "\n")
    write_atomic(results_dir / f"{data.key}_zoo.md", render(result, missing, speed, data))
    return result


class PresetStudy(reproduce.Study):
    """A study of preset runs stored in ``results/<runs_dir_name>/``, reported by ``report(results_dir)``."""

    def __init__(self, work_dir, data_dir, results_dir, jobs, runs_dir_name: str, report,
                 config: str = reproduce.CONFIG):
        super().__init__(work_dir, data_dir, results_dir, jobs, config, runs_dir_name)
        self.report = report

    def write_report(self) -> None:
        with self._report_lock:
            self.report(self.results_dir)


def study_cli(argv, description: str, prog: str, runs: list, runs_dir_name: str, report,
              config: str = reproduce.CONFIG, data: tuple[str, str] = ("frappe", "Frappe")) -> int:
    """The command line shared by the preset studies: --plan, --report-only or train what is missing
    (on ``config``, whose data are ``../shared/data/<data[0]>`` by default, called ``data[1]``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=pathlib.Path, default=REPO.parent / "shared" / "data" / data[0])
    parser.add_argument("--work-dir", type=pathlib.Path, default=REPO / "work" / "reproduce")
    parser.add_argument("--results-dir", type=pathlib.Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--plan", action="store_true", help="print the runs and their overrides, then exit")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from stored runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.plan:
        for r in runs:
            print(f"{r.name:28s} {' '.join('--set ' + o for o in r.overrides)}")
        return 0
    study = PresetStudy(args.work_dir.resolve(), args.data_dir.resolve(), args.results_dir.resolve(), args.jobs,
                        runs_dir_name, report, config)
    if args.report_only:
        study.write_report()
        return 0
    if not (args.data_dir / "train.csv").is_file():
        print(f"{prog}: {data[1]} not found at {args.data_dir} (see ../shared/data/README.md); give --data-dir",
              file=sys.stderr)
        return 2
    return study.run(runs)


def main(argv: list[str] | None = None) -> int:
    return study_cli(argv, __doc__, "zoo", plan(), FRAPPE.runs_dir, write_report)


if __name__ == "__main__":
    sys.exit(main())

"""Per-example multiply-adds: the analytic count equals a walk over the served graph's contractions."""
import pytest

from fsdnet_tf.config import PARALLEL_TYPES, load_config
from fsdnet_tf.export.cost import analytic_multiply_adds, graph_multiply_adds, profiler_multiply_adds
from fsdnet_tf.models import build_model
from fsdnet_tf.models.student import build_student

VOCAB = {f"f{i}": 7 + i for i in range(10)}
SMALL = ["model.deep_units=[24,24,24]", "model.cin.units=[6,6,6]", "model.attention.dim=8",
         "model.tf4ctr.easy_units=[24,24,24]"]


def small_config(model_type):
    overrides = [f"model.type={model_type}", "model.deep_units=[24,24,24]"]
    overrides += {"xdeepfm": ["model.cin.units=[6,6,6]"], "xdeepfm_fsd": ["model.cin.units=[6,6,6]"],
                  "autoint": ["model.attention.dim=8"], "autoint_fsd": ["model.attention.dim=8"],
                  "tf4ctr": ["model.tf4ctr.easy_units=[24,24,24]"]}.get(model_type, [])
    return load_config("frappe", overrides).model


@pytest.mark.parametrize("model_type", PARALLEL_TYPES)
def test_analytic_count_equals_the_served_graph(model_type):
    model = build_model(small_config(model_type), tuple(VOCAB), VOCAB, for_serving=True)
    outputs = ["prediction"] + (["teacher_head"] if model.readout == "per_layer_heads" else [])
    for output in outputs:
        assert analytic_multiply_adds(model, output) == graph_multiply_adds(model, output), output


@pytest.mark.parametrize("extra, interaction", [([], 9_600), (["model.dagfm.kind=inner"], 4_800),
                                                (["model.dagfm.deep=true"], 9_600)])
def test_student_counts(extra, interaction):
    cfg = load_config("frappe", ["model.type=kd_dagfm"] + extra).model
    student = build_student(cfg, tuple(VOCAB), VOCAB)
    readout = 160 * 400 + 2 * 400 * 400 + 400 if "model.dagfm.deep=true" in extra else 40   # deep tower or Dense(F(L+1))
    assert analytic_multiply_adds(student) == interaction + 1_600 + readout == graph_multiply_adds(student)
    # TF's profiler counts MatMul only: the readout and the field mixing C·E, not the batched
    # matmuls (outer) or einsums (inner) of the DAG layers
    assert profiler_multiply_adds(student) == readout + 1_600


def test_fsdnet_frappe_figures_and_the_teacher_head_reads_one_head():
    cfg = load_config("frappe").model
    model = build_model(cfg, tuple(VOCAB), VOCAB, for_serving=True)
    # SPEC_WAVE2 §2.8: cross 3·160² + deep 160·400 + 2·400² + three heads of 560.
    assert analytic_multiply_adds(model) == 462_480 == profiler_multiply_adds(model)
    assert graph_multiply_adds(model, "teacher_head") == 462_480 - 2 * 560


def test_the_kd_reports_formula_equals_the_analytic_count():
    """benchmarks/kd_study.py counts without TensorFlow; it must agree with the served models' count."""
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
    import kd_study
    teacher = build_model(load_config("frappe").model, tuple(VOCAB), VOCAB, for_serving=True)
    assert kd_study.multiply_adds(kd_study.TEACHER) == analytic_multiply_adds(teacher)
    for variant, extra in {"kd_outer": [], "kd_inner": ["model.dagfm.kind=inner"], "kd_plus": ["model.dagfm.deep=true"],
                           "kd_outer_depth4": ["model.dagfm.depth=4"]}.items():
        student = build_student(load_config("frappe", ["model.type=kd_dagfm"] + extra).model, tuple(VOCAB), VOCAB)
        assert kd_study.multiply_adds(variant) == analytic_multiply_adds(student), variant

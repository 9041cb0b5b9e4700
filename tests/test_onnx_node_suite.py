"""ONNX's own operator tests (``onnx.backend.test.case.node``) through cnnstat, graded by the
shape of every graph output against ONNX's expected tensors (see tests/onnx_node_suite.py)."""

from __future__ import annotations

import re

import pytest

from tests import onnx_node_suite as suite

_WHY = suite.available()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")


@pytest.fixture(scope="session")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[suite.CaseResult]:
    """Every case, written under a pytest temp folder (never into the repository) and graded."""
    return suite.run_suite(tmp_path_factory.mktemp("onnx_node_cases"))


def test_no_wrong_shape_and_no_crash(results: list[suite.CaseResult]) -> None:
    n = suite.counts(results)
    assert len(results) > 1800  # the wheel's generators ran (1,884 with onnx 1.23)
    bad = [f"{r.verdict} {r.name}: {r.detail}" for r in results
           if r.verdict in ("wrong", "crash")]
    assert not bad, "\n".join(bad[:20])
    assert n["exact"] >= 1372, n  # the floor: ONNX-inference-right plus cnnstat's own


def test_exact_wherever_onnx_shape_inference_is_right(results: list[suite.CaseResult]) -> None:
    """Every case ONNX's shape inference (data propagation on) shapes right is exact, except
    a graph with an optional or sequence input or output: cnnstat analyses tensors only and
    refuses those by design (with onnx 1.23: 4 OptionalHasElement/OptionalGetElement cases)."""
    right = [r for r in results if r.onnx_right]
    assert len(right) > 1300
    missed = [r for r in right if r.verdict != "exact"]
    by_design = [r for r in missed if r.verdict == "refused" and not r.tensors_only
                 and "(not a tensor)" in r.detail]
    assert len(by_design) <= 4, [r.name for r in by_design]
    rest = [f"{r.verdict} {r.name}: {r.detail}" for r in missed if r not in by_design]
    assert not rest, "\n".join(rest[:20])


def test_refusals_are_one_line_naming_node_op_and_why(results: list[suite.CaseResult]) -> None:
    named = re.compile(r"node '[^']+' \((?P<op>[A-Za-z0-9]+)\): (?P<why>.+)")
    for r in results:
        if r.verdict != "refused":
            continue
        assert "\n" not in r.detail, r.name
        m = named.search(r.detail)
        assert m, f"{r.name}: {r.detail}"
        assert m["op"] in r.ops.split("+"), f"{r.name}: {r.detail}"
        assert any(w in m["why"] for w in ("not a tensor", "depends on the values of graph input",
                                           "no shape rule", "cannot evaluate")), r.detail


def test_value_dependent_refusals_name_the_graph_input(
        results: list[suite.CaseResult]) -> None:
    by_name = {r.name: r for r in results}
    # Reshape whose target shape is a graph input; TopK with k as an input; NonZero's data
    assert "graph input 'shape'" in by_name["test_reshape_reduced_dims"].detail
    assert by_name["test_top_k"].verdict == "refused"
    assert "graph input 'k'" in by_name["test_top_k"].detail
    assert "graph input 'condition'" in by_name["test_nonzero_example"].detail
    # axes as an input (opset 18) is refused, not reduced over every axis
    assert "graph input 'axes'" in by_name["test_reduce_mean_keepdims_example"].detail


def test_cases_fixed_by_following_onnx_semantics(results: list[suite.CaseResult]) -> None:
    """Cases that were wrong or crashed before (issue 11's list), and zero-sized tensors."""
    by_name = {r.name: r for r in results}
    for name in ("test_layer_normalization_4d_axis1", "test_shape_start_1_end_negative_1",
                 "test_size_example", "test_batchnorm_example_training_mode", "test_constant",
                 "test_optional_has_element_empty_no_input_tensor_input",
                 "test_attention_4d_attn_mask_expanded", "test_attention_4d_causal_expanded",
                 "test_mvn_expanded", "test_tril_zero",
                 "test_shape_start_greater_than_end", "test_castlike_FLOAT_to_DOUBLE"):
        assert by_name[name].verdict == "exact", f"{name}: {by_name[name].detail}"
    for name in ("test_squeeze_negative_axes", "test_blackmanwindow_expanded"):  # values of inputs
        assert "depends on the values of graph input" in by_name[name].detail, name


def test_models_shipped_in_the_onnx_wheel() -> None:
    """The wheel's own PyTorch-converted layers and small real CNNs (AlexNet, ResNet-50,
    DenseNet-121, Inception v1/v2, ShuffleNet, SqueezeNet, VGG-19, ZFNet): no wrong shape,
    no crash, the CNNs exact."""
    shipped = suite.shipped_results()
    n = suite.counts(shipped)
    assert n["wrong"] == n["crash"] == 0, [r for r in shipped if r.verdict in ("wrong", "crash")]
    assert len(shipped) > 100 and n["exact"] > 100, n
    light = [r for r in shipped if r.name.startswith("light_")]
    assert len(light) >= 9 and all(r.verdict == "exact" for r in light), light

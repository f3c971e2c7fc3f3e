from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from actprof import activations
from actprof.data.mnist import to_tensor
from actprof.errors import UsageError
from actprof.export import rewrite
from actprof.graphs import surgery
from actprof.measure import cells
from tests.helpers import plain_ort_session

ALL = list(activations.ACTIVATIONS)
REGION_SIZE = {"silu": 2, "softplus": 3}  # Sigmoid → Mul; Softplus, Greater, Where (dynamo's threshold)


@pytest.fixture(scope="module")
def x(sample) -> np.ndarray:
    return to_tensor(sample.test_images[:16]).numpy()


def load(trained_models, name: str) -> onnx.ModelProto:
    return onnx.load(str(trained_models[0] / f"{name}.onnx"))


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return plain_ort_session(model.SerializeToString()).run(["logits"], {"input": x})[0]


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


# --- activation_regions on the real exported models --------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_three_one_in_one_out_regions_per_model(trained_models, name):
    model = load(trained_models, name)
    nodes = model.graph.node
    regions = surgery.activation_regions(model)
    assert len(regions) == 3
    producers = {out: n.op_type for n in nodes for out in n.output}
    for region in regions:
        assert len(region.nodes) == REGION_SIZE.get(name, 1), [nodes[i].op_type for i in region.nodes]
        inside = set(region.nodes)
        # The one input comes from the layer before (Conv or Gemm) and feeds the region only.
        assert producers[region.input] in {"Conv", "Gemm"}
        assert any(region.input in nodes[i].input for i in region.nodes)
        # The one output is produced inside and consumed outside (MaxPool or the next Gemm).
        assert any(region.output in nodes[i].output for i in region.nodes)
        consumers = {nodes[i].op_type for i, n in enumerate(nodes) if region.output in n.input}
        assert consumers and consumers <= {"MaxPool", "Gemm"}
        assert not any(region.output in nodes[i].input for i in inside)
        assert list(region.nodes) == sorted(region.nodes)


@pytest.mark.parametrize(
    ("name", "ops"),
    [("silu", {"Sigmoid", "Mul"}), ("softplus", {"Softplus", "Greater", "Where"}), ("elu", {"Elu"})],
)
def test_region_ops(trained_models, name, ops):
    model = load(trained_models, name)
    for region in surgery.activation_regions(model):
        assert {model.graph.node[i].op_type for i in region.nodes} == ops


def tiny_model(nodes, inputs, outputs, initializers=(), value_info=()) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=list(initializers))
    g.value_info.extend(value_info)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def fvi(name: str, shape=(2,)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def test_a_region_with_two_data_inputs_is_refused():
    model = tiny_model(
        [
            helper.make_node("Identity", ["a"], ["a1"]),
            helper.make_node("Identity", ["b"], ["b1"]),
            helper.make_node("Add", ["a1", "b1"], ["y"]),
        ],
        [fvi("a"), fvi("b")],
        [fvi("y")],
    )
    with pytest.raises(ValueError, match="not 1-in 1-out"):
        surgery.activation_regions(model)


def test_a_region_ending_at_the_graph_output_is_found_and_replaced():
    w = numpy_helper.from_array(np.array([[1.0, -1.0], [-1.0, 2.0]], np.float32), "w")
    model = tiny_model(
        [
            helper.make_node("Gemm", ["x", "w"], ["h"]),
            helper.make_node("Sigmoid", ["h"], ["s"]),
            helper.make_node("Mul", ["h", "s"], ["y"]),
        ],
        [fvi("x", (1, 2))],
        [fvi("y", (1, 2))],
        [w],
    )
    [region] = surgery.activation_regions(model)
    assert (region.nodes, region.input, region.output) == ((1, 2), "h", "y")
    swapped = surgery.replace_activation(model, "Relu")
    onnx.checker.check_model(swapped, full_check=True)
    assert op_types(swapped) == ["Gemm", "Relu"]
    assert [o.name for o in swapped.graph.output] == ["y"]


# --- replace_activation on the real exported models --------------------------------------------


@pytest.mark.parametrize("op_type", ["Relu", "Identity"])
@pytest.mark.parametrize("name", ALL)
def test_replacement_is_valid_and_runs(trained_models, x, name, op_type):
    model = load(trained_models, name)
    original_ops = set(trained_models[1][name].export.activation_census)
    swapped = surgery.replace_activation(model, op_type)
    onnx.checker.check_model(swapped, full_check=True)
    left = set(op_types(swapped)) & (original_ops - {op_type})
    assert not left, left
    kept = [op for op in op_types(model) if op not in original_ops]
    assert op_types(swapped).count(op_type) == 3 + kept.count(op_type)
    out = run(swapped, x)
    assert out.shape == (len(x), 10)
    assert np.isfinite(out).all()


def test_replacement_leaves_the_input_model_untouched(trained_models):
    model = load(trained_models, "softplus")
    before = model.SerializeToString()
    surgery.replace_activation(model, "Identity")
    assert model.SerializeToString() == before


def test_relu_swapped_into_relu_is_bit_identical(trained_models, x):
    model = load(trained_models, "relu")
    swapped = surgery.replace_activation(model, "Relu")
    assert op_types(swapped) == op_types(model)
    assert np.array_equal(run(swapped, x), run(model, x))


@pytest.mark.parametrize("name", ["elu", "silu", "softplus"])
def test_identity_swap_changes_the_output(trained_models, x, name):
    model = load(trained_models, name)
    swapped = run(surgery.replace_activation(model, "Identity"), x)
    assert np.isfinite(swapped).all()
    assert not np.allclose(swapped, run(model, x))


def test_identity_swapped_elu_matches_a_linear_torch_model(trained_models, x):
    """Same weights, no activation: the ONNX graph surgery must equal the torch model built that way."""
    import torch

    from actprof.training.model import SeedCNN, config_for

    model = load(trained_models, "elu")
    net = SeedCNN(config_for(activations.get("elu")))
    for layer in ("act1", "act2", "act3"):
        setattr(net, layer, torch.nn.Identity())
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    net.load_state_dict({k: weights[k] for k in net.state_dict()})
    with torch.inference_mode():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    got = run(surgery.replace_activation(model, "Identity"), x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op_type", ["Relu", "Identity"])
def test_prelu_slopes_are_pruned(trained_models, op_type):
    model = load(trained_models, "prelu")
    slopes = {n.input[1] for n in model.graph.node if n.op_type == "PRelu"}
    assert len(slopes) == 3 and slopes <= {t.name for t in model.graph.initializer}
    swapped = surgery.replace_activation(model, op_type)
    names = {t.name for t in swapped.graph.initializer}
    assert not slopes & names
    assert {"conv1.weight", "conv2.bias", "fc1.weight", "fc2.bias"} <= names


def test_softplus_threshold_is_pruned(trained_models):
    model = load(trained_models, "softplus")
    thresholds = {n.input[1] for n in model.graph.node if n.op_type == "Greater"}
    swapped = surgery.replace_activation(model, "Relu")
    initializers = {t.name for t in swapped.graph.initializer}
    assert thresholds and not thresholds & initializers
    # No value_info left behind for the dropped threshold or the dropped Softplus/Greater/Where outputs.
    produced = {o for n in swapped.graph.node for o in n.output}
    assert {v.name for v in swapped.graph.value_info} <= produced | initializers


# --- prune_unused on hand-built graphs ---------------------------------------------------------


def test_prune_unused_removes_what_nothing_reads():
    used = numpy_helper.from_array(np.ones(2, np.float32), "used")
    unused = numpy_helper.from_array(np.zeros(2, np.float32), "unused")
    model = tiny_model(
        [
            helper.make_node("Constant", [], ["dead_const"], value=numpy_helper.from_array(np.ones(2, np.float32))),
            helper.make_node("Constant", [], ["live_const"], value=numpy_helper.from_array(np.ones(2, np.float32))),
            helper.make_node("Add", ["x", "used"], ["h"]),
            helper.make_node("Mul", ["h", "live_const"], ["y"]),
        ],
        [fvi("x")],
        [fvi("y")],
        [used, unused],
        value_info=[fvi("h"), fvi("gone")],
    )
    surgery.prune_unused(model)
    assert [t.name for t in model.graph.initializer] == ["used"]
    assert [n.output[0] for n in model.graph.node] == ["live_const", "h", "y"]
    assert [v.name for v in model.graph.value_info] == ["h"]
    onnx.checker.check_model(model, full_check=True)


def test_prune_unused_keeps_an_initializer_that_is_a_graph_output():
    w = numpy_helper.from_array(np.ones(2, np.float32), "w")
    model = tiny_model([helper.make_node("Relu", ["x"], ["y"])], [fvi("x")], [fvi("y"), fvi("w")], [w])
    surgery.prune_unused(model)
    assert [t.name for t in model.graph.initializer] == ["w"]


def test_prune_unused_keeps_an_initializer_read_by_a_subgraph():
    w = numpy_helper.from_array(np.ones(2, np.float32), "w")
    then = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"])], "then", [], [fvi("t")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [fvi("e")])
    model = tiny_model(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), fvi("x")],
        [fvi("y")],
        [w],
    )
    onnx.checker.check_model(model, full_check=True)
    surgery.prune_unused(model)
    assert [t.name for t in model.graph.initializer] == ["w"]


# --- the exact pool-first rewrite --------------------------------------------------------------

MONOTONIC = ["relu", "leaky_relu", "elu", "selu", "celu", "sigmoid", "tanh", "softplus"]
NOT_MONOTONIC = ["gelu", "gelu_tanh", "silu", "mish", "hardswish"]


@pytest.mark.parametrize("name", MONOTONIC)
def test_pool_first_is_exact_for_monotonic_activations(trained_models, name):
    original = (trained_models[0] / f"{name}.onnx").read_bytes()
    data, parity, moved = rewrite.rewrite_pool_first(original, cells.images(512))
    assert moved == 2  # the two conv blocks; the dense activation has no pool after it
    assert parity.max_abs_diff <= 1e-6 and parity.argmax_agree
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    first_pool = ops.index("MaxPool")
    assert ops[first_pool - 1] == "Conv"  # the pool now reads the convolution directly


@pytest.mark.parametrize("name", NOT_MONOTONIC)
def test_pool_first_refuses_non_monotonic_activations(trained_models, name):
    with pytest.raises(UsageError, match="not monotonic"):
        rewrite.rewrite_pool_first((trained_models[0] / f"{name}.onnx").read_bytes(), cells.images(64))


def test_pool_first_refuses_prelu_with_a_negative_slope(trained_models):
    from onnx import numpy_helper

    model = onnx.load(str(trained_models[0] / "prelu.onnx"))
    region = surgery.activation_regions(model)[0]
    slope_name = model.graph.node[region.nodes[0]].input[1]
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == slope_name:
            model.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(-abs(numpy_helper.to_array(tensor)), slope_name)
            )
    with pytest.raises(surgery.NotMonotonic):
        surgery.pool_first(model)


# --- computation_key: which graphs are one computation ------------------------------------------


@pytest.mark.parametrize("name", [n for n in ALL if n != "relu"])
def test_every_relu_swap_is_the_relu_models_computation(trained_models, name):
    relu = surgery.computation_key(load(trained_models, "relu"))
    swapped = surgery.replace_activation(load(trained_models, name), "Relu")
    assert surgery.computation_key(swapped) == relu
    assert surgery.computation_key(load(trained_models, name)) != relu


def test_identity_swaps_of_every_model_are_one_computation(trained_models):
    keys = {surgery.computation_key(surgery.replace_activation(load(trained_models, n), "Identity")) for n in ALL}
    assert len(keys) == 1


def renamed(model: onnx.ModelProto, prefix: str) -> onnx.ModelProto:
    """Every weight, inner tensor and node renamed (the graph's input and output keep theirs)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    kept = {v.name for v in [*g.input, *g.output]}
    inner = {n for node in g.node for n in [*node.input, *node.output]} | {t.name for t in g.initializer}
    mapping = {name: f"{prefix}{i}" for i, name in enumerate(sorted(inner - kept - {""}))}
    for tensor in [*g.initializer, *g.value_info]:
        tensor.name = mapping.get(tensor.name, tensor.name)
    for i, node in enumerate(g.node):
        node.name = f"{prefix}node{i}"
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    return out


def test_the_key_ignores_names_and_weight_values_but_not_the_work(trained_models, x):
    model = load(trained_models, "elu")
    key = surgery.computation_key(model)
    other_names = renamed(model, "t")
    np.testing.assert_array_equal(run(other_names, x), run(model, x))  # the same graph
    assert surgery.computation_key(other_names) == key
    scaled = onnx.ModelProto()
    scaled.CopyFrom(model)
    conv_weight = next(t for t in scaled.graph.initializer if len(t.dims) == 4)
    conv_weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(conv_weight) * 3, conv_weight.name))
    assert surgery.computation_key(scaled) == key  # other numbers, the same work
    conv_weight.CopyFrom(numpy_helper.from_array(np.full(tuple(conv_weight.dims), 1e-40, np.float32), conv_weight.name))
    assert surgery.computation_key(scaled) != key  # subnormal weights: slow on some CPUs
    wider = onnx.ModelProto()
    wider.CopyFrom(model)
    pool = next(n for n in wider.graph.node if n.op_type == "MaxPool")
    next(a for a in pool.attribute if a.name == "kernel_shape").ints[:] = [3, 3]
    assert surgery.computation_key(wider) != key


def test_integer_weights_are_part_of_the_computation():
    def reshaped(shape: list[int]) -> onnx.ModelProto:
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
        shape_tensor = numpy_helper.from_array(np.array(shape, np.int64), "shape")
        g = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [shape_tensor],
        )
        return helper.make_model(g)

    assert surgery.computation_key(reshaped([6, 4])) != surgery.computation_key(reshaped([3, 8]))
    assert surgery.computation_key(reshaped([6, 4])) == surgery.computation_key(reshaped([6, 4]))

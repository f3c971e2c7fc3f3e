"""Bring your own model: activation sites in real architectures (the onnx package's light ResNet-50 and
SqueezeNet, weights generated in-graph), the swapped variants, and the swap command end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from actprof.errors import UsageError
from actprof.graphs import candidates, sites
from actprof.measure import swap
from actprof.measure.declared import batch_reshapes, with_input_shape
from actprof.measure.inputs import Choices, parse_input_shape, parse_named_numbers, resolve_inputs
from actprof.runtimes.onnxruntime import cpu_session
from actprof.schema import storage
from actprof.schema.swap import SwapRecord
from tests.helpers import assert_user_error, run_cli

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RESNET50, SQUEEZENET = LIGHT / "light_resnet50.onnx", LIGHT / "light_squeezenet.onnx"


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = cpu_session(model.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def tiny(nodes, *, opset: int = 20, initializers=(), shape=(1, 4)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def const(name: str, value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


# --- finding sites --------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "count"), [(RESNET50, 49), (SQUEEZENET, 26)])
def test_real_architectures_have_their_relu_sites_found(path, count):
    found = sites.find_sites(onnx.load(str(path)))
    hidden = [s for s in found if s.role == "activation"]
    assert len(hidden) == count and {s.kind for s in hidden} == {"Relu"}
    assert [(s.kind, s.role) for s in found if s not in hidden] == [("Softmax", "head")]  # the classifier's


def test_decomposed_patterns_are_one_site_each():
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Mul", ["x", "s"], ["a"]),  # SiLU
        helper.make_node("Div", ["a", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["p"]),
        helper.make_node("Mul", ["a", "p"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["b"]),  # GELU, 0.5 last
        helper.make_node("Softplus", ["b"], ["sp"]),
        helper.make_node("Tanh", ["sp"], ["t"]),
        helper.make_node("Mul", ["b", "t"], ["c"]),  # Mish
        helper.make_node("Clip", ["c", "zero", "six"], ["y"]),  # ReLU6
    ]
    inits = [const("sqrt2", 2**0.5), const("one", 1.0), const("half", 0.5), const("zero", 0.0), const("six", 6.0)]
    kinds = [s.kind for s in sites.find_sites(tiny(nodes, initializers=inits))]
    assert kinds == ["SiLU (x·Sigmoid(x))", "GELU (Erf form)", "Mish (x·Tanh(Softplus(x)))", "Clip (ReLU6)"]


def test_a_relu6_site_is_chosen_as_relu6_or_clip():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Clip", ["r", "zero", "six"], ["y"])]
    found = sites.find_sites(tiny(nodes, initializers=[const("zero", 0.0), const("six", 6.0)]))
    assert [s.kind for s in found] == ["Relu", "Clip (ReLU6)"]
    assert swap.parse_sites("relu6", found, ()) == swap.parse_sites("clip", found, ()) == [1]
    with pytest.raises(UsageError, match="'elu': no site of that kind; this model's sites answer to clip, relu, relu6"):
        swap.parse_sites("elu", found, ())


def test_gelu_with_the_half_applied_to_x_first():
    nodes = [
        helper.make_node("Mul", ["x", "half"], ["h"]),
        helper.make_node("Mul", ["x", "inv"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["p"]),
        helper.make_node("Mul", ["h", "p"], ["y"]),
    ]
    model = tiny(nodes, initializers=[const("half", 0.5), const("inv", 2**-0.5), const("one", 1.0)])
    [site] = sites.find_sites(model)
    assert site.kind == "GELU (Erf form)" and len(site.nodes) == 5 and site.output == "y"


def test_a_sigmoid_that_gates_another_tensor_is_not_silu():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["s", "w"], ["y"])]
    [site] = sites.find_sites(tiny(nodes, initializers=[const("w", 2.0)]))
    assert site.kind == "Sigmoid"


def test_a_clip_that_is_not_relu6_is_no_site():
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])]
    assert sites.find_sites(tiny(nodes, initializers=[const("lo", -1.0), const("hi", 1.0)])) == []


# --- swapping ---------------------------------------------------------------------------------------


def test_swapping_relu_for_relu_gives_the_same_network():
    model = onnx.load(str(SQUEEZENET))
    hidden = [s for s in sites.find_sites(model) if s.role == "activation"]
    same, decomposed = sites.swap(model, hidden, "relu")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    assert not decomposed
    np.testing.assert_array_equal(run_ort(same, x), run_ort(model, x))


@pytest.mark.parametrize("candidate", list(candidates.CANDIDATES))
def test_every_candidate_builds_a_checked_resnet50(candidate):
    model = onnx.load(str(RESNET50))
    found = sites.find_sites(model)
    variants = swap.build_variants(model, found, list(range(len(found))), [candidate])
    swapped = onnx.load_from_string(variants[candidate][0])
    assert not any(node.op_type == "Relu" for node in swapped.graph.node) or candidate == "relu"
    assert variants[candidate][1] == (candidate in ("gelu", "gelu_tanh", "mish", "hardswish", "celu"))  # opset 9
    onnx.checker.check_model(swapped, full_check=True)


@pytest.mark.parametrize("candidate", ["gelu", "mish", "hardswish", "silu"])
def test_decomposed_candidates_compute_the_same_function_as_the_single_op(candidate):
    x = np.linspace(-6, 6, 4 * 64, dtype=np.float32).reshape(64, 4)
    relu = tiny([helper.make_node("Relu", ["x"], ["y"])], shape=(64, 4))
    site = sites.find_sites(relu)
    new_opset, _ = sites.swap(relu, site, candidate)
    old = onnx.ModelProto()
    old.CopyFrom(relu)
    old.opset_import[0].version = 9
    low_opset, decomposed = sites.swap(old, site, candidate)
    assert decomposed == (candidate != "silu")
    np.testing.assert_allclose(run_ort(low_opset, x), run_ort(new_opset, x), atol=1e-5)


def test_only_the_chosen_sites_are_replaced():
    model = onnx.load(str(SQUEEZENET))
    found = sites.find_sites(model)
    chosen = swap.parse_sites("1,3", found, ("activation",))
    variants = swap.build_variants(model, found, chosen, ["elu"])
    ops = [n.op_type for n in onnx.load_from_string(variants["elu"][0]).graph.node]
    assert ops.count("Elu") == 2 and ops.count("Relu") == 26 - 2


# --- inputs -----------------------------------------------------------------------------------------


@given(
    shape=st.lists(st.integers(1, 4096), min_size=1, max_size=6),
    name=st.from_regex(r"[A-Za-z_][\w/.]{0,20}", fullmatch=True),
)
def test_input_shapes_parse_back(shape, name):
    assert parse_input_shape(f"{name}={'x'.join(map(str, shape))}") == {name: tuple(shape)}


@given(spec=st.text(max_size=30))
def test_input_shape_parser_never_crashes(spec):
    try:
        parsed = parse_input_shape(spec)
    except UsageError:
        return
    assert all(all(d >= 1 for d in shape) for shape in parsed.values())


def test_a_name_given_twice_must_agree_with_itself():
    """``--input-shape`` and its kin may be repeated (the command line joins them with commas)."""
    assert parse_input_shape("a=1x2,b=3,a=1x2") == {"a": (1, 2), "b": (3,)}
    assert parse_named_numbers("sr=16000,h=0,sr=16000", "--input-value") == {"sr": 16000, "h": 0}
    with pytest.raises(UsageError, match=r"^--input-shape gives a twice, 1x2 and 1x3; give it once$"):
        parse_input_shape("a=1x2,a=1x3")
    with pytest.raises(UsageError, match=r"^--vocab-size gives ids twice, 10 and 20; give it once$"):
        parse_named_numbers("ids=10,ids=20", "--vocab-size", integer=True)


def resolve(model, batches, *, shape=None, values=None, vocab=None, inputs_file=None):
    choices = Choices(shape or {}, values or {}, vocab or {}, inputs_file, seed=0)
    return resolve_inputs(model, batches, choices)


def test_a_fixed_batch_is_kept_unless_the_shape_is_given():
    model = onnx.load(str(SQUEEZENET))
    with pytest.raises(UsageError, match="fixed batch of 1"):
        resolve(model, [8])
    inputs = resolve(model, [1, 8], shape={"data_0": (1, 3, 224, 224)})
    [feed] = inputs.feeds
    assert feed.shapes == {1: (1, 3, 224, 224), 8: (8, 3, 224, 224)}
    x = inputs.batch(8)["data_0"]
    assert x.shape == (8, 3, 224, 224) and x.dtype == np.float32


def test_free_dimensions_need_a_shape_and_sizes_are_checked_first():
    model = tiny([helper.make_node("Relu", ["x"], ["y"])], shape=("n", "c"))
    with pytest.raises(UsageError, match="free dimensions"):
        resolve(model, [1])
    with pytest.raises(UsageError, match="GiB"):
        resolve(model, [65536], shape={"x": (1, 1 << 20)})
    with pytest.raises(UsageError, match="dimensions"):
        resolve(model, [1], shape={"x": (1, 2, 3)})


def test_random_inputs_are_reproducible_from_their_seed():
    model = onnx.load(str(SQUEEZENET))
    first, again = resolve(model, [1]).batch(1)["data_0"], resolve(model, [1]).batch(1)["data_0"]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, resolve(model, [1]).batch(1, draw=1)["data_0"])  # another draw differs


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squeezenet_swap(tmp_path_factory):
    out = tmp_path_factory.mktemp("swap")
    result = run_cli(
        "swap", str(SQUEEZENET), "--to", "relu,elu,identity", "--provider", "cpu,openvino",
        "--min-time", "0.05", "--min-runs", "5", "--out", str(out),
    )  # fmt: skip
    return result, out


def test_swap_prices_every_candidate_on_every_runtime(squeezenet_swap):
    result, out = squeezenet_swap
    assert result.returncode == 0, result.stderr
    record = storage.read_json(out / "swap.json", SwapRecord)
    assert len(record.sites) == 27 and record.replaced == list(range(26))  # not the Softmax head
    assert [s.role for s in record.sites] == ["activation"] * 26 + ["head"]
    cells = {(r.model, r.provider) for r in record.latency}
    assert cells == {(v, p) for v in ("original", "relu", "elu", "identity") for p in ("cpu", "openvino")}
    for r in record.latency:
        assert r.vs_baseline.low <= r.vs_baseline.value <= r.vs_baseline.high
        if r.model == "original":
            assert r.vs_baseline.value == pytest.approx(1.0)
    for variant in record.variants:
        assert storage.sha256((out / variant.file).read_bytes()) == variant.sha256
    assert record.inputs[0].source == "random normal, seed 0"
    for census in record.fusion:  # a real network's Concats and pools are not counted as activation work
        assert set(census.activation_nodes_left) <= sites.ACTIVATION_OPS, census.activation_nodes_left
    original = next(f for f in record.fusion if (f.model, f.provider) == ("original", "cpu"))
    assert sum(original.fused.values()) + original.activation_nodes_left.get("Relu", 0) == 26
    for name in ("swap.md", "swap.html"):
        assert "not retrained" in (out / name).read_text()
    distances = {v.name: v.distance for v in record.variants}
    assert distances["original"] is None and distances["relu"].max_abs == 0.0  # the same function
    # N×1000×1×1 is class scores; the light model's weights make every output the uniform 0.001, whatever the swap
    assert distances["elu"].argmax_agreement == 1.0 and distances["elu"].samples == 32
    assert "not retrained" in result.stderr.lower()


def no_site_model(tmp_path) -> Path:
    path = tmp_path / "add.onnx"
    onnx.save(tiny([helper.make_node("Add", ["x", "x"], ["y"])]), str(path))
    return path


def free_model(tmp_path) -> Path:
    path = tmp_path / "free.onnx"
    onnx.save(tiny([helper.make_node("Relu", ["x"], ["y"])], shape=("n", "c")), str(path))
    return path


@pytest.mark.parametrize(
    ("make", "args", "contains"),
    [
        (lambda t: (t / "junk.onnx", (t / "junk.onnx").write_bytes(b"nope"))[0], [], "not a valid ONNX model"),
        (no_site_model, [], "no activation site"),
        (lambda t: SQUEEZENET, ["--to", "swish"], "unknown candidate"),
        (free_model, [], "free dimensions"),
        (lambda t: SQUEEZENET, ["--input-shape", "data_0=1x5x224x224"], "does not run at input shape"),
        (lambda t: SQUEEZENET, ["--batch-sizes", "4"], "fixed batch of 1"),
        (lambda t: SQUEEZENET, ["--sites", "28"], "--sites"),
        (lambda t: SQUEEZENET, ["--roles", "gate"], "no site has the role gate"),
        (lambda t: SQUEEZENET, ["--roles", "tail"], "unknown role"),
    ],
)
def test_swap_refuses_bad_input_in_one_line(tmp_path, make, args, contains):
    out = tmp_path / "out"
    result = run_cli("swap", str(make(tmp_path)), *args, "--min-time", "0.05", "--min-runs", "5", "--out", str(out))
    assert_user_error(result, code=2, contains=contains)
    assert not (out / "swap.json").exists()


def test_every_light_model_the_onnx_package_ships_has_sites():
    """Architectures swap was never tuned on: every one yields sites and checked variants."""
    for path in sorted(LIGHT.glob("*.onnx")):
        model = onnx.load(str(path))
        found = sites.find_sites(model)
        assert found, path.name
        swap.build_variants(model, found, list(range(len(found))), ["elu", "gelu"])


pytestmark = pytest.mark.skipif(not LIGHT.is_dir(), reason=f"the onnx package has no light models at {LIGHT}")


def test_an_unused_initializer_listed_as_an_input_goes_with_it():
    """IR version 3 (the light ResNet-50) lists initializers as graph inputs; one no node reads is pruned from both."""
    model = onnx.load(str(RESNET50))
    swapped, _ = sites.swap(model, sites.find_sites(model), "elu")
    initializers = {t.name for t in swapped.graph.initializer}
    assert [i.name for i in swapped.graph.input if i.name not in initializers] == ["gpu_0/data_0"]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    assert run_ort(swapped, x).shape == (1, 1000)


def test_a_hard_coded_batch_is_freed_only_to_run_other_batch_sizes():
    model = onnx.load(str(RESNET50))
    inputs = resolve(model, [1, 2], shape={"gpu_0/data_0": (1, 3, 224, 224)})
    assert batch_reshapes(model, inputs) == ["n173"]
    assert batch_reshapes(model, resolve(model, [1])) == []
    x = inputs.batch(2)["gpu_0/data_0"]
    two = run_ort(with_input_shape(model, inputs, 2), x)
    one = run_ort(with_input_shape(model, inputs, 1), x[:1])
    assert two.shape == (2, 1000)
    np.testing.assert_allclose(two[:1], one, rtol=1e-4, atol=1e-5)  # the same function, image by image


def test_int8_calibration_feeds_match_a_fixed_batch():
    """SqueezeNet declares batch 1: every calibration feed must be one input, not a stack of 64."""
    from actprof.export import precision

    model = onnx.load(str(SQUEEZENET))
    x = resolve(model, [1]).batch(1)["data_0"]
    [int8] = precision.quantize_all(
        {"squeezenet": model.SerializeToString()}, np.concatenate([x] * 4), batch=1
    ).values()
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load_from_string(int8).graph.node}


def test_an_openvino_layer_that_runs_an_activation_alone_is_not_a_fusion():
    from actprof.runtimes import attribution

    layers = [("Convolution", ["Conv", "Relu"]), ("Eltwise", ["Elu"]), ("Eltwise", ["Add"])]
    census = attribution.census_of_runtime_layers(
        "m",
        layers,
        provider="openvino",
        opt_level="default",
        is_activation=attribution.classifier(sites.ACTIVATION_OPS),
    )
    assert census.fused == {"Convolution(Relu)": 1}
    assert census.activation_nodes_left == {"Elu": 1}  # the residual Add is not an activation


def test_inputs_must_be_an_npz_archive(tmp_path):
    single = tmp_path / "x.npy"
    np.save(single, np.zeros((1, 3, 224, 224), dtype=np.float32))
    result = run_cli("swap", str(SQUEEZENET), "--inputs", str(single), "--out", str(tmp_path / "out"))
    assert_user_error(result, code=2, contains="takes an .npz archive")


# --- ExecuTorch: a kernel it lacks, named ------------------------------------------------------------------

# What ExecuTorch writes to stderr when a method needs a kernel it lacks (its runtime, 1.x: method.cpp and
# operator_registry.cpp; older builds prefix glog's "E executorch:"); the Python error says only "0x:14".
MISSING_LOG = """\
[operator_registry.cpp:277] kernel 'aten::elu.out' not found.
[operator_registry.cpp:278] dtype: 6 | dim order: [
[operator_registry.cpp:278] 0,
[operator_registry.cpp:278] ]
[method.cpp:822] Missing operator: [0] aten::elu.out
E executorch:method.cpp:819] Missing operator: [29] aten::linear.out
[method.cpp:1128] There are 2 instructions don't have corresponding operator registered. See logs for details
"""


def test_the_ops_executorch_lacks_are_named_from_its_log():
    from actprof.errors import ModelFileError, ProviderUnavailable
    from actprof.runtimes.executorch import load_error, missing_kernels

    assert missing_kernels(MISSING_LOG) == ["aten::elu.out", "aten::linear.out"]
    error = load_error(MISSING_LOG, "Failed to load method forward, error: 0x:14")
    assert isinstance(error, ProviderUnavailable) and "\n" not in str(error)
    assert "portable kernels lack aten::elu.out, aten::linear.out" in str(error)
    lost = load_error("", "Failed to load method forward, error: 0x:14")
    assert isinstance(lost, ProviderUnavailable) and "portable kernels lack an op" in str(lost)
    other = load_error("", "Failed to load method forward, error: 0x:21")
    assert isinstance(other, ModelFileError) and "0x:21" in str(other)


def test_a_program_needing_a_missing_kernel_is_refused_naming_the_op():
    """A real lowered program whose ELU is renamed to an op no kernel implements: one line naming it, not the
    input shape (swap's first run lets this error through as it is)."""
    pytest.importorskip("executorch")
    import torch

    from actprof.errors import ProviderUnavailable
    from actprof.runtimes.executorch import _modules, load_forward

    _, lower, runtime, _ = _modules()
    exported = torch.export.export(torch.nn.ELU(), (torch.randn(2, 3),))
    program = bytes(lower(exported).to_executorch().buffer)
    assert load_forward(runtime.load_program(program)) is not None
    broken = runtime.load_program(program.replace(b"aten::elu", b"aten::elX"))
    with pytest.raises(ProviderUnavailable, match=r"portable kernels lack aten::elX\.out, which XNNPACK did not take"):
        load_forward(broken)

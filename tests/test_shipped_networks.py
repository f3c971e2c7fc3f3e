"""``swap`` on networks shaped like the ones people ship (examples.networks, built offline with PyTorch):
exporter patterns, gates and heads, several inputs, a transformer, approximation candidates."""

from __future__ import annotations

import re
import warnings
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from actprof.errors import UsageError
from actprof.graphs import sites
from actprof.graphs.candidates import candidate_nodes
from actprof.measure import swap
from actprof.measure.declared import Declared
from actprof.measure.distance import distance
from actprof.measure.inputs import Choices, parse_named_numbers, resolve_inputs
from actprof.measure.inputs_files import load_arrays
from actprof.runtimes.onnxruntime import cpu_session
from actprof.schema import storage
from actprof.schema.swap import SwapRecord
from examples.networks import build, export
from tests.helpers import assert_user_error, run_cli

EXPECTED = {
    "mobilenet_v3": {("HardSwish", "activation"): 7, ("Relu", "activation"): 7, ("HardSigmoid", "gate"): 3},
    "mobilenet_v3@13": {
        ("HardSwish (x·HardSigmoid(x))", "activation"): 7,
        ("Relu", "activation"): 7,
        ("HardSigmoid", "gate"): 3,
    },
    "efficientnet": {("SiLU (x·Sigmoid(x))", "activation"): 11, ("Sigmoid", "gate"): 3},
    "yolo": {("SiLU (x·Sigmoid(x))", "activation"): 4, ("Sigmoid", "head"): 1},
    "bert": {("GELU (Erf form)", "activation"): 2, ("Tanh", "activation"): 1},
    "vad": {("Relu", "activation"): 2, ("Sigmoid", "head"): 1},
    "paddle_mobilenet": {
        ("HardSwish (x·Clip(x+3, 0, 6)/6)", "activation"): 2,
        ("Relu", "activation"): 1,
        ("HardSigmoid", "gate"): 1,
    },
    "keras_mobilenet": {
        ("HardSwish (x·Clip(x+3, 0, 6)/6)", "activation"): 1,
        ("Relu", "activation"): 2,
        ("HardSigmoid (Clip(x+3, 0, 6)/6)", "gate"): 1,
        ("Sigmoid", "gate"): 1,
    },
}
# What each site kind computes, as a swap candidate: swapping a site for itself must leave the outputs alone.
SAME_AS = {
    "HardSwish": "hardswish",
    "HardSwish (x·HardSigmoid(x))": "hardswish",
    "HardSwish (x·Clip(x+3, 0, 6)/6)": "hardswish",
    "Relu": "relu",
    "SiLU (x·Sigmoid(x))": "silu",
    "GELU (Erf form)": "gelu",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hard_sigmoid",  # the gates here use slope 1/6, the candidate's
    "HardSigmoid (Clip(x+3, 0, 6)/6)": "hard_sigmoid",
}
SWAPPED_ROLES = ("activation", "gate")


@pytest.fixture(scope="module")
def networks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        built = {name: build(name) for name in EXPECTED if "@" not in name}
        built["mobilenet_v3@13"] = build("mobilenet_v3", opset=13)
    return built


def feeds_for(model: onnx.ModelProto, batch: int = 2) -> dict[str, np.ndarray]:
    names = [i.name for i in model.graph.input]
    shapes = {"input_ids": (batch, 16)} if "input_ids" in names else {}
    values = {"sr": 16000} if "sr" in names else {}
    return resolve_inputs(model, [batch], Choices(shapes, values, {}, None, seed=0)).batch(batch)


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    return cpu_session(model.SerializeToString()).run(None, feed)[0]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_sites_gates_and_heads_of_shipped_architectures(networks, name):
    found = sites.find_sites(networks[name])
    assert Counter((s.kind, s.role) for s in found) == EXPECTED[name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_site_is_exactly_the_activation_it_is_listed_as(networks, name):
    """Swapping every hidden activation and gate for what it is listed as changes no output: the patterns
    matched are the whole function (Paddle's HardSwish is one site, not a ReLU6 inside a product; Keras' gate is
    one HardSigmoid, not a ReLU6 then a Mul)."""
    model = networks[name]
    feed = feeds_for(model)
    swapped = model
    for kind, role in {(s.kind, s.role) for s in sites.find_sites(model) if s.role in SWAPPED_ROLES}:
        chosen = [s for s in sites.find_sites(swapped) if (s.kind, s.role) == (kind, role)]
        swapped, _ = sites.swap(swapped, chosen, SAME_AS[kind])
    onnx.checker.check_model(swapped, full_check=True)
    np.testing.assert_allclose(run(swapped, feed), run(model, feed), rtol=1e-4, atol=1e-5)


class TanhGelu(torch.nn.Module):
    """Linear → GELU's tanh approximation → Linear, as PyTorch writes it or as GPT-2's ``gelu_new`` (with Pow)."""

    def __init__(self, pow_form: bool) -> None:
        super().__init__()
        self.up, self.down, self.pow_form = torch.nn.Linear(8, 32), torch.nn.Linear(32, 4), pow_form

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(x)
        if self.pow_form:
            y = 0.5 * y * (1.0 + torch.tanh(0.7978845608028654 * (y + 0.044715 * torch.pow(y, 3.0))))
        else:
            y = torch.nn.functional.gelu(y, approximate="tanh")
        return self.down(y)


@pytest.mark.parametrize("pow_form", [False, True], ids=["pytorch", "gelu_new"])
def test_the_tanh_gelu_exporters_write_is_one_site(pow_form):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export(TanhGelu(pow_form), {"x": torch.randn(2, 8)}, ["y"])
    [site] = sites.find_sites(model)
    assert site.kind == "GELU (tanh form)" and site.role == "activation"
    feed = {"x": np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)}
    same, _ = sites.swap(model, [site], "gelu_tanh")
    np.testing.assert_allclose(run(same, feed), run(model, feed), rtol=1e-4, atol=1e-5)
    relu, _ = sites.swap(model, [site], "relu")
    assert not {"Tanh", "Pow"} & {n.op_type for n in relu.graph.node}


def test_gates_and_heads_are_listed_but_not_replaced_by_default(networks):
    model = networks["paddle_mobilenet"]
    found = sites.find_sites(model)
    chosen = swap.parse_sites(None, found, ("activation",))
    variants = swap.build_variants(model, found, chosen, ["relu"])
    ops = Counter(n.op_type for n in onnx.load_from_string(variants["relu"][0]).graph.node)
    assert ops["HardSigmoid"] == 1 and ops["Relu"] == 3 and ops["Clip"] == 0  # the gate stays
    every = swap.parse_sites(None, found, sites.ROLES)
    assert len(every) == len(found)
    yolo = sites.find_sites(networks["yolo"])
    assert [yolo[i].role for i in swap.parse_sites("sigmoid", yolo, ("activation",))] == ["head"]


def test_sites_can_be_chosen_by_number_range_and_kind(networks):
    found = sites.find_sites(networks["mobilenet_v3"])
    assert swap.parse_sites("1-3,5", found, ("activation",)) == [0, 1, 2, 4]
    hardswish = swap.parse_sites("hardswish", found, ("activation",))
    assert len(hardswish) == 7 and {found[i].kind for i in hardswish} == {"HardSwish"}
    for bad in ("0", "3-1", "18", "gelu", "x-2"):
        with pytest.raises(UsageError):
            swap.parse_sites(bad, found, ("activation",))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_site_answers_to_the_candidate_it_is(networks, name):
    """``--sites`` takes the names ``--to`` uses for what a site computes, beside the kinds' first words."""
    found = sites.find_sites(networks[name])
    for index, site in enumerate(found):
        assert index in swap.parse_sites(SAME_AS[site.kind], found, ("activation",)), site.kind
        assert index in swap.parse_sites(site.kind.split(" ")[0], found, ("activation",)), site.kind


def test_sites_named_as_the_table_names_them(networks):
    keras = sites.find_sites(networks["keras_mobilenet"])
    gates = swap.parse_sites("hard_sigmoid", keras, ("activation",))
    assert [keras[i].kind for i in gates] == ["HardSigmoid (Clip(x+3, 0, 6)/6)"]
    assert swap.parse_sites("hardsigmoid", keras, ("activation",)) == gates  # the kind's own first word
    model = networks["bert"]
    gelus = [s for s in sites.find_sites(model) if s.kind.startswith("GELU")]
    quick = sites.find_sites(sites.swap(model, gelus, "quick_gelu")[0])
    assert swap.parse_sites("quick_gelu", quick, ()) == swap.parse_sites("quickgelu", quick, ()) == [0, 1]
    with pytest.raises(UsageError, match=r"'relu6': .* answer to hard_sigmoid, hardsigmoid, hardswish, relu$"):
        swap.parse_sites("relu6", sites.find_sites(networks["paddle_mobilenet"]), ("activation",))


# --- approximations -----------------------------------------------------------------------------------


def one_op(name: str, opset: int) -> onnx.ModelProto:
    nodes, _ = candidate_nodes(name, "x", "y", opset_version=opset, tag="c")
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [64])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [64])],
    )
    ir_version = 9 if opset >= 20 else 8  # what every supported onnxruntime loads
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], ir_version=ir_version)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("quick_gelu", lambda x: x * sigmoid(1.702 * x)),
        ("relu6", lambda x: np.clip(x, 0, 6)),
        ("hard_sigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    ],
)
@pytest.mark.parametrize("opset", [9, 13, 20])
def test_approximation_candidates_compute_their_formula(name, reference, opset):
    x = np.linspace(-8, 8, 64, dtype=np.float32)
    model = one_op(name, opset)
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(run(model, {"x": x}), reference(x), rtol=1e-5, atol=1e-6)


def test_a_swapped_in_quick_gelu_is_one_site_not_a_gate(networks):
    model = networks["bert"]
    found = [s for s in sites.find_sites(model) if s.kind.startswith("GELU")]
    swapped, _ = sites.swap(model, found, "quick_gelu")
    kinds = Counter((s.kind, s.role) for s in sites.find_sites(swapped))
    assert kinds[("QuickGELU (x·Sigmoid(1.702x))", "activation")] == 2 and not any(r == "gate" for _, r in kinds)


def _gated(*between: str) -> onnx.ModelProto:
    """x (N×4×4×8, NHWC as tf2onnx leaves it) times Sigmoid(s) passed through ``between`` ops; and a Sigmoid
    multiplied by itself (a square, no gate)."""
    h = onnx.helper
    nodes, name = [h.make_node("Sigmoid", ["s"], ["g0"])], "g0"
    for n, op in enumerate(between):
        attrs = {"perm": [0, 2, 3, 1]} if op == "Transpose" else {}
        nodes.append(h.make_node(op, [name], [f"g{n + 1}"], **attrs))
        name = f"g{n + 1}"
    nodes += [h.make_node("Mul", ["x", name], ["y"]), h.make_node("Sigmoid", ["y"], ["t"])]
    nodes += [h.make_node("Mul", ["t", "t"], ["z"]), h.make_node("Relu", ["z"], ["out"])]
    floats = onnx.TensorProto.FLOAT
    graph = h.make_graph(
        nodes,
        "gated",
        [h.make_tensor_value_info("x", floats, [1, 4, 4, 8]), h.make_tensor_value_info("s", floats, [1, 8, 1, 1])],
        [h.make_tensor_value_info("out", floats, None)],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("between", [(), ("Transpose",), ("Transpose", "Identity")])
def test_a_gate_is_found_through_the_ops_that_move_its_values(between):
    roles = [(s.kind, s.role) for s in sites.find_sites(_gated(*between))]
    assert roles == [("Sigmoid", "gate"), ("Sigmoid", "activation"), ("Relu", "activation")]


def test_output_distance():
    reference = np.array([[[[1.0]], [[3.0]]], [[[2.0]], [[0.0]]]])  # N×C×1×1: class scores
    moved = reference + np.array([[[[0.5]], [[0.0]]], [[[-2.5]], [[0.0]]]])
    d = distance(reference, moved, output="y")
    assert d.max_abs == 2.5 and d.mean_abs == 0.75 and d.argmax_agreement == 0.5 and d.samples == 2
    assert d.relative == pytest.approx(np.linalg.norm([0.5, 2.5]) / np.linalg.norm([1, 3, 2, 0]))
    grid = distance(np.zeros((2, 4, 5)), np.full((2, 4, 5), np.nan), output="y")
    assert grid.argmax_agreement is None and grid.max_abs > 1e300  # not class scores; NaN is far, and finite


# --- several inputs -------------------------------------------------------------------------------------


@given(spec=st.text(max_size=40))
def test_named_number_parser_never_crashes(spec):
    try:
        parsed = parse_named_numbers(spec, "--vocab-size", integer=True)
    except UsageError:
        return
    assert all(isinstance(v, int) and v >= 1 for v in parsed.values())


DECLARED = [
    Declared("input_ids", ("batch", "sequence"), np.dtype(np.int64), 0),
    Declared("attention_mask", ("batch", "sequence"), np.dtype(np.int64), 0),
    Declared("state", (2, "batch", 8), np.dtype(np.float32), 1),
    Declared("sr", (), np.dtype(np.int64), None),
]
ARRAYS = st.dictionaries(
    st.sampled_from(["input_ids", "attention_mask", "state", "sr", "other"]),
    st.builds(
        lambda dtype, shape: np.zeros(shape, dtype=dtype),
        st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.bool_]),
        st.lists(st.integers(0, 3), max_size=4).map(tuple),
    ),
    max_size=4,
)


@given(arrays=ARRAYS)
def test_the_npz_loader_accepts_what_matches_and_refuses_the_rest_in_one_line(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("npz") / "inputs.npz"
    np.savez(path, **arrays)
    try:
        loaded = load_arrays(path, DECLARED)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    by_name = {d.name: d for d in DECLARED}
    samples, named = set(), {}
    for name, array in loaded.items():
        spec = by_name[name]
        assert array.ndim == len(spec.dims)
        assert all(size == dim for size, dim in zip(array.shape, spec.dims, strict=True) if isinstance(dim, int))
        assert spec.batch_axis is None or array.shape[spec.batch_axis] > 0
        samples |= {array.shape[spec.batch_axis]} if spec.batch_axis is not None else set()
        for axis, (size, dim) in enumerate(zip(array.shape, spec.dims, strict=True)):
            if isinstance(dim, str) and axis != spec.batch_axis:
                named.setdefault(dim, set()).add(size)
    assert len(samples) <= 1  # sample i of one input goes with sample i of the others
    assert all(len(sizes) == 1 for sizes in named.values())


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"input_ids": (40, 12), "attention_mask": (30, 12)}, "input_ids holds 40 samples and attention_mask 30;"),
        ({"input_ids": (40, 12), "state": (2, 30, 8)}, "input_ids holds 40 samples and state 30;"),  # its axis 1
        (
            {"input_ids": (40, 12), "attention_mask": (40, 16)},
            "dimension 'sequence' is 12 in input_ids but 16 in attention_mask;",
        ),
    ],
)
def test_npz_arrays_that_disagree_with_each_other_are_refused(tmp_path, arrays, message):
    path = tmp_path / "inputs.npz"
    np.savez(
        path, **{name: np.zeros(shape, np.int64 if name != "state" else np.float32) for name, shape in arrays.items()}
    )
    with pytest.raises(UsageError, match="^" + re.escape(f"{path}: {message}")):
        load_arrays(path, DECLARED)


def test_given_token_ids_are_checked_against_the_vocab_size_and_the_shapes_given(networks, tmp_path):
    model, path = networks["bert"], tmp_path / "ids.npz"
    np.savez(path, input_ids=np.arange(40 * 12).reshape(40, 12) + 120)  # ids 120 to 599
    assert resolve_inputs(model, [1], Choices({}, {}, {}, path, 0)).feeds[0].given is not None
    with pytest.raises(
        UsageError, match=r"input_ids holds token id 599, outside the vocabulary of 500 \(--vocab-size\)$"
    ):
        resolve_inputs(model, [1], Choices({}, {}, {"input_ids": 500}, path, 0))
    with pytest.raises(UsageError, match=r"^dimension 'sequence' is 12 in input_ids \(ids.npz\) but 16 in attention"):
        resolve_inputs(model, [1], Choices({"attention_mask": (1, 16)}, {}, {}, path, 0))
    with pytest.raises(UsageError, match=r"^--input-shape input_ids=1x16 does not match its array in .*, shaped 40x12"):
        resolve_inputs(model, [1], Choices({"input_ids": (1, 16)}, {}, {}, path, 0))


def test_inputs_of_a_transformer_get_token_ids_masks_and_shared_lengths(networks):
    model = networks["bert"]
    inputs = resolve_inputs(model, [1, 4], Choices({"input_ids": (1, 24)}, {}, {}, None, 0))
    feed = inputs.batch(4)
    assert {k: v.shape for k, v in feed.items()} == {k: (4, 24) for k in inputs.names}  # 'sequence' shared
    assert feed["input_ids"].max() < 1000 and set(np.unique(feed["token_type_ids"])) <= {0, 1}
    assert (feed["attention_mask"] == 1).all()
    sources = [f.source for f in inputs.feeds]
    assert sources == [
        "token ids < 1000 (rows of word.weight)",
        "ones (a mask)",
        "token ids < 2 (rows of segment.weight)",
    ]
    narrow = resolve_inputs(model, [1], Choices({"input_ids": (1, 8)}, {}, {"input_ids": 10}, None, 0))
    assert narrow.batch(1)["input_ids"].max() < 10


def test_a_recurrent_state_follows_the_batch(networks):
    inputs = resolve_inputs(networks["vad"], [1, 8], Choices({}, {"sr": 8000}, {}, None, 0))
    feed = inputs.batch(8)
    assert feed["audio"].shape == (8, 256) and feed["state"].shape == (2, 8, 64)
    assert feed["sr"].shape == () and feed["sr"] == 8000 and feed["sr"].dtype == np.int64


def swapped(model: onnx.ModelProto, folder, *args: str) -> tuple[SwapRecord, object]:
    """``actprof swap`` on ``model`` on ORT's CPU provider and OpenVINO, briefly; its record and out folder."""
    path, out = folder / "model.onnx", folder / "out"
    onnx.save(model, str(path))
    timing = ("--provider", "cpu,openvino", "--min-time", "0.05", "--min-runs", "5")
    result = run_cli("swap", str(path), *args, *timing, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return storage.read_json(out / "swap.json", SwapRecord), out


@pytest.mark.slow
def test_a_transformer_is_swapped_and_profiled_end_to_end(networks, tmp_path):
    record, out = swapped(
        networks["bert"], tmp_path, "--input-shape", "input_ids=1x32", "--to", "relu,gelu_tanh,quick_gelu,silu",
        "--sites", "gelu", "--batch-sizes", "1,4",
    )  # fmt: skip
    assert [i.name for i in record.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert record.replaced == [0, 1]  # the two GELUs, not the pooler's Tanh
    assert {(r.model, r.provider, r.batch) for r in record.latency} == {
        (v, p, b)
        for v in ("original", "relu", "gelu_tanh", "quick_gelu", "silu")
        for p in ("cpu", "openvino")
        for b in (1, 4)
    }
    distances = {v.name: v.distance for v in record.variants if v.distance}
    assert distances["gelu_tanh"].max_abs < distances["relu"].max_abs  # the tanh form is the closer stand-in
    assert all(d.argmax_agreement is not None and d.samples == 32 for d in distances.values())
    assert all(site.elements == 32 * 512 for site in record.sites[:2])  # measured: shape inference gives up here
    assert "How far each variant" in (out / "swap.md").read_text()


@pytest.mark.slow
def test_real_inputs_from_an_npz_feed_every_input_and_every_comparison(networks, tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=(40, 12))
    np.savez(tmp_path / "real.npz", input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=ids % 2)
    record, _ = swapped(
        networks["bert"], tmp_path, "--inputs", str(tmp_path / "real.npz"), "--to", "quick_gelu",
        "--precision", "fp32,int8",
    )  # fmt: skip
    assert [(i.shape, i.source) for i in record.inputs] == [([1, 12], "real.npz (given)")] * 3  # 'sequence' = 12
    [distance] = [v.distance for v in record.variants if v.distance]
    assert distance.samples == 40  # every given sequence, not only the 32 draws
    assert record.calibration == "8 inputs: real.npz (given)"


@pytest.mark.slow
def test_a_recurrent_model_with_three_inputs_is_swapped_end_to_end(networks, tmp_path):
    record, _ = swapped(networks["vad"], tmp_path, "--input-value", "sr=16000", "--to", "elu", "--batch-sizes", "1,2")
    assert [(i.name, i.shape) for i in record.inputs] == [("audio", [1, 256]), ("state", [2, 1, 64]), ("sr", [])]
    assert record.inputs[2].source == "16000 (--input-value)"
    assert [s.role for s in record.sites] == ["activation", "activation", "head"] and record.replaced == [0, 1]
    assert len(record.latency) == 2 * 2 * 2


# --- bad input: one line, exit code 2 ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(networks, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shipped")
    paths = {}
    for name in ("bert", "vad"):
        paths[name] = folder / f"{name}.onnx"
        onnx.save(networks[name], str(paths[name]))
    ids = np.zeros((2, 16), np.int64)
    np.savez(folder / "stray.npz", input_ids=ids, mask=ids)
    np.savez(folder / "float_ids.npz", input_ids=ids.astype(np.float32))
    np.savez(folder / "flat_ids.npz", input_ids=ids[0])
    np.savez(folder / "big_ids.npz", input_ids=ids + 5000)
    return folder, paths


def test_the_sites_are_listed_without_profiling(saved, tmp_path):
    _, paths = saved
    out = tmp_path / "out"
    shapes = ("--input-shape", "input_ids=1x16", "--input-shape", "attention_mask=1x16")  # repeated, merged
    args = (*shapes, "--vocab-size", "input_ids=100", "--sites", "gelu", "--list", "--out", str(out))
    result = run_cli("swap", str(paths["bert"]), *args)
    assert result.returncode == 0, result.stderr
    assert "2 of 3 would be replaced" in result.stderr and "GELU (Erf form)" in result.stderr  # the console
    assert "input input_ids: 1x16 int64, token ids < 100 (--vocab-size)" in result.stderr
    assert "input attention_mask: 1x16 int64, ones (a mask)" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("network", "args", "contains"),
    [
        ("vad", [], "input 'sr' (int64, shape []) needs values"),
        ("vad", ["--input-value", "rate=16000"], "--input-value names rate"),
        ("vad", ["--input-value", "sr=1.5"], "give an integer"),
        ("vad", ["--input-value", "rate=1", "--input-value", "sr=16000"], "--input-value names rate"),  # both kept
        ("vad", ["--input-value", "sr=16000", "--input-value", "sr=8000"], "gives sr twice, 16000 and 8000"),
        ("vad", ["--input-value", "sr=16000", "--provider", "torch", "--list"], "times models with one input"),
        ("vad", ["--input-value", "sr=16000", "--precision", "bf16", "--list"], "bf16 does not run on --provider cpu"),
        ("bert", ["--input-shape", "input_ids=1x16", "--sites", "relu6"], "sites answer to gelu, tanh"),
        ("vad", ["--provider", "torch", "--input-value", "sr=16000"], "times models with one input"),
        ("bert", [], "free dimensions"),
        ("bert", ["--input-shape", "input_ids=1x16", "--inputs", "{dir}/stray.npz"], "'mask' is named like no input"),
        ("bert", ["--input-shape", "input_ids=1x16", "--inputs", "{dir}/float_ids.npz"], "holds float32 values"),
        ("bert", ["--input-shape", "input_ids=1x16", "--inputs", "{dir}/flat_ids.npz"], "has 1 dimensions"),
        (
            "bert",
            ["--input-shape", "input_ids=1x16", "--inputs", "{dir}/big_ids.npz"],
            "outside the vocabulary of 1000",
        ),
        ("bert", ["--input-shape", "input_ids=1x16", "--vocab-size", "input_ids=5000"], "larger than the 1000 rows"),
        ("bert", ["--input-shape", "input_ids=1x16", "--roles", "head"], "no site has the role head"),
    ],
)
def test_bad_inputs_are_refused_in_one_line(saved, tmp_path, network, args, contains):
    folder, paths = saved
    out = tmp_path / "out"
    args = [a.format(dir=folder) for a in args]
    result = run_cli("swap", str(paths[network]), *args, "--min-time", "0.05", "--min-runs", "5", "--out", str(out))
    assert_user_error(result, code=2, contains=contains)
    assert not (out / "swap.json").exists()

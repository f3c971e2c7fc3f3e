"""Deployed without ONNX Runtime: PyTorch eager, TorchInductor and ExecuTorch/XNNPACK as runtimes.

Every model is the ONNX file rebuilt as ``torch.nn`` layers (``runtimes.torch_graph``); these tests check the
rebuild against ONNX Runtime on real models, read real Inductor code and real ExecuTorch partitions, and run
the CLI end to end. Nothing is mocked: Inductor compiles with the machine's g++, ExecuTorch lowers for real.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from actprof import activations
from actprof.errors import EXIT_USAGE, ModelFileError
from actprof.measure.cells import images
from actprof.runtimes import inductor_code
from actprof.runtimes.onnxruntime import cpu_session
from actprof.runtimes.pytorch import TorchBackend, bf16_native
from actprof.runtimes.torch_graph import to_torch
from actprof.schema import storage
from actprof.schema.profiling import ProfileRecord
from tests.helpers import assert_user_error, run_cli

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def ort_outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    session = cpu_session(model)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def torch_outputs(model: bytes | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out = to_torch(model)(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple) else out).numpy()


# --- the rebuild ------------------------------------------------------------------------------------


def test_every_activation_rebuilds_as_its_torch_module_with_the_same_outputs(trained_models):
    """Each of actprof's activations comes back as the module the activation table builds (nn.ELU, nn.GELU,
    nn.SiLU from its Sigmoid·Mul pattern…), and the network computes what ONNX Runtime computes."""
    out, records = trained_models
    x = images(64)
    for name in records:
        data = (out / f"{name}.onnx").read_bytes()
        module = to_torch(data)
        expected = type(activations.get(name).module())
        kinds = {type(m) for m in module.children()}
        assert expected in kinds, (name, kinds)
        np.testing.assert_allclose(torch_outputs(data, x), ort_outputs(data, x), atol=2e-4, err_msg=name)


@pytest.mark.parametrize("model", ["light_densenet121.onnx", "light_squeezenet.onnx", "light_inception_v2.onnx"])
def test_real_architectures_rebuild_with_the_same_outputs(model):
    """Concat, BatchNormalization, asymmetric pool padding, opset-7 Softmax, weights from ConstantOfShape."""
    proto = onnx.load(LIGHT / model)
    produced = {out for node in proto.graph.node for out in node.output}
    initializers = {t.name for t in proto.graph.initializer}
    data_input = next(v for v in proto.graph.input if v.name not in produced | initializers)
    shape = [d.dim_value or 1 for d in data_input.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(torch_outputs(proto, x), ort_outputs(proto.SerializeToString(), x), atol=1e-5)


def test_an_op_it_does_not_rebuild_is_refused_in_one_line():
    node = helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")
    graph = helper.make_graph(
        [node],
        "einsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    with pytest.raises(ModelFileError, match="cannot rebuild ONNX op Einsum") as error:
        to_torch(model)
    assert "\n" not in str(error.value)


# --- what Inductor generated ------------------------------------------------------------------------


def test_inductor_fuses_relu_into_onednn_convolutions_and_elu_only_into_its_own_loops(trained_models):
    """Read from the code Inductor generates here: ReLU rides in oneDNN's convolution epilogue; ELU has no
    oneDNN attribute, so it is computed in the C++ loop with the pool (or the bias add) that reads it."""
    out, _ = trained_models
    inductor = TorchBackend("inductor")
    relu = inductor.census("relu", (out / "relu.onnx").read_bytes(), opt_level="default")
    elu = inductor.census("elu", (out / "elu.onnx").read_bytes(), opt_level="default")
    assert relu.fused.get("oneDNN.Conv(Relu)") == 2, relu.fused
    assert not any(key.startswith("oneDNN") for key in elu.fused), elu.fused
    assert elu.fused.get("C++ loop(Elu)") == 3 and not elu.activation_nodes_left, elu
    eager = TorchBackend("torch").census("elu", (out / "elu.onnx").read_bytes(), opt_level="default")
    assert eager.activation_nodes_left == {"Elu": 3} and not eager.fused


def test_the_unary_attribute_of_a_onednn_convolution_is_read():
    source = (
        "def call(self, args):\n"
        "    buf0 = torch.ops.mkldnn._convolution_pointwise.default(arg0_1, w, b, [0, 0], [1, 1], [1, 1], 1, "
        "'swish', [None], '')\n"
        "    buf1 = torch.ops.mkldnn._convolution_pointwise.default(buf0, w, b, [0, 0], [1, 1], [1, 1], 1, "
        "'none', [None], '')\n"
        "    cpp_fused_elu_max_pool2d_with_indices_0(buf1, buf2)\n"
    )
    census = inductor_code.census("m", source, {"SiLU": 1, "Elu": 1}, provider="inductor", opt_level="default")
    assert census.fused == {"C++ loop(Elu)": 1, "oneDNN.Conv(SiLU)": 1}
    assert census.ops == {"C++ loop": 1, "oneDNN.Conv": 2}


KNOWN = sorted({*inductor_code.NETWORK, *inductor_code.ACTIVATION})


@given(st.lists(st.sampled_from(KNOWN), min_size=1, max_size=5, unique=True), st.integers(0, 99))
def test_a_loop_name_lists_back_the_ops_it_was_named_after(tokens, index):
    """Inductor names a loop cpp_fused_<aten names sorted>_<n>; each name maps back to its ONNX op."""
    name = f"cpp_fused_{'_'.join(sorted(tokens))}_{index}"
    expected = sorted({inductor_code.NETWORK.get(t) or inductor_code.ACTIVATION[t] for t in tokens})
    assert inductor_code.loop_ops(name) == expected
    assert inductor_code.loop_ops(f"graph_7_{name}") == expected


def test_inductor_without_a_working_compiler_does_not_bind():
    """A machine without g++: the first compile fails, and --provider inductor says what it needs."""
    from actprof.runtimes import pytorch

    with torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/g++",), "force_disable_caches": True}):
        reason = pytorch._inductor_works.__wrapped__()
    assert reason is not None and "C++ compiler" in reason and "\n" not in reason


@pytest.mark.skipif(bf16_native(), reason="this CPU runs bf16 natively: --precision bf16 is accepted here")
def test_bf16_is_refused_where_the_cpu_would_emulate_it(trained_models, tmp_path):
    out, _ = trained_models
    result = run_cli(
        "profile", "--models", str(out), "--act", "relu", "--provider", "torch", "--precision", "bf16",
        "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert_user_error(result, code=EXIT_USAGE, contains="runs on no provider here")
    assert not (tmp_path / "r" / "profile.json").exists()


# --- ExecuTorch -------------------------------------------------------------------------------------


def test_executorch_missing_names_the_extra():
    """Where the executorch package cannot be imported, the provider does not bind and names the extra."""
    code = (
        "import sys; sys.modules['executorch'] = None\n"
        "from actprof.runtimes.executorch import ExecuTorchBackend\n"
        "status = ExecuTorchBackend().status(); print(status.binds, status.reason)"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.startswith("False") and "actprof[executorch]" in printed


def test_executorch_delegates_relu_to_xnnpack_and_leaves_elu_on_portable_kernels(trained_models):
    pytest.importorskip("executorch")
    from actprof.runtimes.executorch import ExecuTorchBackend

    out, _ = trained_models
    backend = ExecuTorchBackend()
    relu = backend.census("relu", (out / "relu.onnx").read_bytes(), opt_level="default")
    elu = backend.census("elu", (out / "elu.onnx").read_bytes(), opt_level="default")
    assert relu.fused == {"XNNPACK(Relu)": 3} and not relu.activation_nodes_left
    assert elu.activation_nodes_left == {"Elu": 3} and elu.ops.get("portable.elu") == 3


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_profile_runs_the_torch_runtimes_end_to_end(trained_models, tmp_path):
    """The same cells as every runtime: accuracy on the test split, agreement with ORT's fp32, memory, and the
    compile (lowering) time apart from latency; per-op time for torch and Inductor."""
    pytest.importorskip("executorch")
    out, _ = trained_models
    result = run_cli(
        "profile", "--models", str(out), "--act", "relu,elu", "--provider", "torch,inductor,executorch",
        "--batch-sizes", "1,8", "--min-time", "0.02", "--min-runs", "5", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    record = storage.read_json(tmp_path / "profile.json", ProfileRecord)
    cells = {(c.model, c.provider): c for c in record.deployments}
    assert len(cells) == 6
    for (model, provider), cell in cells.items():
        assert cell.argmax_agreement >= 0.99, (model, provider, cell)
        assert (cell.compile_seconds is None) == (provider == "torch"), (provider, cell.compile_seconds)
    profiled = {(p.provider, p.model, p.batch) for p in record.op_profiles}
    assert ("inductor", "elu", 8) in profiled and not any(p == "executorch" for p, _, _ in profiled)
    ratios = {(r.provider, r.model, r.batch): r.vs_baseline for r in record.latency if r.variant == "as-trained"}
    assert all(ratios[(p, "elu", b)] is not None for p in ("torch", "inductor", "executorch") for b in (1, 8))

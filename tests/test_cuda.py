"""The CUDA paths on a real NVIDIA GPU: PyTorch training and ONNX Runtime's CUDA execution provider.

Every test here skips, with the reason shown, on a machine without a GPU (the refusals there are tested in
test_bad_inputs and test_profile). They ran on the lent H100: see reports/gpu/.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from actprof import activations
from actprof.errors import UsageError
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.measure.cells import images
from actprof.measure.profile import run_profile
from actprof.runtimes import attribution, onnxruntime
from actprof.schema import storage
from tests.helpers import FAST, quick_settings, train_and_export

pytestmark = pytest.mark.gpu
CUDA_EP = "CUDAExecutionProvider"


@pytest.fixture(scope="module")
def torch_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA GPU here: GPU training is checked on a GPU machine (reports/gpu/)")


@pytest.fixture(scope="module")
def ort_cuda() -> None:
    status = onnxruntime.provider_status("cuda")
    if not status.binds:
        pytest.skip(f"ONNX Runtime's CUDA provider does not bind here ({status.reason})")


def test_training_on_cuda_converges_exports_and_keeps_parity(torch_cuda, tmp_path, sample):
    act = activations.get("elu")
    record = train_and_export(act, replace(FAST, device="cuda"), sample, tmp_path)
    assert record.train.config.device == "cuda"
    assert record.train.device_name == torch.cuda.get_device_name()
    assert record.train.config.precision in {"bf16", "fp32"}
    assert record.train.test_accuracy > 0.8
    assert record.export.parity.max_abs_diff <= record.export.parity.tolerance
    assert record.export.onnx_test_accuracy > 0.8
    assert (tmp_path / "elu.onnx").is_file()


def _sessions(trained_models, name: str, *, cuda_graph: bool):
    model = (trained_models[0] / f"{name}.onnx").read_bytes()
    options = onnxruntime.session_options(threads=0, opt_level="all")
    gpu = onnxruntime.create_session(model, "cuda", options, cuda_graph=cuda_graph)
    cpu = onnxruntime.create_session(model, "cpu", onnxruntime.session_options(threads=0, opt_level="all"))
    return gpu, cpu


# ORT's CUDA provider runs fp32 convolutions and GEMMs in TF32 by default (10-bit mantissa): logits of
# magnitude ~5 then differ from the CPU's by up to ~2e-3, measured on the H100.
TF32_ATOL = 1e-2


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plain", "cuda-graph"])
@pytest.mark.parametrize("name", ["relu", "elu", "selu", "gelu", "mish"])
def test_io_bound_gpu_output_matches_the_cpu_for_every_new_input(ort_cuda, trained_models, name, cuda_graph):
    """The bound buffers are reused run after run (a CUDA graph replays on them): new input, new output."""
    gpu, cpu = _sessions(trained_models, name, cuda_graph=cuda_graph)
    first, second = images(64), images(128)[64:]
    expected = {id(b): cpu.run([OUTPUT_NAME], {INPUT_NAME: b})[0] for b in (first, second)}
    assert np.abs(expected[id(first)] - expected[id(second)]).max() > 1.0  # different images, different logits
    target = onnxruntime.cuda_compute_target(gpu, first)
    for batch in (first, second, first):
        target.load(batch)
        target.run()
        got = target.output()
        np.testing.assert_allclose(got, expected[id(batch)], atol=TF32_ATOL, rtol=0)
        assert (got.argmax(1) == expected[id(batch)].argmax(1)).mean() >= 0.98


def test_cuda_graph_refuses_a_model_with_nodes_off_the_gpu(ort_cuda, trained_models):
    """Celu has no CUDA kernel: ORT runs it on the CPU between copies, which a CUDA graph cannot capture."""
    model = (trained_models[0] / "celu.onnx").read_bytes()
    options = onnxruntime.session_options(threads=0, opt_level="all")
    with pytest.raises(UsageError, match="--cuda-graph needs every node on the GPU"):
        onnxruntime.create_session(model, "cuda", options, cuda_graph=True)
    found = storage.find_models(trained_models[0], ["relu", "celu"])
    settings = quick_settings(["cuda"], [1], ablation=False, cuda_graph=True)
    with pytest.raises(UsageError, match=r"^celu \(as-trained\): --cuda-graph"):
        run_profile(found, settings)


def test_a_missing_cuda_library_is_named_in_the_refusal(ort_cuda):
    """Without the preload (and without torch, which loads the same libraries), ORT cannot find cuBLAS."""
    import subprocess
    import sys

    code = (
        "import actprof.runtimes.onnxruntime as p\n"
        "p._preload_cuda_libraries = lambda ort: None\n"
        "s = p.provider_status('cuda')\n"
        "print(s.binds)\n"
        "print(s.reason)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    binds, reason = result.stdout.splitlines()[:2]
    if binds == "True":
        pytest.skip(f"the CUDA libraries are on the system loader path here, nothing goes missing ({reason})")
    assert "did not bind" in reason and "use --provider cpu" in reason
    assert "[missing lib" in reason, reason


def test_cuda_profile_runs_every_activation_node_on_the_gpu(ort_cuda, trained_models):
    names = ["relu", "elu", "selu", "gelu", "mish", "softplus"]
    found = storage.find_models(trained_models[0], names)
    settings = quick_settings(["cuda"], [1, 64])
    record = run_profile(found, settings)
    assert record.gpu is not None and record.gpu.name
    assert [p.name for p in record.providers] == ["cuda"] and record.providers[0].binds
    for op_profile in record.op_profiles:
        acts = [op for op in op_profile.ops if attribution.is_activation_op(op.op_type)]
        if op_profile.model != "relu":
            assert acts, op_profile.model
        assert all(op.provider == CUDA_EP for op in acts), (op_profile.model, acts)
    modes = {(r.model, r.variant, r.mode) for r in record.latency}
    for name in names:
        assert (name, "as-trained", "compute") in modes
        assert (name, "as-trained", "end-to-end") in modes


def test_cuda_graph_profile_times_every_model(ort_cuda, trained_models):
    found = storage.find_models(trained_models[0], ["relu", "elu"])
    settings = quick_settings(["cuda"], [64], cuda_graph=True)
    record = run_profile(found, settings)
    assert {r.model for r in record.latency} == {"relu", "elu"}
    assert all(r.stats.p50_ms > 0 for r in record.latency)


def test_a_cuda_graph_refusal_comes_before_the_cpu_pass(ort_cuda, trained_models):
    """Under --provider all the CPU is timed first: an unusable --cuda-graph must not throw that away."""
    found = storage.find_models(trained_models[0], ["relu", "celu"])
    settings = quick_settings(["cpu", "cuda"], [1], cuda_graph=True)
    said: list[str] = []
    with pytest.raises(UsageError, match=r"^celu \(as-trained\): --cuda-graph"):
        run_profile(found, settings, on_progress=said.append)
    assert said == []

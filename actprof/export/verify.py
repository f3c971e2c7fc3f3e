"""Export a trained model to ONNX, check it, prove parity with PyTorch, and count its nodes.

The exporter and opset are recorded with every model, and so is the node census: a decomposed
activation (GELU below opset 20, Softplus's threshold branch) must never be mistaken for the cost of
the activation itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from actprof.errors import ParityError
from actprof.export.config import DEFAULT_OPSET, ExportOptions
from actprof.export.store import reuse_or_export
from actprof.graphs.census import ACTIVATION_SITES, activation_census, census, is_decomposed
from actprof.runtimes.onnxruntime import cpu_session
from actprof.runtimes.reference import cpu_logits, run_batches
from actprof.schema.storage import sha256
from actprof.schema.training import ExportResult, Parity

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

PARITY_TOLERANCE = 1e-4
PARITY_IMAGES = 512


def check_parity(
    session: ort.InferenceSession,
    torch_logits: np.ndarray,
    x: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> Parity:
    """Parity of the session's logits for ``x`` with PyTorch's (ParityError past the tolerance)."""
    return parity_of(run_batches(session, x), torch_logits, tolerance)


def parity_of(onnx_logits: np.ndarray, torch_logits: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> Parity:
    """Parity of logits already computed for the same images (ParityError past the tolerance)."""
    max_diff = float(np.max(np.abs(onnx_logits - torch_logits)))
    agree = bool(np.array_equal(onnx_logits.argmax(1), torch_logits.argmax(1)))
    parity = Parity(images=len(onnx_logits), max_abs_diff=max_diff, argmax_agree=agree, tolerance=tolerance)
    if not (max_diff <= tolerance and agree):
        raise ParityError(
            f"ONNX output differs from PyTorch (max |Δlogit| {max_diff:.2e}, tolerance {tolerance:.0e}, "
            f"argmax agree: {agree}); try another --opset or --exporter"
        )
    return parity


def export_and_verify(
    model: torch.nn.Module,
    *,
    expected_ops: tuple[str, ...],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
) -> tuple[bytes, ExportResult]:
    """Export, run the full ONNX checker, prove parity on real test images and measure ONNX accuracy.

    ``test_images`` are float32 (N, 1, 28, 28) in [0, 1]. Returns the serialized model and its record;
    nothing is written here.
    """
    import onnx
    import torch

    ExportOptions(opset=opset, exporter=exporter)  # checks them
    started = time.perf_counter()
    proto = reuse_or_export(model, opset=opset, exporter=exporter)
    export_seconds = time.perf_counter() - started
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ParityError(f"the exported model fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    data = proto.SerializeToString()

    probe = test_images[:PARITY_IMAGES]
    with torch.inference_mode():
        torch_logits = model.eval()(torch.from_numpy(probe)).numpy()
    # The probe is the test split's first images: its ONNX logits are those of the accuracy pass.
    onnx_logits = cpu_logits(data, test_images, cpu_session(data))
    parity = parity_of(onnx_logits[: len(probe)], torch_logits)
    predictions = onnx_logits.argmax(1)

    counts = census(proto)
    act_counts = activation_census(counts)
    return data, ExportResult(
        exporter=exporter,
        opset=opset,
        file="",
        sha256=sha256(data),
        size_bytes=len(data),
        export_seconds=export_seconds,
        census=counts,
        activation_census=act_counts,
        expected_ops=list(expected_ops),
        decomposed=is_decomposed(act_counts, expected_ops, _sites(model)),
        parity=parity,
        onnx_test_accuracy=float(np.mean(predictions == test_labels)),
        onnx_test_images=len(test_labels),
    )


def _sites(model) -> int:
    """The activations the network applies (a user's network may call one module twice)."""
    return getattr(model, "ACT_CALLS", None) or len(getattr(model, "ACT_LAYERS", range(ACTIVATION_SITES)))

"""Deployment precisions: the int8 and fp16 models derived from a trained fp32 model.

int8 is static quantization with ONNX Runtime's own tools (``quantize_static``, QDQ format, uint8
activations and int8 weights), calibrated on real MNIST *training* images — never validation or test
images; which ones is recorded. fp16 converts the graph's float tensors with fp32 inputs and outputs
kept (``keep_io_types``), so callers feed and read fp32. bf16 needs no derived model: OpenVINO compiles the
fp32 graph at bf16 when asked (``runtime_openvino``).

ONNX Runtime's quantizer calibrates with a session of its own that uses a per-session thread pool, which
ORT refuses in a process where actprof has set the global pool. Quantization therefore runs in a fresh
child process (spawned, one for all models), which also keeps the quantizer's log lines off the terminal.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from actprof.errors import ActprofError, QuantizationError
from actprof.schema.profiling import Calibration

DERIVED = ("int8", "fp16")  # precisions that need a model of their own
CALIBRATION_BATCH = 64


@dataclass(frozen=True)
class Deployment:
    """What the profile stage needs beyond the trained models: derived models, test images, calibration."""

    derived: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)  # (model, precision) -> file, bytes
    images: np.ndarray | None = None  # the whole test split, float32 NCHW
    labels: np.ndarray | None = None
    dataset: str = ""
    calibration: Calibration | None = None


def calibration_set(
    train_images: np.ndarray, dataset: str, *, count: int, seed: int = 0
) -> tuple[np.ndarray, Calibration]:
    """``count`` training images (the training part of actprof's fixed split; validation held out)."""
    from actprof.data.mnist import to_tensor, validation_split

    train_index, _ = validation_split(len(train_images))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(train_index, size=min(count, len(train_index)), replace=False))
    images = np.ascontiguousarray(to_tensor(train_images[chosen]).numpy())
    record = Calibration(
        dataset=dataset,
        split="train (the validation split held out)",
        images=len(chosen),
        seed=seed,
        sha256=hashlib.sha256(images.tobytes()).hexdigest(),
    )
    return images, record


def to_fp16(model: bytes) -> bytes:
    """The graph in fp16 with fp32 inputs and outputs (ONNX Runtime's converter)."""
    import warnings

    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values clipped to fp16's range are reported per tensor
        converted = convert_float_to_float16(onnx.load_from_string(model), keep_io_types=True)
    return converted.SerializeToString()


def quantize_all(
    models: dict[str, bytes], calibration: np.ndarray | list[dict[str, np.ndarray]], *, batch: int = CALIBRATION_BATCH
) -> dict[str, bytes]:
    """Every model quantized to int8 (static, QDQ) in one spawned child; QuantizationError names the model.
    ``calibration``: images for the one input, ``batch`` per feed (a model with a fixed batch needs exactly its
    batch); or the feeds themselves, one dict per run, for a model with several inputs."""
    if not models:
        return {}
    context = multiprocessing.get_context("spawn")
    results = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        for name, model in models.items():
            try:
                results[name] = pool.submit(_quantize_static, model, calibration, batch).result()
            except ActprofError:
                raise
            except Exception as exc:  # the quantizer raises many types; any of them means "this model failed"
                first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                raise QuantizationError(
                    f"{name}: ONNX Runtime's quantizer failed ({first.strip()[:160]}); profile it without int8"
                ) from None
    return results


def _quantize_static(model: bytes, calibration: np.ndarray | list[dict[str, np.ndarray]], batch: int) -> bytes:
    """In the child process: ``quantize_static`` on ``model``, calibrated with ``calibration``."""
    import logging
    import tempfile
    import warnings
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    logging.disable(logging.WARNING)  # "please consider pre-processing" and the like
    warnings.simplefilter("ignore")  # numpy's all-NaN warnings from a calibration that is about to fail
    proto = onnx.load_from_string(model)
    initializers = {t.name for t in proto.graph.initializer}
    [input_name] = [i.name for i in proto.graph.input if i.name not in initializers][:1] or [""]

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            if isinstance(calibration, list):
                self.feeds = iter(calibration)
                return
            chunks = range(0, len(calibration) - batch + 1, batch)  # whole feeds only
            self.feeds = iter([{input_name: calibration[i : i + batch]} for i in chunks])

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="actprof-quant-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model)
        quantize_static(
            str(source),
            str(target),
            Batches(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return target.read_bytes()


def prepare(
    models: dict[str, tuple[str, bytes]],
    precisions: list[str],
    mnist,
    *,
    calibration_images: int,
    say: Callable[[str], None] = lambda _m: None,
) -> Deployment:
    """Derive the models ``precisions`` need and gather the test split every deployment is scored on.

    ``models``: name -> (file name, fp32 bytes). Derived files are named ``<name>.<precision>.onnx``."""
    from actprof.data.mnist import to_tensor

    derived: dict[tuple[str, str], tuple[str, bytes]] = {}
    calibration = None
    if "int8" in precisions:
        images, calibration = calibration_set(mnist.train_images, mnist.identity.kind, count=calibration_images)
        say(f"int8: quantizing {len(models)} model(s), calibrated on {calibration.images} training images")
        quantized = quantize_all({name: data for name, (_, data) in models.items()}, images)
        derived.update({(name, "int8"): (f"{name}.int8.onnx", data) for name, data in quantized.items()})
    if "fp16" in precisions:
        say(f"fp16: converting {len(models)} model(s)")
        derived.update({(name, "fp16"): (f"{name}.fp16.onnx", to_fp16(data)) for name, (_, data) in models.items()})
    test_images = np.ascontiguousarray(to_tensor(mnist.test_images).numpy())
    return Deployment(derived, test_images, mnist.test_labels, mnist.identity.kind, calibration)

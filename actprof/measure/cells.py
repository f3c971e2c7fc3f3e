"""Deployment cells: one model deployed one way (a runtime, a precision), what it scores on the test split and
the memory it adds; and the real MNIST images every latency is timed on."""

from __future__ import annotations

import functools
import gc
from pathlib import Path

import numpy as np

from actprof.export.precision import DERIVED, Deployment, prepare
from actprof.measure.memory import resident_bytes
from actprof.runtimes.base import Backend, Target
from actprof.runtimes.reference import cpu_logits
from actprof.schema.profiling import DeploymentCell, ModelRef
from actprof.schema.storage import sha256
from actprof.schema.training import ModelRecord
from actprof.settings.profile import ProfileSettings


@functools.cache
def _image_pool() -> np.ndarray:
    from actprof.data.mnist import load_mnist, to_tensor

    return to_tensor(load_mnist(dataset="sample", log=lambda _m: None).test_images).numpy()


def images(batch: int) -> np.ndarray:
    """A batch of real MNIST test images (the bundled sample, tiled past 2,000), float32 NCHW."""
    pool = _image_pool()
    reps = -(-batch // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:batch])


def warm_up(backend: Backend, cells, settings: ProfileSettings) -> None:
    """Load and run one model of every precision once, unmeasured: the runtime's one-off set-up (kernels,
    thread pools, libraries) is then charged to no cell's memory."""
    for precision in dict.fromkeys(precision for _, precision in cells):
        _, data = next(cell for (_, p), cell in cells.items() if p == precision)
        loaded = backend.load(data, opt_level=backend.opt_levels(["all"])[0], precision=precision)
        backend.compute_target(loaded, images(min(settings.batch_sizes))).run()


def cell_model(deployment: Deployment, files, name: str, precision: str) -> tuple[str, bytes]:
    """The model a cell runs: the derived one for int8/fp16 (never the fp32 model under their label)."""
    if precision in DERIVED:
        if (name, precision) not in deployment.derived:
            raise ValueError(f"no {precision} model was derived for {name}: run precision.prepare first")
        return deployment.derived[(name, precision)]
    return files[name]


def sample_deployment() -> Deployment:
    from actprof.data.mnist import load_mnist

    return prepare({}, ["fp32"], load_mnist(dataset="sample", log=lambda _m: None), calibration_images=0)


def deployment_cell(
    backend, name, precision, file, data, deployment: Deployment, fp32_model: bytes, settings
) -> DeploymentCell:
    """Load one cell: the memory it adds (loaded and run once at the smallest profiled batch), then its score
    on the whole test split (accuracy, agreement with the fp32 model)."""
    gc.collect()
    before = resident_bytes()
    loaded = backend.load(data, opt_level=backend.opt_levels(["all"])[0], precision=precision)
    backend.compute_target(loaded, images(min(settings.batch_sizes))).run()
    added = resident_bytes() - before
    compiled = backend.compile_seconds(loaded)
    reference = cpu_logits(fp32_model, deployment.images)  # what every cell is compared with
    # The CPU fp32 cell runs the very session (same model and options) the reference came from.
    same_session = backend.name == "cpu" and precision == "fp32"
    logits = reference if same_session else _logits(backend, loaded, deployment.images)
    return DeploymentCell(
        model=name,
        provider=backend.name,
        precision=precision,
        runs_as=backend.runs_as(loaded, precision),
        threads=backend.threads(loaded),
        file=file,
        sha256=sha256(data),
        size_bytes=len(data),
        accuracy=float(np.mean(logits.argmax(1) == deployment.labels)),
        test_images=len(deployment.labels),
        dataset=deployment.dataset,
        argmax_agreement=float(np.mean(logits.argmax(1) == reference.argmax(1))),
        max_abs_logit_diff=float(np.max(np.abs(logits - reference))),
        rss_added_bytes=max(added, 0),
        compile_seconds=compiled[min(settings.batch_sizes)] if compiled else None,
    )


def _logits(backend, loaded, x: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Outputs for every image, through timing targets of at most ``chunk`` images (bound buffers on a GPU)."""
    outputs = []
    targets: dict[int, Target] = {}
    for start in range(0, len(x), chunk):
        batch = np.ascontiguousarray(x[start : start + chunk])
        target = targets.get(len(batch))
        if target is None:
            target = targets[len(batch)] = backend.compute_target(loaded, batch)
        target.load(batch)
        target.run()  # on a GPU, output() reads the buffer the last run wrote
        outputs.append(np.array(target.output(), dtype=np.float32))
    return np.concatenate(outputs)


def model_ref(path: Path, record: ModelRecord) -> ModelRef:
    return ModelRef(
        name=record.name,
        file=path.name,
        sha256=record.export.sha256,
        dataset=record.dataset.kind,
        test_accuracy=record.export.onnx_test_accuracy,
        activation_ops=list(record.export.activation_census),
        decomposed=record.export.decomposed,
    )

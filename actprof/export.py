"""Export a trained model to ONNX, check it, prove parity with PyTorch, and count its nodes.

The exporter and opset are recorded with every model, and so is the node census: a decomposed
activation (GELU below opset 20, Softplus's threshold branch) must never be mistaken for the cost of
the activation itself.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actprof.environment import package_version
from actprof.errors import ModelFileError, OutputError, ParityError, UsageError
from actprof.graph import INPUT_NAME, OUTPUT_NAME, STRUCTURAL_OPS
from actprof.records import ExportResult, ModelRecord, Parity
from actprof.runtime import cpu_session
from actprof.storage import sha256, user_cache, write_bytes_atomic

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort
    import torch

    from actprof.activations import Activation

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 20  # the first opset with a single Gelu op
PARITY_TOLERANCE = 1e-4
PARITY_IMAGES = 512
ACTIVATION_SITES = 3  # the seed CNN's; a network's own count is len(model.ACT_LAYERS)


def check_options(*, opset: int, exporter: str) -> None:
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown --exporter {exporter!r}; choose from: {', '.join(EXPORTERS)}")
    if not 13 <= opset <= 23:
        raise UsageError(f"--opset must be between 13 and 23, got {opset}")


def to_onnx(model: torch.nn.Module, *, opset: int = DEFAULT_OPSET, exporter: str = "dynamo") -> onnx.ModelProto:
    """The model as an ONNX proto with a dynamic batch dimension (fp32, eval mode)."""
    import onnx
    import torch

    model = model.eval().float()
    example = torch.rand(2, 1, 28, 28)
    # The exporters are chatty (progress lines, deprecation warnings): keep the user's terminal clean.
    with _quiet():
        if exporter == "dynamo":
            with torchlib_registry_reused():
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                    verbose=False,
                )
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def torchlib_registry_reused():
    """Within it, ``torch.onnx.export`` reuses one torchlib registry per opset instead of building it again
    on every call (~1,000 ATen functions looked up: 0.4 s a call on the AVX-512 EPYC, ~1 s on Zen 3, a third
    to a half of exporting the seed CNN; 14 exports in ``actprof run``). The exporter only reads the
    registry; actprof passes no custom translations, which would be written into it. torch's exporter is
    private API: where it is not as torch 2.13 has it, every export builds its own registry, as before."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    original = _registration.ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return

    def reused(cls, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = original.__func__(cls, *args, **kwargs)
        return _REGISTRIES[key]

    _registration.ONNXRegistry.from_torchlib = classmethod(reused)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original


_REGISTRIES: dict[tuple, object] = {}  # from_torchlib's arguments → the registry built with them


# The last graph exported per (network config, opset, exporter), in this process (and so per Ray worker).
_TEMPLATES: dict[tuple, onnx.ModelProto] = {}


def reuse_or_export(model: torch.nn.Module, *, opset: int, exporter: str) -> onnx.ModelProto:
    """``to_onnx``, paid once per network: the seeds and learning rates of one (activation, network)
    share a graph and differ only in weights, so later runs copy the first run's graph and write their
    own parameters into it (0.4-1.2 s → ~5 ms). The graph is kept in this process and, without its
    weights, in the user's cache for later processes (`template_path`). Used only where the graph holds
    every parameter as an initializer of the same name and shape, which makes the result the bytes a
    fresh export gives (tested); the parity check that follows guards every run either way.
    """
    config = getattr(model, "config", None)
    if config is None:
        return to_onnx(model, opset=opset, exporter=exporter)
    key = (config, getattr(model, "lean", False), getattr(model, "pool_first", False), opset, exporter)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _stored_template(key, model)
    if template is not None:
        _remember(key, template)
        return with_parameters(template, model)
    proto = to_onnx(model, opset=opset, exporter=exporter)
    if holds_every_parameter(proto, model):
        _remember(key, proto)
        _store_template(key, proto, model)
    return proto


def _remember(key: tuple, proto: onnx.ModelProto) -> None:
    import onnx

    if key not in _TEMPLATES:
        _TEMPLATES.clear()  # one network at a time: a sweep runs an activation's trainings back to back
        _TEMPLATES[key] = onnx.ModelProto()
        _TEMPLATES[key].CopyFrom(proto)  # the caller's copy may be changed; the template must not be


def template_path(key: tuple) -> Path:
    """Where the graph exported for ``key`` is kept between processes, named by everything that decides
    it: the network and export settings, the versions of torch, onnx and onnxscript, and actprof's own
    source (an edit to the model code makes a new name, never a stale graph)."""
    digest = hashlib.sha256(repr(key).encode())
    for package in ("torch", "onnx", "onnxscript"):
        digest.update(f"{package}={package_version(package)};".encode())
    digest.update(_source_digest())
    return _graphs_dir() / f"{key[0].activation}-{digest.hexdigest()[:20]}.onnx"


def _graphs_dir() -> Path:
    """$ACTPROF_GRAPH_DIR (an empty one times a first run), else the user's cache."""
    return user_cache("onnx-graphs", override="ACTPROF_GRAPH_DIR")


@functools.cache
def _source_digest() -> bytes:
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.digest()


def _stored_template(key: tuple, model: torch.nn.Module) -> onnx.ModelProto | None:
    """The graph a process before this one exported for ``key``, or None (none kept, or unreadable)."""
    import onnx

    try:
        template = onnx.load_model_from_string(template_path(key).read_bytes())
    except Exception:  # OSError, or protobuf's DecodeError (protobuf is onnx's dependency, not actprof's)
        return None
    return template if holds_every_parameter(template, model) else None


def _store_template(key: tuple, proto: onnx.ModelProto, model: torch.nn.Module) -> None:
    """Keep the graph for later processes, its parameters' values cleared (they are written anew on
    every use): a few kB a graph. Best effort: a cache that cannot be written costs only the saving."""
    import onnx

    stored = onnx.ModelProto()
    stored.CopyFrom(proto)
    parameters = set(model.state_dict())
    for init in stored.graph.initializer:
        if init.name in parameters:
            init.ClearField("raw_data")
            del init.float_data[:]
    path = template_path(key)
    with contextlib.suppress(OSError, OutputError):
        write_bytes_atomic(path, stored.SerializeToString())
        _keep_newest(path.parent, KEPT_GRAPHS)


KEPT_GRAPHS = 256  # every edit of actprof's source names new graphs: the store keeps the newest (~3 MB)


def _keep_newest(directory: Path, count: int) -> None:
    """Delete all but the ``count`` most recently written graphs (a reader that loses one exports again)."""
    graphs = sorted(directory.glob("*.onnx"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in graphs[count:]:
        old.unlink(missing_ok=True)


def holds_every_parameter(proto: onnx.ModelProto, model: torch.nn.Module) -> bool:
    """Whether each of the model's parameters and buffers is an initializer of its own name and shape
    (the exporter folds a parameter away when, say, a bias is all zeros: then the graph depends on the
    values and is not reused)."""
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    return all(shapes.get(name) == tuple(value.shape) for name, value in model.state_dict().items())


def with_parameters(template: onnx.ModelProto, model: torch.nn.Module) -> onnx.ModelProto:
    """A copy of ``template`` with the model's parameter values in place of the initializers they name."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto()
    proto.CopyFrom(template)
    values = {name: value.detach().float().cpu().numpy() for name, value in model.state_dict().items()}
    for init in proto.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return proto


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def census(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def activation_census(counts: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in counts.items() if op not in STRUCTURAL_OPS}


def is_decomposed(
    act_counts: dict[str, int], expected: tuple[str, ...] | list[str], sites: int = ACTIVATION_SITES
) -> bool:
    return act_counts != {op: sites for op in expected}


# fp32 CPU logits per (model, images), kept for the rest of the process: ``run`` scores each model on the
# test split when it is exported and again in its CPU fp32 deployment cell (14 s of 14 activations).
_CPU_LOGITS: dict[tuple[str, str], np.ndarray] = {}
_CPU_LOGITS_KEPT = 32


_LAST_DIGEST: list[tuple[np.ndarray, str]] = []  # the last images hashed (held: its id is not reused)


def cpu_logits(model: bytes, images: np.ndarray, session: ort.InferenceSession | None = None) -> np.ndarray:
    """The model's logits for ``images`` from ORT's CPU provider at its top optimization level (the session
    ``cpu_session`` makes), computed once per process for the same model and images."""
    key = (sha256(model), _images_digest(images))
    if key not in _CPU_LOGITS:
        if len(_CPU_LOGITS) >= _CPU_LOGITS_KEPT:
            del _CPU_LOGITS[next(iter(_CPU_LOGITS))]
        logits = run_batches(session or cpu_session(model), images)
        logits.flags.writeable = False  # shared by every caller
        _CPU_LOGITS[key] = logits
    return _CPU_LOGITS[key]


def _images_digest(images: np.ndarray) -> str:
    """Shape, dtype and a hash of the contents; the profile asks about one test split dozens of times
    (45 ms a hash for 10,000 images), so the last array's digest is kept. Nothing mutates these arrays."""
    if not (_LAST_DIGEST and _LAST_DIGEST[0][0] is images):
        import hashlib

        contents = hashlib.blake2b(np.ascontiguousarray(images).data, digest_size=16).hexdigest()
        _LAST_DIGEST[:] = [(images, f"{images.dtype.str}{images.shape}{contents}")]
    return _LAST_DIGEST[0][1]


def run_batches(session: ort.InferenceSession, x: np.ndarray, chunk: int = 1000) -> np.ndarray:
    outs = [session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + chunk]})[0] for i in range(0, len(x), chunk)]
    return np.concatenate(outs)


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

    check_options(opset=opset, exporter=exporter)
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
        decomposed=is_decomposed(act_counts, expected_ops, len(getattr(model, "ACT_LAYERS", range(ACTIVATION_SITES)))),
        parity=parity,
        onnx_test_accuracy=float(np.mean(predictions == test_labels)),
        onnx_test_images=len(test_labels),
    )


def load_model_file(path: Path) -> onnx.ModelProto:
    """Load an ONNX file that may come from anywhere: external data must stay inside its directory."""
    import onnx
    from onnx import external_data_helper

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file; pass the path of an .onnx model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf raises several unrelated types for garbage input
        raise ModelFileError(f"{path} is not a valid ONNX model; re-export it with actprof train-export") from None
    base = path.parent.resolve()
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise ModelFileError(
                f"{path} points its weights at {location!r}, outside its directory or missing; refusing to load it"
            )
    if any(external_data_helper.uses_external_data(t) for t in external_data_helper._get_all_tensors(proto)):
        external_data_helper.load_external_data_for_model(proto, str(base))
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelFileError(f"{path} fails the ONNX checker ({str(exc).splitlines()[0]}); re-export it") from None
    return proto


REWRITES = ("none", "pool-first")
REWRITE_TOLERANCE = 1e-6


def check_rewrite(rewrite: str, acts: Sequence[Activation] = ()) -> list[str]:
    """A known rewrite; returns the activations pool-first skips (not monotonic non-decreasing), and refuses
    when it would skip every one of ``acts`` (a rewrite that applies to nothing is a mistake)."""
    if rewrite not in REWRITES:
        raise UsageError(f"unknown --rewrite {rewrite!r}; choose from: {', '.join(REWRITES)}")
    skipped = [a.name for a in acts if not a.monotonic] if rewrite == "pool-first" else []
    bad = ", ".join(skipped)
    if acts and len(skipped) == len(acts):
        raise UsageError(
            f"--rewrite pool-first refused for {bad}: not monotonic non-decreasing, so MaxPool(f(x)) != "
            "f(MaxPool(x)); pick monotonic activations (relu, leaky_relu, elu, selu, celu, sigmoid, tanh, softplus)"
        )
    return skipped


def rewrite_pool_first(onnx_bytes: bytes, images: np.ndarray) -> tuple[bytes, Parity, int]:
    """The pool-first rewrite, verified on real images against the unrewritten model (max |Δ| ≤ 1e-6)."""
    import onnx

    from actprof import graph

    try:
        rewritten, moved = graph.pool_first(onnx.load_from_string(onnx_bytes))
    except graph.NotMonotonic as exc:
        raise UsageError(f"--rewrite pool-first refused: {exc}; it is exact only for monotonic activations") from None
    try:
        onnx.checker.check_model(rewritten, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ParityError(f"the pool-first rewrite fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    data = rewritten.SerializeToString()
    probe = images[:PARITY_IMAGES]
    reference = run_batches(cpu_session(onnx_bytes), probe)
    parity = check_parity(cpu_session(data), reference, probe, tolerance=REWRITE_TOLERANCE)
    return data, parity, moved


def rewritten_record(record: ModelRecord, data: bytes, parity: Parity, rewrite: str) -> ModelRecord:
    import onnx

    proto = onnx.load_from_string(data)
    counts = census(proto)
    return replace(
        record,
        rewrite=rewrite,
        export=replace(
            record.export,
            file=f"{record.activation.name}+{rewrite}.onnx",
            sha256=sha256(data),
            size_bytes=len(data),
            census=counts,
            activation_census=activation_census(counts),
            parity=parity,
        ),
    )

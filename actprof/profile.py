"""Profile inference with ONNX Runtime: latency per provider × batch, per-op time, fusion, ablation.

Provider truth comes first: a session asked for CUDA that silently fell back to the CPU is refused,
so no CPU number is ever labelled CUDA. Latency comes from sessions timed in interleaved rounds
(``latency.interleave``); per-op time from separate profiling sessions, never from the timed ones.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actprof import graph, latency
from actprof.errors import ModelFileError, ProviderUnavailable, UsageError
from actprof.records import (
    SCHEMA_VERSION,
    AblationResult,
    FusionCensus,
    GpuInfo,
    LatencyResult,
    ModelRecord,
    ModelRef,
    OpProfile,
    OpTime,
    ProfileRecord,
    ProfileSettings,
    ProviderStatus,
)

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

EXECUTION_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = ("disabled", "basic", "extended", "all")
VARIANTS = ("as-trained", "relu-swap", "identity")
LAYOUT_OPS = frozenset({"ReorderInput", "ReorderOutput", "Transpose"})
# The network around the activations once ORT has optimized it. Every other op belongs to the activation:
# ORT rewrites some activations at load time (Mish into Softplus/Tanh/Mul, SiLU into QuickGelu), so the
# exported op names alone would miss them.
NETWORK_OPS = graph.STRUCTURAL_OPS | LAYOUT_OPS | {"FusedConv", "FusedGemm", "MemcpyFromHost", "MemcpyToHost"}


def is_activation_op(op_type: str) -> bool:
    return op_type.split(".")[-1] not in NETWORK_OPS


INPUT, OUTPUT = "input", "logits"


# --- options -------------------------------------------------------------------------------------


def parse_providers(spec: str) -> list[str]:
    items = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if items == ["all"]:
        return list(EXECUTION_PROVIDERS)
    bad = [s for s in items if s not in EXECUTION_PROVIDERS]
    if not items or bad:
        raise UsageError(f"unknown --provider {spec!r}; choose from: cpu, cuda, all")
    return list(dict.fromkeys(items))


def parse_batch_sizes(spec: str, *, name: str = "--batch-sizes", limit: int = 65536) -> list[int]:
    try:
        sizes = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{name} must be a comma list of positive integers, got {spec!r}") from None
    if not sizes or any(b < 1 or b > limit for b in sizes):
        raise UsageError(f"{name} must be a comma list of integers from 1 to {limit}, got {spec!r}")
    return list(dict.fromkeys(sizes))


def parse_opt_levels(spec: str) -> list[str]:
    items = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if not items or any(s not in OPT_LEVELS for s in items):
        raise UsageError(f"unknown --opt-level {spec!r}; choose from: {', '.join(OPT_LEVELS)}")
    return list(dict.fromkeys(items))


def check_timing(*, min_time: float, min_runs: int, threads: int) -> None:
    if not (math.isfinite(min_time) and min_time > 0):
        raise UsageError(f"--min-time must be a positive number of seconds, got {min_time}")
    if min_runs < 1:
        raise UsageError(f"--min-runs must be at least 1, got {min_runs}")
    if threads < 0:
        raise UsageError(f"--threads must be 0 (ORT default) or more, got {threads}")


# --- sessions and provider truth -----------------------------------------------------------------


_GLOBAL_THREADS: list[int] = []  # the intra-op pool size, fixed by the first ort_runtime() call


def ort_runtime(threads: int = 0):
    """onnxruntime, with one global intra-op thread pool shared by every session of this process.

    Measured here: with a pool per session, 22 interleaved CPU sessions ran ~45% slower than one alone
    (idle sessions' workers spin and steal the 2 cores); with the shared pool they match. The pool size
    is fixed by the first call (0: ORT's default, one thread per physical core).
    """
    import onnxruntime as ort

    if not _GLOBAL_THREADS:
        ort.set_global_thread_pool_sizes(threads, 1)
        _GLOBAL_THREADS.append(threads)
        _preload_cuda_libraries(ort)
        # Provider-creation failures are logged by ORT's default logger; we report them ourselves.
        ort.set_default_logger_severity(4)
    return ort


def _preload_cuda_libraries(ort) -> None:
    """Load the CUDA/cuDNN libraries that pip installed (the nvidia-* packages torch depends on).

    ``preload_dlls()`` looks for them only beside onnxruntime itself, so it misses them when the two live
    in different site directories (a ``pip install --target``, a venv over a system torch); each
    ``nvidia/*/lib`` directory is therefore offered explicitly as well. ORT prints a line per library it
    cannot find; a library that stays missing is named by the provider check instead.
    """
    import importlib.util

    if not hasattr(ort, "preload_dlls"):
        return
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    directories = ["", *(str(d) for root in roots for d in sorted(Path(root).glob("*/lib")))]
    for directory in directories:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            ort.preload_dlls(directory=directory)


def global_threads() -> int:
    return _GLOBAL_THREADS[0] if _GLOBAL_THREADS else 0


def session_options(
    *, threads: int, opt_level: str, profile_prefix: str | None = None, optimized_path: str | None = None
) -> ort.SessionOptions:
    ort = ort_runtime(threads)
    options = ort.SessionOptions()
    options.use_per_session_threads = False  # the shared pool (see ort_runtime)
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    # Fallbacks and load failures are checked and reported by us, in one line, not printed at the user.
    options.log_severity_level = 4
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    return options


def create_session(
    model: bytes, provider: str, options: ort.SessionOptions, *, cuda_graph: bool = False
) -> ort.InferenceSession:
    """A session that really runs on ``provider``; ProviderUnavailable if ORT fell back to the CPU."""
    ort = ort_runtime()
    ep = EXECUTION_PROVIDERS[provider]
    providers: list[Any] = ["CPUExecutionProvider"]
    if provider == "cuda":
        providers = [(ep, {"enable_cuda_graph": "1" if cuda_graph else "0"}), "CPUExecutionProvider"]
    try:
        # When a provider fails to initialize (no visible GPU), ORT's Python layer prints an "EP Error"
        # block to stdout and falls back to the CPU; the fallback is detected and reported below instead.
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            session = ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:
        if provider != "cpu" and ep not in ort.get_available_providers():
            raise ProviderUnavailable(_not_compiled(provider)) from None
        if cuda_graph and "graph capture" in str(exc):
            raise UsageError(GRAPH_NEEDS_ALL_NODES_ON_GPU) from None
        raise ModelFileError(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0]}") from None
    bound = session.get_providers()
    if not bound or bound[0] != ep:
        cause = provider_failure(printed.getvalue())
        raise ProviderUnavailable(_did_not_bind(provider, bound) + (f" [{cause}]" if cause else ""))
    return session


GRAPH_NEEDS_ALL_NODES_ON_GPU = (
    "--cuda-graph needs every node on the GPU, but ONNX Runtime placed some on the CPU (an op with no CUDA "
    "kernel, such as Celu; a profile without --cuda-graph names them as off-provider nodes); profile it "
    "without --cuda-graph or leave it out with --act"
)


def provider_failure(printed: str) -> str | None:
    """The cause in the "EP Error" block ORT prints when a provider fails to start, e.g.
    "CUDA failure 100: no CUDA-capable device is detected" (the rest is source paths and templates)."""
    match = re.search(r"\b((?:CUDA|CUDNN|CUBLAS) failure \d+: [^;\n]*?)\s*;", printed)
    return match.group(1) if match else None


def _not_compiled(provider: str) -> str:
    return (
        f"--provider {provider}: this onnxruntime build has no {EXECUTION_PROVIDERS[provider]}; "
        "install onnxruntime-gpu (Linux x86_64) or use --provider cpu"
    )


def _did_not_bind(provider: str, bound: list[str]) -> str:
    return (
        f"--provider {provider}: {EXECUTION_PROVIDERS[provider]} did not bind (ONNX Runtime fell back to "
        f"{', '.join(bound) or 'nothing'}; no usable GPU or CUDA/cuDNN libraries); use --provider cpu"
    )


def _probe_model() -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def provider_status(provider: str) -> ProviderStatus:
    """Whether ``provider`` is compiled into this ORT build and whether a real session binds to it."""
    ort = ort_runtime()
    ep = EXECUTION_PROVIDERS[provider]
    compiled = ep in ort.get_available_providers()
    if not compiled:
        return ProviderStatus(provider, ep, False, False, _not_compiled(provider))
    with _captured_native_stderr() as native_log:
        try:
            ort.set_default_logger_severity(3)  # let the loader's error reach the captured stderr
            options = session_options(threads=1, opt_level="basic")
            options.log_severity_level = 3  # the provider loader names a missing library at error level
            session = create_session(_probe_model(), provider, options)
        except ProviderUnavailable as exc:
            missing = _missing_library(native_log())
            reason = str(exc) + (f" [{missing}]" if missing else "")
            return ProviderStatus(provider, ep, True, False, reason)
    return ProviderStatus(provider, ep, True, True, "bound: " + ", ".join(session.get_providers()))


@contextlib.contextmanager
def _captured_native_stderr():
    """Capture what native code writes to fd 2 (ORT's provider loader names the missing library there)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode("utf-8", "replace"))[1]
        finally:
            ort_runtime().set_default_logger_severity(4)
            os.dup2(saved, 2)
            os.close(saved)


def _missing_library(log: str) -> str | None:
    match = re.search(r"error: (\S+\.so[.\d]*): cannot open shared object file", log)
    return f"missing {match.group(1)}" if match else None


def gpu_info() -> GpuInfo | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        name, driver, memory = (s.strip() for s in out.splitlines()[0].split(","))
        return GpuInfo(name=name, driver=driver, memory_mib=int(float(memory)))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


# --- measurement targets -------------------------------------------------------------------------


@dataclass
class Target:
    """A session ready to run one batch: ``run`` is what the harness times; ``load`` puts a new batch of
    the same shape in place and ``output`` returns the outputs for the loaded batch (neither is timed).
    On the GPU ``output`` reads the bound buffer the last ``run`` wrote; on the host it runs once more."""

    session: ort.InferenceSession
    run: Callable[[], object]
    load: Callable[[np.ndarray], None]
    output: Callable[[], np.ndarray]


def host_target(
    session: ort.InferenceSession, x: np.ndarray, *, input_name: str = INPUT, output_name: str = OUTPUT
) -> Target:
    """Input and output in host memory: CPU compute latency, or CUDA end-to-end with the copies."""
    feed = {input_name: x}
    outputs = [output_name]

    def load(batch: np.ndarray) -> None:
        feed[input_name] = batch

    return Target(session, lambda: session.run(outputs, feed), load, lambda: session.run(outputs, feed)[0])


def cuda_compute_target(
    session: ort.InferenceSession, x: np.ndarray, *, input_name: str = INPUT, output_name: str = OUTPUT
) -> Target:
    """Input and output live on the GPU (IO binding): the timed run is compute, no host copies.

    Both buffers are allocated once and bound by address, as a CUDA graph needs: a captured graph
    replays on exactly these addresses, so ``load`` copies a new batch into the bound input in place.
    """
    ort = ort_runtime()
    binding = session.io_binding()
    device_input = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
    [declared] = [o for o in session.get_outputs() if o.name == output_name]
    shape = [len(x), *(d for d in declared.shape[1:] if isinstance(d, int))]
    device_output = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", 0)
    binding.bind_ortvalue_input(input_name, device_input)
    binding.bind_ortvalue_output(output_name, device_output)
    session.run_with_iobinding(binding)  # the first run initializes (and with warm-up, captures the graph)

    def run() -> None:
        session.run_with_iobinding(binding)

    # The binding holds the OrtValues; the closures keep all three alive as long as the target.
    return Target(session, run, device_input.update_inplace, device_output.numpy)


def compute_target(
    session: ort.InferenceSession, x: np.ndarray, provider: str, *, input_name: str = INPUT, output_name: str = OUTPUT
) -> Target:
    """Compute latency on ``provider``: host arrays on the CPU, buffers bound on the device for CUDA."""
    make = cuda_compute_target if provider == "cuda" else host_target
    return make(session, x, input_name=input_name, output_name=output_name)


@functools.cache
def _image_pool() -> np.ndarray:
    from actprof.data import load_mnist, to_tensor

    return to_tensor(load_mnist(dataset="sample", log=lambda _m: None).test_images).numpy()


def images(batch: int) -> np.ndarray:
    """A batch of real MNIST test images (the bundled sample, tiled past 2,000), float32 NCHW."""
    pool = _image_pool()
    reps = -(-batch // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:batch])


# --- per-op attribution --------------------------------------------------------------------------


def _kernel_events(events: list) -> Iterator[tuple[str, str, str, object]]:
    """(node name, op type, provider, duration) of every ``cat == "Node"`` ``*_kernel_time`` event."""
    for event in events:
        if not isinstance(event, dict) or event.get("cat") != "Node":
            continue
        name, args = event.get("name"), event.get("args")
        if not (isinstance(name, str) and name.endswith("_kernel_time") and isinstance(args, dict)):
            continue
        op, provider = args.get("op_name"), args.get("provider")
        if isinstance(op, str) and isinstance(provider, str):
            yield name.removesuffix("_kernel_time"), op, provider, event.get("dur")


def parse_profile(events: object) -> dict[tuple[str, str], tuple[float, int]]:
    """ORT profile events → {(op_type, provider): (total µs, kernel events)}; ModelFileError if malformed.

    Only ``cat == "Node"`` events named ``*_kernel_time`` count; anything else is ignored.
    """
    if not isinstance(events, list):
        raise ModelFileError("the ORT profile is not a JSON list of events")
    totals: dict[tuple[str, str], tuple[float, int]] = {}
    for name, op, provider, dur in _kernel_events(events):
        if not _is_duration(dur):
            raise ModelFileError(f"the ORT profile has a bad duration for {name!r}_kernel_time: {str(dur)[:40]}")
        total, count = totals.get((op, provider), (0.0, 0))
        totals[(op, provider)] = (total + float(dur), count + 1)
    return totals


def _is_duration(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:  # an integer past the float range
        return False


def node_providers(events: object) -> dict[str, str]:
    """Node name → provider it ran on, from the same profile events."""
    if not isinstance(events, list):
        return {}
    return {name: provider for name, _op, provider, _dur in _kernel_events(events)}


def load_profile_file(path: Path) -> list:
    try:
        events = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        raise ModelFileError(f"{path} is not a readable ORT profile (JSON)") from None
    parse_profile(events)
    return events


def op_profile(
    name: str,
    model: bytes,
    *,
    provider: str,
    batch: int,
    opt_level: str,
    threads: int,
    x: np.ndarray,
    min_runs: int = 20,
    min_seconds: float = 0.1,
) -> OpProfile:
    """Per-op time from a dedicated profiling session (never the timed one)."""
    with tempfile.TemporaryDirectory(prefix="actprof-prof-") as tmp:
        options = session_options(threads=threads, opt_level=opt_level, profile_prefix=f"{tmp}/ort")
        session = create_session(model, provider, options)
        target = compute_target(session, x, provider)
        for _ in range(5):
            target.run()
        started, runs = time.perf_counter(), 0
        while runs < min_runs or time.perf_counter() - started < min_seconds:
            target.run()
            runs += 1
        events = load_profile_file(Path(session.end_profiling()))
    # Warm-up runs are in the profile too: scale by every run that was recorded.
    recorded = runs + 5 + (1 if provider == "cuda" else 0)
    totals = parse_profile(events)
    grand = sum(total for total, _ in totals.values()) / recorded
    ops = sorted(
        (
            OpTime(op, prov, count // recorded, total / recorded, (total / recorded) / grand if grand else 0.0)
            for (op, prov), (total, count) in totals.items()
        ),
        key=lambda o: -o.us_per_run,
    )
    act_us = sum(o.us_per_run for o in ops if is_activation_op(o.op_type))
    ep = EXECUTION_PROVIDERS[provider]
    foreign = sorted(f"{node} ({prov})" for node, prov in node_providers(events).items() if prov != ep)
    return OpProfile(
        model=name,
        provider=provider,
        batch=batch,
        opt_level=opt_level,
        runs=recorded,
        total_us_per_run=grand,
        ops=ops,
        activation_us_per_run=act_us,
        activation_share=act_us / grand if grand else 0.0,
        layout_us_per_run=sum(o.us_per_run for o in ops if o.op_type in LAYOUT_OPS),
        foreign_nodes=foreign,
    )


# --- fusion census -------------------------------------------------------------------------------


def fusion_census(name: str, model: bytes, *, provider: str, opt_level: str, threads: int) -> FusionCensus:
    """What ORT's optimizer made of the graph: surviving activation nodes, fusions, layout reorders."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="actprof-opt-") as tmp:
        path = f"{tmp}/optimized.onnx"
        create_session(model, provider, session_options(threads=threads, opt_level=opt_level, optimized_path=path))
        optimized = onnx.load(path)
    return census_of_optimized(name, optimized, provider=provider, opt_level=opt_level)


def census_of_optimized(name: str, optimized: onnx.ModelProto, *, provider: str, opt_level: str) -> FusionCensus:
    ops: dict[str, int] = {}
    fused: dict[str, int] = {}
    for node in optimized.graph.node:
        key = _qualified(node)
        ops[key] = ops.get(key, 0) + 1
        fused_act = _fused_activation(node)
        if fused_act:
            label = f"{key}({fused_act})"
            fused[label] = fused.get(label, 0) + 1
    left = {op: n for op, n in ops.items() if is_activation_op(op)}
    reorders = sum(n for op, n in ops.items() if op.split(".")[-1] in {"ReorderInput", "ReorderOutput"})
    return FusionCensus(name, provider, opt_level, dict(sorted(ops.items())), left, fused, reorders)


def _qualified(node: onnx.NodeProto) -> str:
    domain = node.domain.removeprefix("com.microsoft").strip(".")
    return f"{domain}.{node.op_type}" if domain else node.op_type


def _fused_activation(node: onnx.NodeProto) -> str | None:
    for attr in node.attribute:
        if attr.name == "activation" and attr.s:
            return attr.s.decode("utf-8", "replace")
    return None


# --- the whole profile ---------------------------------------------------------------------------


Progress = Callable[[str], None]


def run_profile(
    models: list[tuple[Path, ModelRecord]],
    settings: ProfileSettings,
    *,
    baseline: str | None = "relu",
    on_progress: Progress | None = None,
) -> ProfileRecord:
    """Profile every model on every requested provider; providers that do not bind are refused."""
    from actprof import environment

    started = time.perf_counter()
    say = on_progress or (lambda _m: None)
    statuses = [provider_status(p) for p in settings.providers]
    for status in statuses:
        if not status.binds:
            raise ProviderUnavailable(status.reason)
    loaded = {record.name: path.read_bytes() for path, record in models}
    baseline = baseline if baseline in loaded else None
    _check_cuda_graphs(loaded, settings)
    latencies: list[LatencyResult] = []
    ablations: list[AblationResult] = []
    op_profiles: list[OpProfile] = []
    fusion: list[FusionCensus] = []
    for provider in settings.providers:
        for opt_level in settings.opt_levels:
            for name, model in loaded.items():
                say(f"{provider}: fusion census of {name} at opt level {opt_level}")
                fusion.append(
                    fusion_census(
                        name,
                        model,
                        provider=provider,
                        opt_level=opt_level,
                        threads=settings.threads,
                    )
                )
            for batch in settings.batch_sizes:
                x = images(batch)
                lat, abl = _measure(loaded, settings, provider, opt_level, batch, x, baseline, say)
                latencies += lat
                ablations += abl
                for name, model in loaded.items():
                    say(f"{provider}: per-op profile of {name} at batch {batch}")
                    op_profiles.append(
                        op_profile(
                            name,
                            model,
                            provider=provider,
                            batch=batch,
                            opt_level=opt_level,
                            threads=settings.threads,
                            x=x,
                        )
                    )
    return ProfileRecord(
        schema_version=SCHEMA_VERSION,
        kind="profile",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        environment=environment.capture(),
        gpu=gpu_info() if "cuda" in settings.providers else None,
        settings=settings,
        providers=statuses,
        baseline=baseline,
        models=[_model_ref(path, record) for path, record in models],
        latency=latencies,
        ablation=ablations,
        op_profiles=op_profiles,
        fusion=fusion,
        seconds=time.perf_counter() - started,
    )


def _model_ref(path: Path, record: ModelRecord) -> ModelRef:
    return ModelRef(
        name=record.name,
        file=path.name,
        sha256=record.export.sha256,
        dataset=record.dataset.kind,
        test_accuracy=record.export.onnx_test_accuracy,
        activation_ops=list(record.export.activation_census),
        decomposed=record.export.decomposed,
    )


def variants_of(name: str, model: bytes, *, ablation: bool) -> dict[str, bytes]:
    """The model as trained and, for the ablation, the same weights with ReLU and with identity."""
    found = {"as-trained": model}
    if ablation:
        import onnx

        proto = onnx.load_from_string(model)
        if name != "relu":
            found["relu-swap"] = graph.replace_activation(proto, "Relu").SerializeToString()
        found["identity"] = graph.replace_activation(proto, "Identity").SerializeToString()
    return found


def _named_session(
    name: str, variant: str, data: bytes, provider: str, options, *, cuda_graph: bool
) -> ort.InferenceSession:
    """create_session, with a refusal that says which model and variant it is about."""
    try:
        return create_session(data, provider, options, cuda_graph=cuda_graph)
    except UsageError as exc:
        raise UsageError(f"{name} ({variant}): {exc}") from None


def _check_cuda_graphs(loaded: dict[str, bytes], settings: ProfileSettings) -> None:
    """With --cuda-graph, refuse a model ORT would not run wholly on the GPU before anything is timed
    (the CPU pass comes first under --provider all and would otherwise be thrown away)."""
    if not (settings.cuda_graph and "cuda" in settings.providers):
        return
    for name, model in loaded.items():
        for variant, data in variants_of(name, model, ablation=settings.ablation).items():
            for opt_level in settings.opt_levels:
                options = session_options(threads=settings.threads, opt_level=opt_level)
                _named_session(name, variant, data, "cuda", options, cuda_graph=True)


def _measure(loaded, settings, provider, opt_level, batch, x, baseline, say):
    """One interleaved measurement of every (model, variant, mode) at one provider × opt level × batch."""
    targets: dict[tuple[str, str, str], Target] = {}
    for name, model in loaded.items():
        for variant, data in variants_of(name, model, ablation=settings.ablation).items():
            options = session_options(threads=settings.threads, opt_level=opt_level)
            session = _named_session(name, variant, data, provider, options, cuda_graph=settings.cuda_graph)
            targets[(name, variant, "compute")] = compute_target(session, x, provider)
            if provider == "cuda" and variant == "as-trained":  # fed from host memory: the copies included
                plain = create_session(data, provider, session_options(threads=settings.threads, opt_level=opt_level))
                targets[(name, variant, "end-to-end")] = host_target(plain, x)
    say(f"{provider}: timing {len(targets)} sessions at batch {batch}, opt level {opt_level}")
    keyed = {"|".join(key): target.run for key, target in targets.items()}
    rounds = latency.interleave(keyed, min_seconds=settings.min_time, min_runs=settings.min_runs)

    def key(name: str, variant: str = "as-trained", mode: str = "compute") -> str:
        return f"{name}|{variant}|{mode}"

    results = []
    for name, variant, mode in targets:
        k = key(name, variant, mode)
        vs = None
        if baseline and variant == "as-trained":
            vs = latency.ratio(rounds, k, key(baseline, "as-trained", mode))
        results.append(
            LatencyResult(
                model=name,
                variant=variant,
                provider=provider,
                batch=batch,
                opt_level=opt_level,
                mode=mode,
                stats=latency.stats_from_ns(rounds.samples[k], batch=batch),
                vs_baseline=vs,
            )
        )
    ablations = []
    if settings.ablation:
        p50 = {(r.model, r.variant): r.stats.p50_ms for r in results if r.mode == "compute"}
        for name in loaded:
            has_relu_swap = (name, "relu-swap") in p50
            ablations.append(
                AblationResult(
                    model=name,
                    provider=provider,
                    batch=batch,
                    opt_level=opt_level,
                    as_trained_ms=p50[(name, "as-trained")],
                    relu_swap_ms=p50[(name, "relu-swap")] if has_relu_swap else None,
                    identity_ms=p50[(name, "identity")],
                    activation_cost_ms=latency.difference_ms(rounds, key(name), key(name, "identity")),
                    penalty_vs_relu_ms=(
                        latency.difference_ms(rounds, key(name), key(name, "relu-swap")) if has_relu_swap else None
                    ),
                )
            )
    return results, ablations

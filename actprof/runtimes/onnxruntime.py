"""ONNX Runtime's CPU and CUDA providers as backends: sessions, provider truth, timing targets, profiles.

This is the only module that creates ONNX Runtime sessions (ORT's quantizer, in ``export.precision``, runs
its own calibration session in a child process). All sessions share one process-wide thread pool.

Provider truth comes first: a session asked for CUDA that silently fell back to the CPU is refused, so no
CPU number is ever labelled CUDA.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actprof.errors import ModelFileError, ProviderUnavailable, UsageError
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.runtimes import attribution
from actprof.runtimes.base import (
    Backend,
    Batch,
    OpProfiler,
    Target,
    check_precision,
    feeds_of,
    fix_threads,
    fixed_threads,
    native_stderr_to,
    probe_model,
)
from actprof.schema.environment import physical_cores
from actprof.schema.profiling import FusionCensus, OpProfile, ProviderStatus
from actprof.settings.profile import SUPPORTED_PRECISIONS

if TYPE_CHECKING:
    import onnxruntime as ort

EXECUTION_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


_POOL: list[bool] = []  # set once this process's thread pools are decided
_SESSION_POOLS: list[bool] = []  # set when every session gets a pool of its own instead


def ort_runtime(threads: int = 0):
    """onnxruntime, with one global intra-op thread pool shared by every session of this process.

    Measured here: with a pool per session, 22 interleaved CPU sessions ran ~45% slower than one alone
    (idle sessions' workers spin and steal the 2 cores); with the shared pool they match. The pool size
    is the process's intra-op thread count (``base.fix_threads``: the first call that asks fixes it).
    Releases before 1.22 cannot share a pool from Python (no ``set_global_thread_pool_sizes``): their
    sessions get a pool each, of that many threads (``use_session_pools``).
    """
    import onnxruntime as ort

    count = fix_threads(threads)
    if not _POOL:
        if _SESSION_POOLS or not hasattr(ort, "set_global_thread_pool_sizes"):
            use_session_pools()
        else:
            ort.set_global_thread_pool_sizes(count, 1)
        _POOL.append(True)
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


def use_session_pools() -> None:
    """Give every session of this process its own intra-op pool of the fixed thread count (before the first
    session): what releases without a shared pool do, and what the runtime-version workers ask of every
    release so that all of them run alike."""
    if not _SESSION_POOLS:
        _SESSION_POOLS.append(True)


def thread_pools() -> str:
    """How this process's sessions are threaded, in words for a record."""
    pools = "a pool per session" if _SESSION_POOLS else "one shared pool"
    return f"{fixed_threads() or physical_cores()} intra-op threads, {pools}"


def session_options(
    *, threads: int, opt_level: str, profile_prefix: str | None = None, optimized_path: str | None = None
) -> ort.SessionOptions:
    ort = ort_runtime(threads)
    options = ort.SessionOptions()
    if hasattr(options, "use_per_session_threads"):  # releases without a shared pool lack the switch too
        options.use_per_session_threads = bool(_SESSION_POOLS)  # else the shared pool (see ort_runtime)
    if _SESSION_POOLS:
        options.intra_op_num_threads = threads or fixed_threads()
        options.inter_op_num_threads = 1
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


def cpu_session(model: bytes) -> ort.InferenceSession:
    """A CPU session at ORT's top optimization level: what export and rewrites check parity with."""
    return create_session(model, "cpu", session_options(threads=0, opt_level="all"))


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
            session = create_session(probe_model(), provider, options)
        except ProviderUnavailable as exc:
            missing = _missing_library(native_log())
            reason = str(exc) + (f" [{missing}]" if missing else "")
            return ProviderStatus(provider, ep, True, False, reason)
    return ProviderStatus(provider, ep, True, True, "bound: " + ", ".join(session.get_providers()))


@contextlib.contextmanager
def _captured_native_stderr():
    """Capture what native code writes to fd 2 (ORT's provider loader names the missing library there)."""
    with tempfile.TemporaryFile() as sink, native_stderr_to(sink):
        try:
            yield lambda: (sink.seek(0), sink.read().decode("utf-8", "replace"))[1]
        finally:
            ort_runtime().set_default_logger_severity(4)


def _missing_library(log: str) -> str | None:
    match = re.search(r"error: (\S+\.so[.\d]*): cannot open shared object file", log)
    return f"missing {match.group(1)}" if match else None


def host_target(
    session: ort.InferenceSession, x: Batch, *, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
) -> Target:
    """Inputs and output in host memory: CPU compute latency, or CUDA end-to-end with the copies."""
    feed = feeds_of(x, input_name)
    outputs = [output_name]

    def load(batch: Batch) -> None:
        feed.update(feeds_of(batch, input_name))

    return Target(session, lambda: session.run(outputs, feed), load, lambda: session.run(outputs, feed)[0])


def cuda_compute_target(
    session: ort.InferenceSession, x: Batch, *, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
) -> Target:
    """Inputs and output live on the GPU (IO binding): the timed run is compute, no host copies.

    The buffers are allocated once and bound by address, as a CUDA graph needs: a captured graph
    replays on exactly these addresses, so ``load`` copies a new batch into the bound inputs in place.
    """
    ort = ort_runtime()
    binding = session.io_binding()
    feeds = feeds_of(x, input_name)
    device_inputs = {name: ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0) for name, array in feeds.items()}
    first = next(iter(feeds.values()))
    [declared] = [o for o in session.get_outputs() if o.name == output_name]
    shape = [len(first), *(d for d in declared.shape[1:] if isinstance(d, int))]
    device_output = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", 0)
    for name, value in device_inputs.items():
        binding.bind_ortvalue_input(name, value)
    binding.bind_ortvalue_output(output_name, device_output)
    session.run_with_iobinding(binding)  # the first run initializes (and with warm-up, captures the graph)

    def run() -> None:
        session.run_with_iobinding(binding)

    def load(batch: Batch) -> None:
        for name, array in feeds_of(batch, input_name).items():
            device_inputs[name].update_inplace(array)

    # The binding holds the OrtValues; the closures keep them alive as long as the target.
    return Target(session, run, load, device_output.numpy)


class OrtBackend(Backend):
    """ONNX Runtime with one execution provider; every session shares the process-wide thread pool."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.label = EXECUTION_PROVIDERS[name]
        self.precisions = SUPPORTED_PRECISIONS[name]

    def status(self) -> ProviderStatus:
        return provider_status(self.name)

    def load(
        self, model: bytes, *, opt_level: str, precision: str = "fp32", cuda_graph: bool = False
    ) -> ort.InferenceSession:
        check_precision(self, precision)
        options = session_options(threads=fixed_threads(), opt_level=opt_level)
        return create_session(model, self.name, options, cuda_graph=cuda_graph)

    def threads(self, loaded) -> int:
        return fixed_threads() or physical_cores()

    def compute_target(
        self, loaded, x: Batch, *, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
    ) -> Target:
        make = cuda_compute_target if self.name == "cuda" else host_target
        return make(loaded, x, input_name=input_name, output_name=output_name)

    def end_to_end_target(self, model: bytes, x: np.ndarray, *, opt_level: str) -> Target | None:
        if self.name != "cuda":
            return None
        return host_target(self.load(model, opt_level=opt_level), x)

    def census(
        self,
        name: str,
        model: bytes,
        *,
        opt_level: str,
        precision: str = "fp32",
        activation_ops: frozenset[str] | None = None,
    ) -> FusionCensus:
        import onnx

        with tempfile.TemporaryDirectory(prefix="actprof-opt-") as tmp:
            path = f"{tmp}/optimized.onnx"
            options = session_options(threads=fixed_threads(), opt_level=opt_level, optimized_path=path)
            create_session(model, self.name, options)
            optimized = onnx.load(path)
        return attribution.census_of_optimized(
            name,
            optimized,
            provider=self.name,
            opt_level=opt_level,
            is_activation=attribution.classifier(activation_ops),
        )

    @contextlib.contextmanager
    def op_profiler(
        self,
        name: str,
        model: bytes,
        *,
        batch: int,
        opt_level: str,
        x: np.ndarray,
        precision: str = "fp32",
        names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME),
        activation_ops: frozenset[str] | None = None,
    ) -> Iterator[OpProfiler]:
        with tempfile.TemporaryDirectory(prefix="actprof-prof-") as tmp:
            options = session_options(threads=fixed_threads(), opt_level=opt_level, profile_prefix=f"{tmp}/ort")
            session = create_session(model, self.name, options)
            target = self.compute_target(session, x, input_name=names[0], output_name=names[1])

            def finish(warm_up: int, runs: int) -> OpProfile:
                events = attribution.load_profile_file(Path(session.end_profiling()))
                # Warm-up runs are in the profile too (and on CUDA the binding's first run): count every one.
                recorded = runs + warm_up + (1 if self.name == "cuda" else 0)
                providers = attribution.node_providers(events)
                foreign = sorted(f"{node} ({prov})" for node, prov in providers.items() if prov != self.label)
                return attribution.op_profile_of(
                    attribution.parse_profile(events),
                    model=name,
                    provider=self.name,
                    batch=batch,
                    opt_level=opt_level,
                    runs=recorded,
                    foreign_nodes=foreign,
                    is_activation=attribution.classifier(activation_ops),
                )

            yield OpProfiler(run=target.run, finish=finish)

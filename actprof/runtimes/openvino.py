"""OpenVINO's CPU plugin as an actprof backend: the ``openvino`` runtime compiling the ONNX file itself.

Why OpenVINO's own runtime and not ONNX Runtime's OpenVINO execution provider: the runtime installs from
the package registry as one wheel (``pip install 'actprof[openvino]'``), runs on Intel and AMD x86 alike
(the EP's device discovery has skipped non-Intel CPUs), and exposes what actprof must state and check —
the inference precision it really chose, its thread count, its runtime model (which original layers each
executed layer absorbed) and per-layer times.

Honesty rules, as for ONNX Runtime: the precision is set explicitly (OpenVINO silently runs bf16 on CPUs
with bf16 units unless told otherwise) and read back; the thread count equals ORT's; one stream, latency
mode. OpenVINO's pool and ORT's never time in the same rounds: the profile stage measures each backend's
models in rounds of their own.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from actprof.errors import ModelFileError, ProviderUnavailable
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.runtimes import attribution
from actprof.runtimes.base import (
    Backend,
    Batch,
    OpProfiler,
    Target,
    check_precision,
    feeds_of,
    first_line,
    fixed_threads,
    probe_model,
)
from actprof.schema.environment import physical_cores
from actprof.schema.profiling import FusionCensus, OpProfile, ProviderStatus
from actprof.settings.profile import SUPPORTED_PRECISIONS

DEVICE = "CPU"
LABEL = "OpenVINO CPU"
INSTALL = "pip install 'actprof[openvino]'"
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8 is in the QDQ graph; the rest runs f32


@functools.cache
def _core():
    try:
        import openvino
    except ImportError:
        raise ProviderUnavailable(f"--provider openvino: the openvino package is not installed; {INSTALL}") from None
    return openvino.Core()


def _precision_name(ov_type: Any) -> str:
    text = str(getattr(ov_type, "get_type_name", lambda: ov_type)()).lower()
    return {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "f16": "fp16"}.get(text, text)


class OpenVinoBackend(Backend):
    name = "openvino"
    label = LABEL
    precisions = SUPPORTED_PRECISIONS["openvino"]

    def status(self) -> ProviderStatus:
        try:
            core = _core()
        except ProviderUnavailable as exc:
            return ProviderStatus(self.name, LABEL, False, False, str(exc))
        if DEVICE not in core.available_devices:
            reason = f"--provider openvino: OpenVINO sees no CPU device (it sees: {core.available_devices})"
            return ProviderStatus(self.name, LABEL, True, False, reason)
        try:
            compiled = self.load(probe_model(), opt_level="default")
        except ModelFileError as exc:
            return ProviderStatus(self.name, LABEL, True, False, f"--provider openvino: {exc}")
        name = core.get_property(DEVICE, "FULL_DEVICE_NAME")
        return ProviderStatus(
            self.name, LABEL, True, True, f"bound: OpenVINO {DEVICE} ({name}, {self.threads(compiled)} threads)"
        )

    def opt_levels(self, requested: list[str]) -> list[str]:
        return ["default"]

    def load(
        self, model: bytes, *, opt_level: str, precision: str = "fp32", cuda_graph: bool = False, perf_count=False
    ):
        check_precision(self, precision)
        core = _core()
        config = {
            "INFERENCE_PRECISION_HINT": HINTS[precision],
            "INFERENCE_NUM_THREADS": fixed_threads() or physical_cores(),
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "PERF_COUNT": perf_count,
        }
        try:
            compiled = core.compile_model(core.read_model(model), DEVICE, config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line texts
            raise ModelFileError(f"OpenVINO cannot compile the model: {first_line(exc)[:200]}") from None
        granted = self.runs_as(compiled, precision)
        if precision != "int8" and granted != precision:
            raise ProviderUnavailable(
                f"--precision {precision}: OpenVINO runs {granted} on this CPU ({precision} needs native support); "
                f"choose --precision fp32"
            )
        return compiled

    def runs_as(self, loaded, precision: str) -> str:
        granted = _precision_name(loaded.get_property("INFERENCE_PRECISION_HINT"))
        return "int8" if precision == "int8" else granted

    def threads(self, loaded) -> int:
        return int(loaded.get_property("INFERENCE_NUM_THREADS"))

    def compute_target(
        self, loaded, x: Batch, *, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
    ) -> Target:
        """One infer request with the inputs set once; ``run`` is a synchronous ``infer()``."""
        import openvino

        request = loaded.create_infer_request()
        ports = {name: port for port in loaded.inputs for name in port.get_names()}
        outputs = {name: port for port in loaded.outputs for name in port.get_names()}
        out = outputs[output_name]

        def load(batch: Batch) -> None:
            for name, array in feeds_of(batch, input_name).items():
                request.set_tensor(ports[name], openvino.Tensor(np.require(array, requirements="C")))

        def output() -> np.ndarray:
            request.infer()
            return request.get_tensor(out).data.copy()

        load(x)
        return Target(loaded, request.infer, load, output)

    def census(
        self,
        name: str,
        model: bytes,
        *,
        opt_level: str,
        precision: str = "fp32",
        activation_ops: frozenset[str] | None = None,
    ) -> FusionCensus:
        """From OpenVINO's runtime model: each executed layer's type and the original layers it absorbed."""
        import onnx

        op_of = {node.name: node.op_type for node in onnx.load_from_string(model).graph.node}
        layers = []
        compiled = self.load(model, opt_level=opt_level, precision=precision)
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            layer_type = info["layerType"].astype(str)
            originals = [n for n in info["originalLayersNames"].astype(str).split(",") if n]
            layers.append((layer_type, [op_of[n] for n in originals if n in op_of]))
        return attribution.census_of_runtime_layers(
            name, layers, provider=self.name, opt_level=opt_level, is_activation=attribution.classifier(activation_ops)
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
        """Per-layer time from OpenVINO's performance counters, summed over every timed run."""
        compiled = self.load(model, opt_level=opt_level, precision=precision, perf_count=True)
        target = self.compute_target(compiled, x, input_name=names[0], output_name=names[1])
        totals: dict[tuple[str, str], tuple[float, int]] = {}
        request = target.run.__self__

        def add_counters() -> None:  # the request's counters describe its last run only
            for node in request.profiling_info:
                if str(node.status).endswith("EXECUTED") and node.node_type not in ("Parameter", "Result"):
                    key = (node.node_type, self.name)
                    total, count = totals.get(key, (0.0, 0))
                    totals[key] = (total + node.real_time.total_seconds() * 1e6, count + 1)

        def finish(warm_up: int, runs: int) -> OpProfile:  # the warm-up's runs were not counted
            return attribution.op_profile_of(
                totals,
                model=name,
                provider=self.name,
                batch=batch,
                opt_level=opt_level,
                runs=runs,
                foreign_nodes=[],
                is_activation=attribution.classifier(activation_ops),
            )

        yield OpProfiler(run=target.run, finish=finish, after_each=add_counters)

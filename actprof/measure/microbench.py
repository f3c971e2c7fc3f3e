"""Each activation as a single-node ONNX model over cache-sized and DRAM-sized tensors.

Elementwise activations are memory-bound when they are cheap and compute-bound when they are not; the
ratio of an op's bandwidth to a plain copy's, measured in the same run at the same size, says which.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from actprof import runtimes
from actprof.activations import Activation
from actprof.graphs.candidates import candidate_nodes
from actprof.measure import harness
from actprof.runtimes.base import fixed_threads
from actprof.schema.profiling import MicrobenchRecord, OpBandwidth
from actprof.schema.storage import header

OPSET = 20
IR_VERSION = 10  # the newest that every supported onnxruntime loads
CACHE_BYTES = 1 << 20  # 1 MiB: well inside L2


def l3_bytes() -> int | None:
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
    except OSError:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def default_sizes() -> list[int]:
    """Elements: one tensor that fits in L2, and one twice the L3 (so input and output stream from DRAM),
    between 256 MiB and 1 GiB."""
    l3 = l3_bytes() or (32 << 20)
    return [CACHE_BYTES // 4, min(max(2 * l3, 256 << 20), 1 << 30) // 4]


def single_op_model(act: Activation | None) -> bytes:
    """``y = act(x)`` over a 1-D float tensor of any length; ``None`` gives the copy (Identity)."""
    from onnx import TensorProto, helper

    nodes = _nodes(act)
    graph = helper.make_graph(
        nodes,
        act.name if act else "copy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
        initializer=_initializers(act),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    return model.SerializeToString()


def _nodes(act: Activation | None):
    """One site of ``act`` as the activation table writes it (PReLU with its slope as an input)."""
    from onnx import helper

    if act is None:
        return [helper.make_node("Identity", ["x"], ["y"])]
    if act.name == "prelu":
        return [helper.make_node("PRelu", ["x", "slope"], ["y"])]
    nodes, _ = candidate_nodes(act.name, "x", "y", opset_version=OPSET, tag=act.name)
    return nodes


def _initializers(act: Activation | None):
    from onnx import numpy_helper

    if act is not None and act.name == "prelu":
        return [numpy_helper.from_array(np.array([act.default_param], dtype=np.float32), "slope")]
    return []


def measure(
    acts: list[Activation],
    *,
    provider: str = "cpu",
    sizes: list[int] | None = None,
    min_time: float = 0.2,
    min_runs: int = 5,
    on_progress=None,
) -> MicrobenchRecord:
    say = on_progress or (lambda _m: None)
    sizes = sizes or default_sizes()
    rng = np.random.default_rng(0)
    results = []
    for n in sizes:
        x = rng.standard_normal(n, dtype=np.float32)  # both signs: every branch of every activation runs
        backend = runtimes.backend(provider)
        targets = {}
        for act in [None, *acts]:
            name = act.name if act else "copy"
            loaded = backend.load(single_op_model(act), opt_level="all")
            targets[name] = backend.compute_target(loaded, x, input_name="x", output_name="y")
        say(f"{provider}: {len(targets)} ops over {n:,} elements ({4 * n / 2**20:,.0f} MiB)")
        rounds = harness.interleave(
            {k: t.run for k, t in targets.items()}, min_seconds=min_time, min_runs=min_runs, min_rounds=5
        )
        copy_p50 = float(np.median(rounds.samples["copy"])) / 1e6
        for act in [None, *acts]:
            name = act.name if act else "copy"
            p50 = float(np.median(rounds.samples[name])) / 1e6
            moved = 2 * 4 * n
            results.append(
                OpBandwidth(
                    op=name,
                    onnx_ops=list(act.onnx_ops) if act else ["Identity"],
                    provider=provider,
                    elements=n,
                    bytes_moved=moved,
                    p50_ms=p50,
                    gbps=moved / (p50 / 1e3) / 1e9,
                    fraction_of_copy=copy_p50 / p50,
                )
            )
    return MicrobenchRecord(
        **header("microbench"),
        threads=fixed_threads(),
        l3_bytes=l3_bytes(),
        results=results,
    )


def merge(records: list[MicrobenchRecord]) -> MicrobenchRecord:
    """One record for several providers (each measured in its own run)."""
    return replace(records[0], results=[r for record in records for r in record.results])

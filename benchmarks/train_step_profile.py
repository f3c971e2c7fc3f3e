"""Where a training step's time goes, per layer and per kind, against this machine's measured roof.

Profiles the step ``actprof.train`` runs (``train.Stepper``: channels-last, bf16 autocast where the CPU
has it, fused Adam, the exact training rewrites) on full MNIST batches with ``torch.profiler``. Each
ATen op's own time is given a kind: the convolutions (forward and backward, with the 1-input-channel
first one apart), fc layers, pooling, activations, dropout, loss, optimizer, and batch gathering. The
convolutions and fc layers also get the GFLOP/s they reach, as a fraction of the roof measured in the
same run: the best of a large bf16 and fp32 matmul, and a copy's bandwidth.

    python benchmarks/train_step_profile.py --data-dir ../shared/data/mnist [--acts relu,elu] [--model deep]

The profiler adds its own overhead per op, so the step times it reports are longer than the
unprofiled step time printed above them; the shares are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BATCH = 250

KINDS = {  # ATen op name -> kind (convolutions and matmuls are split further by their shapes below)
    "aten::max_pool2d_with_indices": "pool",
    "aten::max_pool2d_with_indices_backward": "pool",
    "aten::fill_": "pool",  # in these networks only the zeroed gradient max-pool backward scatters into
    "aten::random_": "dropout",  # the int16 ops below are only the dropout's in these two networks
    "aten::__rshift__": "dropout",
    "aten::bitwise_right_shift_": "dropout",
    "aten::bitwise_and_": "dropout",
    "aten::_fused_adam_": "optimizer",
    # actprof's kernels (actprof/training/kernels/ops.py), profiled as their autograd functions
    "_ConvPool": "first block, fused (conv1 + pool)",
    "_ConvPoolBackward": "first block, fused (conv1 + pool)",
    "_MaxPool": "pool",
    "_MaxPoolBackward": "pool",
    "aten::index_select": "gather batch",
    "aten::_log_softmax": "loss",
    "aten::_log_softmax_backward_data": "loss",
    "aten::nll_loss_forward": "loss",
    "aten::nll_loss_backward": "loss",
}
ACTIVATION_OPS = ("relu", "clamp_min", "threshold_backward", "elu", "gelu", "silu", "mish", "selu", "celu", "tanh")
ACTIVATION_OPS += ("sigmoid", "softplus", "hardswish", "leaky_relu", "prelu", "_prelu_kernel", "where")


def roof(threads: int) -> dict[str, float]:
    """Peak GFLOP/s of a large bf16 and fp32 matmul, and a copy's GB/s (256 MiB, well past the caches)."""
    torch.set_num_threads(threads)

    def best_of(fn, repeats: int = 5) -> float:
        fn()
        return min(_timed(fn) for _ in range(repeats))

    figures = {}
    for dtype, label in ((torch.bfloat16, "bf16 GFLOP/s"), (torch.float32, "fp32 GFLOP/s")):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        figures[label] = 2 * 2048**3 / best_of(lambda a=a, b=b: a @ b) / 1e9
    source = torch.empty(64 << 20)
    target = torch.empty_like(source)
    figures["copy GB/s"] = 2 * source.numel() * 4 / best_of(lambda: target.copy_(source)) / 1e9
    return figures


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def kind_of(event) -> str:
    name = event.key
    shapes = event.input_shapes
    if name in ("aten::mkldnn_convolution", "aten::convolution_backward"):
        first = shapes[0 if name == "aten::mkldnn_convolution" else 1]
        direction = "fwd" if name == "aten::mkldnn_convolution" else "bwd"
        return f"conv {first[1]}→{shapes[2][0]} {direction}" + (" (first conv)" if first[1] == 1 else "")
    if name in ("aten::mm", "aten::addmm"):
        return "fc layers"
    if name in KINDS:
        return KINDS[name]
    if name in ("aten::mul", "aten::mul_"):
        return "dropout / mask multiply"
    if any(name == f"aten::{op}" or name == f"aten::{op}_" for op in ACTIVATION_OPS) or name.endswith("_backward"):
        return "activation"
    if name in ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous"):
        return "casts and copies"
    return "other"


def conv_flops(event, outputs: dict[tuple, list[int]]) -> float:
    """FLOPs of a convolution forward (2·N·OH·OW·Cout·Cin·k²) or backward (data and weight gradients).
    ``outputs``: the output shape of each (input, weight) shape pair, read off the backward events."""
    shapes = event.input_shapes
    x, w = (shapes[0], shapes[1]) if event.key == "aten::mkldnn_convolution" else (shapes[1], shapes[2])
    out = outputs[(tuple(x), tuple(w))]
    per_pass = 2 * out[0] * out[2] * out[3] * w[0] * w[1] * w[2] * w[3]
    if event.key == "aten::mkldnn_convolution":
        return per_pass
    return per_pass * (1 if x[1] == 1 else 2)  # no data gradient for the first layer


def profile(act: str, architecture: str, data_dir: Path, steps: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from actprof import activations
    from actprof.data import mnist as data
    from actprof.settings.training import TrainConfig
    from actprof.training.config import Recipe
    from actprof.training.loop import Stepper, keep_freed_memory, resolve_precision, staged
    from actprof.training.model import config_for

    keep_freed_memory()
    mnist = data.load_mnist(data_dir=data_dir, log=lambda _m: None)
    device = torch.device("cpu")
    config = TrainConfig(precision=resolve_precision("auto", device))
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    x, y, *_ = staged(mnist, config.val_fraction, device, dtype)
    stepper = Stepper.of(config_for(activations.get(act), Recipe(architecture=architecture)), config, device)
    order = torch.randperm(len(y))

    def step(i: int) -> None:
        idx = order[(i * BATCH) % (len(y) - BATCH) :][:BATCH]
        stepper.step(x.index_select(0, idx), y.index_select(0, idx))

    for i in range(10):
        step(i)
    plain = statistics.median(_timed(lambda i=i: step(i)) for i in range(10, 10 + steps))
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(steps):
            step(i)
    events = prof.key_averages(group_by_input_shape=True)
    outputs = {
        (tuple(e.input_shapes[1]), tuple(e.input_shapes[2])): e.input_shapes[0]
        for e in events
        if e.key == "aten::convolution_backward"
    }
    per_kind: dict[str, float] = defaultdict(float)
    flops: dict[str, float] = defaultdict(float)
    for event in events:
        if (event.key.startswith("aten::") or event.key in KINDS) and event.self_cpu_time_total > 0:
            kind = kind_of(event)
            per_kind[kind] += event.self_cpu_time_total / 1e3 / steps  # ms per step
            if kind.startswith("conv"):
                flops[kind] += conv_flops(event, outputs) * event.count / steps
    total = sum(per_kind.values())
    print(
        f"\n{act}, {architecture} CNN ({config.precision}): {plain * 1e3:.1f} ms/step unprofiled "
        f"({BATCH / plain:,.0f} img/s); {total:.1f} ms/step of ATen ops profiled"
    )
    print(f"  {'kind':<34} {'ms/step':>8} {'share':>6} {'GFLOP/s':>8}")
    for kind, ms in sorted(per_kind.items(), key=lambda item: -item[1]):
        rate = f"{flops[kind] / ms / 1e6:8.0f}" if kind in flops else ""
        print(f"  {kind:<34} {ms:8.2f} {ms / total:6.1%} {rate}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--acts", default="relu,elu")
    parser.add_argument("--model", default="seed", choices=["seed", "deep"])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from actprof.schema.environment import cpu_model

    threads = torch.get_num_threads()
    figures = roof(threads)
    print(f"{cpu_model()}, {threads} threads; roof: " + ", ".join(f"{v:,.0f} {k}" for k, v in figures.items()))
    for act in args.acts.split(","):
        profile(act, args.model, args.data_dir, args.steps)


if __name__ == "__main__":
    main()

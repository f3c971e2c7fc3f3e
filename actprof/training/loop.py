"""Train a network briefly and record how it converged.

The loop is written for a 2-core CPU and runs unchanged on a CUDA GPU: the whole training set is
staged once as one float tensor on the training device, batches are gathered with ``index_select`` (no
Python-side batching), the model runs channels-last, Adam is the fused kernel (SGD where chosen), and validation runs in
inference mode on a fixed subset at the steps ``validation_steps`` picks (dense where curves are steep).
Per-step losses stay on the device, so a GPU step never waits for the host; the clock is read only after
the device has synchronized.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from actprof import activations
from actprof.data.mnist import MNIST, to_tensor, validation_split
from actprof.errors import DeviceUnavailable, TrainingDiverged
from actprof.schema.training import TARGETS, LayerStats, TimeToAccuracy, TrainResult, ValPoint, time_to
from actprof.settings.training import ModelConfig, TrainConfig
from actprof.training.identity import trainer_identity
from actprof.training.model import build, canonical_form, check_batch, training_form
from actprof.training.networks import network_info, weight_layers
from actprof.training.optimizers import optimizer_for

StepCallback = Callable[[int, int], None]


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    data: MNIST,
    *,
    on_step: StepCallback | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train one model; returns it (eval mode, fp32, on the CPU) and its record.

    Raises TrainingDiverged on NaN/inf and DeviceUnavailable for ``device="cuda"`` without a GPU.
    """
    keep_freed_memory()
    device = resolve_device(config.device)
    config = replace(config, precision=resolve_precision(config.precision, device))
    threads = config.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)

    # bf16 autocast casts every batch to bf16 before the first convolution: staging the images as bf16
    # gives the same values, once per sweep instead of once per step, at half the bytes gathered.
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    x_train, y_train, x_val, y_val, x_test, y_test = staged(data, config.val_fraction, device, dtype)
    val_probe = slice(0, min(config.val_size, len(y_val)))

    stepper = Stepper.of(model_config, config, device)
    model, autocast = stepper.model, stepper.autocast

    n = len(y_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    checkpoints = validation_steps(total_steps, config.val_every, config.epochs)
    step_loss = torch.empty(total_steps, device=device)
    step_correct = torch.empty(total_steps, device=device)
    step_sizes = torch.empty(total_steps, device=device)
    shuffle = torch.Generator().manual_seed(config.seed)
    point_x, point_y = x_val[val_probe], y_val[val_probe]
    with autocast:  # before the first step: where every curve starts (interpolation needs a left end)
        validation = [ValPoint(0, 0.0, 0.0, *evaluate(model, point_x, point_y), {})]
    train_seconds = 0.0
    step = 0

    # The first steps of a process pay one-time setup (CUDA's lazy init and cuDNN autotuning; oneDNN
    # primitive creation on the CPU), billed to the first activation trained (the baseline, in `actprof run`)
    # without this: on the H100 that model trained at 8,553 img/s on the sample and the next at 77,196.
    _warm_up(stepper, x_train[: config.batch_size], y_train[: config.batch_size])
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=shuffle).to(device)  # the same order on every device
        model.train()
        started = _clock(device)
        for first in range(0, n, config.batch_size):
            idx = order[first : first + config.batch_size]
            xb, yb = x_train.index_select(0, idx), y_train.index_select(0, idx)
            loss, logits = stepper.step(xb, yb)
            step_loss[step] = loss.detach()
            step_correct[step] = (logits.detach().argmax(1) == yb).sum()
            step_sizes[step] = len(yb)
            step += 1
            if on_step:
                on_step(step, total_steps)
            if step in checkpoints:
                train_seconds += _clock(device) - started
                _check_finite(step_loss[step - 1].item(), step)
                with autocast:  # at the training precision, like the test set below (bf16 halves the cost)
                    val_loss, val_acc = evaluate(model, point_x, point_y)
                validation.append(
                    ValPoint(step, step / steps_per_epoch, train_seconds, val_loss, val_acc, _grad_norms(model))
                )
                model.train()
                started = _clock(device)

    identity = trainer_identity(model, config, device)  # in the training form, before it is undone
    model.eval()
    # At the training precision, like the curve (bf16: ~2x cheaper); the exported fp32 model's accuracy is
    # measured separately, in ONNX Runtime. Still in the training form here: the same function (up to
    # rounding: fc1 sums its inputs in channels-last order).
    with autocast:
        test_loss, test_acc = evaluate(model, x_test, y_test)
    canonical_form(model)  # the canonical network from here on: statistics, export
    _check_finite(test_loss, step)
    result = TrainResult(
        config=config,
        model=model_config,
        steps=total_steps,
        images=n * config.epochs,
        train_seconds=train_seconds,
        images_per_second=n * config.epochs / train_seconds,
        step_loss=step_loss.tolist(),
        step_accuracy=(step_correct / step_sizes).tolist(),
        validation=validation,
        time_to_accuracy=time_to_accuracy(validation),
        val_loss=validation[-1].val_loss,
        val_accuracy=validation[-1].val_accuracy,
        test_loss=test_loss,
        test_accuracy=test_acc,
        layer_stats=activation_stats(model, _validation_images(data, config.val_fraction, 1000)),
        threads=threads,
        device_name=device_name(device),
        trainer=identity,
        network=network_info(model, model_config),
    )
    return model.to(device="cpu", memory_format=torch.contiguous_format), result


def keep_freed_memory() -> None:
    """Stop glibc from handing each step's freed activations back to the OS.

    By default glibc serves large blocks with mmap and trims the heap eagerly, so every step page-faults
    its activations back in: the first model trained in a process ran 1.6x slower on the 2-core CPU
    (0.68 vs 0.41 s per 18 steps, ReLU) until glibc's adaptive threshold happened to rise. Fixed
    thresholds make every model train at the warm speed. No effect where libc is not glibc.
    """
    import ctypes
    import ctypes.util

    m_trim_threshold, m_mmap_threshold = -1, -3
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # Older glibc refuses thresholds over 32 MiB (mallopt returns 0). If neither is taken, leave glibc
        # adaptive: a fixed trim threshold alone would also freeze the mmap threshold at 128 KiB.
        if libc.mallopt(m_mmap_threshold, 256 << 20) or libc.mallopt(m_mmap_threshold, 32 << 20):
            libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


def resolve_device(name: str) -> torch.device:
    """``cpu`` or the current CUDA GPU; DeviceUnavailable when CUDA is asked for and PyTorch has none."""
    if name != "cuda":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = "it is a CPU-only build" if torch.version.cuda is None else "no GPU or driver is visible"
        raise DeviceUnavailable(f"--device cuda: PyTorch {torch.__version__} cannot use CUDA ({why}); use --device cpu")
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolution once
    return torch.device("cuda", torch.cuda.current_device())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from actprof.schema.environment import cpu_model

    return cpu_model()


def resolve_precision(precision: str, device: torch.device | None = None) -> str:
    """``auto``: bf16 autocast where the device computes bf16 natively (AMX/AVX-512 CPUs, Ampere+ GPUs)."""
    if precision != "auto":
        return precision
    if device is not None and device.type == "cuda":
        try:  # only native bf16 (Ampere and newer): on older GPUs torch emulates it, slowly
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch before the argument existed
            native = torch.cuda.get_device_capability(device) >= (8, 0)
        return "bf16" if native else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


# Near a plateau a crossing's error is the probe's sampling noise, not the gap between points: on full
# MNIST 12 points of 2,000 images gave time to 90-96% as precisely as 24 (time to 97% 0-13% noisier), at
# half the cost, where 24 points of 1,000 images were 1.4-2x noisier (benchmarks/probe_precision.py).
POINTS_PER_EPOCH = 12


def validation_steps(total_steps: int, every: int, epochs: int, per_epoch: int | None = None) -> frozenset[int]:
    """The steps after which the validation subset is evaluated (the last step always is).

    ``every`` > 0: uniformly, every ``every`` steps. 0 (the default): dense where curves are steep — step k
    of n points is total·(k/n)², so the first points are a few steps apart and the last ones tens — with
    n = ``per_epoch`` (default POINTS_PER_EPOCH) points per epoch's worth of curve, for up to four
    epochs. Time to accuracy is interpolated between the two points around each crossing, and the width
    of that bracket is recorded as its resolution.
    """
    if every > 0:
        return frozenset([*range(every, total_steps + 1, every), total_steps])
    points = (per_epoch or POINTS_PER_EPOCH) * min(4, epochs)
    return frozenset(max(1, round(total_steps * (k / points) ** 2)) for k in range(1, points + 1))


@dataclass
class Stepper:
    """The network in the form it trains in, and one optimizer step on a batch.

    The form: channels-last, bf16 autocast where chosen, fused Adam, and the model's exact training
    rewrites (``lean``: only what reaches the loss; ``pool_first`` for monotonic activations). The
    benchmarks profile this very step.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    autocast: torch.autocast
    loss_fn: nn.Module

    @classmethod
    def of(cls, model_config: ModelConfig, config: TrainConfig, device: torch.device) -> Stepper:
        model = build(model_config).to(device=device)
        check_batch(model, config.batch_size)
        # exact: pool-first for a monotonic f, and only what reaches the loss (model.SeedCNN), where they apply;
        # channels-last there too (a user's network may .view() a convolution's output, which needs NCHW)
        if training_form(model, activations.get(model_config.activation)):
            model = model.to(memory_format=torch.channels_last)
        return cls(
            model=model,
            optimizer=optimizer_for(model.parameters(), config, fused=True),
            autocast=torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"),
            loss_fn=nn.CrossEntropyLoss(),
        )

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward and update on one batch; returns the loss and the logits."""
        with self.autocast:
            logits = self.model(xb)
            loss = self.loss_fn(logits.float(), yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss, logits


def _warm_up(stepper: Stepper, xb: torch.Tensor, yb: torch.Tensor) -> None:
    """Two untimed steps on a throwaway copy, so that one-time setup is not in the first model's training
    time. The weights and the random streams are left as they were."""
    import copy

    model = copy.deepcopy(stepper.model).train()  # the caller's may be in eval mode (after the first point)
    twin = replace(
        stepper, model=model, optimizer=type(stepper.optimizer)(model.parameters(), **stepper.optimizer.defaults)
    )
    with torch.random.fork_rng(devices=[xb.device] if xb.device.type == "cuda" else []):
        for _ in range(2):
            twin.step(xb, yb)
    if xb.device.type == "cuda":
        torch.cuda.synchronize(xb.device)


def _clock(device: torch.device) -> float:
    """perf_counter once the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


_STAGED: dict[tuple, tuple[MNIST, tuple[torch.Tensor, ...]]] = {}  # the last staging, kept for the next run


def staged(data: MNIST, val_fraction: float, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Training, validation and test images and labels as tensors on the device, channels-last.

    A sweep trains the same data again and again (every seed, rate and activation): it is staged once
    per process (so once per Ray worker) and reused, never modified by training.
    """
    key = (id(data), val_fraction, str(device), dtype)
    if key in _STAGED and _STAGED[key][0] is data:
        return _STAGED[key][1]
    train_idx, val_idx = validation_split(len(data.train_labels), fraction=val_fraction)
    tensors = (
        *_stage(data.train_images[train_idx], data.train_labels[train_idx], device, dtype),
        *_stage(data.train_images[val_idx], data.train_labels[val_idx], device, dtype),
        *_stage(data.test_images, data.test_labels, device, dtype),
    )
    _STAGED.clear()
    _STAGED[key] = (data, tensors)  # holding `data` keeps its id from being reused by another object
    return tensors


def _validation_images(data: MNIST, val_fraction: float, count: int) -> torch.Tensor:
    """The first ``count`` validation images as fp32 (the staged ones may be bf16, which rounds pixels)."""
    _, val_idx = validation_split(len(data.train_labels), fraction=val_fraction)
    return to_tensor(data.train_images[val_idx[:count]])


def _stage(
    images: np.ndarray, labels: np.ndarray, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_tensor(images).to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(labels.astype(np.int64)).to(device)


def _check_finite(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at step {step}; training diverged — lower --lr or use --precision fp32"
        )


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode (at the caller's autocast precision, if any)."""
    model.eval()
    total_loss, correct = 0.0, 0
    for first in range(0, len(y), chunk):
        logits = model(x[first : first + chunk]).float()
        yb = y[first : first + chunk]
        total_loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(y), correct / len(y)


def _grad_norms(model: nn.Module) -> dict[str, float]:
    return {
        name: float(layer.weight.grad.norm()) if layer.weight.grad is not None else math.nan
        for name, layer in weight_layers(model).items()
    }


def time_to_accuracy(points: list[ValPoint], targets: tuple[float, ...] = TARGETS) -> list[TimeToAccuracy]:
    """When each target was first reached, interpolated on the recorded curve (None when never reached)."""
    return [time_to(points, target) for target in targets]


@torch.inference_mode()
def activation_stats(model: nn.Module, x: torch.Tensor) -> list[LayerStats]:
    """Mean activation and dead-unit fraction per activation layer over one validation batch."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name in model.ACT_LAYERS
    ]
    try:
        model.eval()
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    stats = []
    for name in model.ACT_LAYERS:
        out = outputs[name].float().flatten(1)  # one column per unit (channel × position, or neuron)
        alive = (out > 0).any(dim=0)
        stats.append(
            LayerStats(
                layer=name,
                units=out.shape[1],
                mean_activation=float(out.mean()),
                dead_fraction=float(1.0 - alive.float().mean()),
            )
        )
    return stats

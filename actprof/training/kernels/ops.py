"""The seed CNN's first block — a 1-input-channel 3×3 convolution and the 2×2 max pool after it — and every
2×2 max pool, as C kernels for CPU training (``conv_pool.c``; ``build`` compiles, trusts and loads it).

In the unfused step the first block was the largest cost on the 2-core CPU (benchmarks/RESULTS.md): oneDNN's
convolution with one input channel reaches a tenth of the machine's roof, and the pool moves its 4.6 M
bf16 outputs and their int64 indices three times (forward, a zeroed gradient, the scatter back). Fused,
the convolution's outputs never leave registers: each window's four are computed, compared and only the
maximum is written, with a one-byte code of which position won. The backward needs no input gradient (the
images), so it is one pass computing the weight and bias gradients from the codes.

Activations the kernels know (the activation table's ``Kernel`` column) run in the same pass: after the pool
for the monotonic ones (ReLU, LeakyReLU, the ELU family, sigmoid, tanh: the trainer's pool-first order),
before it for those that are not (GELU, GELU-tanh, SiLU, Mish, Hardswish, PReLU), each of the window's four
values activated and then compared; then dropout. Others (Softplus) run in torch around the kernels.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from actprof.training.kernels.build import LANES, MAX_CHANNELS, MAX_WIDTH, Epilogue, enabled, kind, library
from actprof.training.kernels.masks import random_words

if TYPE_CHECKING:
    from actprof.activations import Activation

NO_ACTIVATION = kind("NONE")
PRELU = kind("PRELU")


@dataclass(frozen=True)
class Act:
    """An activation site as the kernels see it: its module (what torch runs where the kernels do not, and
    PReLU's learned slope) and what the kernels compute for it, read off the activation table (``kind``
    None: nothing; ``before_pool``: on each of the pool's four inputs)."""

    module: nn.Module
    kind: int | None = None
    params: tuple[float, float, float] = (0.0, 0.0, 0.0)
    before_pool: bool = False

    @classmethod
    def of(cls, activation: Activation, param: float | None, module: nn.Module) -> Act:
        params = activation.kernel_params(param)
        if activation.kernel is None or params is None:
            return cls(module)
        if activation.kernel.kind == "PRELU" and getattr(module, "num_parameters", 1) != 1:
            return cls(module)  # one slope per channel: not the kernel's PReLU
        return cls(module, kind(activation.kernel.kind), params, activation.kernel.before_pool)

    @property
    def computed_before(self) -> bool:
        """Whether the kernels compute it on the pool's inputs."""
        return self.kind is not None and self.before_pool

    @property
    def computed_after(self) -> bool:
        """Whether the kernels compute it on the pool's output."""
        return self.kind is not None and not self.before_pool


def applies(x: torch.Tensor, conv: nn.Conv2d, before: Act | None = None) -> bool:
    """Whether ``fused_conv_pool`` can stand in for ``MaxPool2d(2)(before(conv(x)))`` here (no ``before``:
    the pool right after the convolution)."""
    return (
        enabled()
        and (before is None or before.computed_before)
        and x.device.type == "cpu"
        and conv.weight.device.type == "cpu"
        and x.dim() == 4
        and x.shape[1] == 1
        and x.dtype in (torch.float32, torch.bfloat16)
        and not x.requires_grad
        and conv.in_channels == 1
        and conv.out_channels % LANES == 0
        and conv.out_channels <= MAX_CHANNELS
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is not None
        and x.shape[2] >= 4
        and 4 <= x.shape[3] <= MAX_WIDTH
        and _autocast_dtype() in (None, torch.bfloat16)
        and library() is not None
    )


def pool_applies(x: torch.Tensor, pool: nn.Module) -> bool:
    """Whether ``max_pool2`` can stand in for ``pool(x)``: a 2×2, stride-2 max pool on a channels-last CPU
    tensor."""
    return (
        enabled()
        and isinstance(pool, nn.MaxPool2d)
        and _pair(pool.kernel_size) == (2, 2)
        and _pair(pool.stride) == (2, 2)
        and _pair(pool.padding) == (0, 0)
        and _pair(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and not pool.return_indices
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.shape[1] % LANES == 0
        and x.shape[2] >= 2
        and x.shape[3] >= 2
        and x.is_contiguous(memory_format=torch.channels_last)
        and library() is not None
    )


def fused_conv_pool(
    x: torch.Tensor,
    conv: nn.Conv2d,
    activation: Act | None = None,
    dropout: nn.Module | None = None,
    before: Act | None = None,
) -> torch.Tensor:
    """``dropout(activation(MaxPool2d(2)(before(conv(x)))))`` in channels-last, at bf16 under bf16 autocast
    (as torch would compute it, up to the order of the convolution's fp32 sums), else at the input's
    precision. ``before`` must be one the kernel computes (``applies``); the activation and the dropout run
    inside the kernel where it knows them (``epilogue``), else after it."""
    round_bf16 = _autocast_dtype() == torch.bfloat16 or x.dtype == torch.bfloat16
    if round_bf16:
        x = x.to(torch.bfloat16)  # as autocast casts a convolution's input (a no-op for staged bf16 images)
    post, rest = epilogue(activation, dropout, before)
    return rest(_ConvPool.apply(x, conv.weight, conv.bias, _slope(before), round_bf16, post))


def max_pool2(
    x: torch.Tensor,
    activation: Act | None = None,
    dropout: nn.Module | None = None,
    before: Act | None = None,
) -> torch.Tensor:
    """``dropout(activation(MaxPool2d(2)(before(x))))`` for a channels-last ``x``. The pool has the same
    values and winners as torch's (it only compares), keeps one-byte codes instead of int64 indices, and its
    backward writes the input gradient in one pass instead of zeroing it and scattering into it. An
    activation ``before`` the pool that the kernel does not compute runs first, in torch; the activation and
    the dropout after it as in ``fused_conv_pool``."""
    if before is not None and not before.computed_before:
        x, before = before.module(x), None
    post, rest = epilogue(activation, dropout, before)
    return rest(_MaxPool.apply(x, _slope(before), post))


class Post(NamedTuple):
    """What the kernels compute besides the convolution and the pool (conv_pool.c's ``epilogue``, less the
    pointers): the activation after the pool (kind, a, b, c), dropout (bits per decision, values dropped,
    rate; 0 bits: none), and the activation before the pool (its kind)."""

    kind: int = NO_ACTIVATION
    a: float = 0.0
    b: float = 0.0
    c: float = 0.0
    bits: int = 0
    dropped: int = 0
    rate: float = 0.0
    before: int = NO_ACTIVATION

    def reads_output(self) -> bool:
        """Whether the backward reads the forward's output: only to undo what follows the pool."""
        return self.kind != NO_ACTIVATION or self.bits != 0


def epilogue(
    activation: Act | None, dropout: nn.Module | None, before: Act | None = None
) -> tuple[Post | None, Callable]:
    """What the kernels compute besides the pool, and what is left to run after them in torch, in order.
    ``before`` must be one the kernels compute."""
    first = before.kind if before is not None else NO_ACTIVATION
    if activation is not None and not activation.computed_after:  # it, and the dropout after it, run in torch
        return (Post(before=first) if first else None), lambda out: _apply(dropout, activation.module(out))
    act = (activation.kind, *activation.params) if activation is not None else (NO_ACTIVATION, 0.0, 0.0, 0.0)
    drop = dropout_args(dropout)
    post = Post(*act, *(drop or (0, 0, 0.0)), first)
    if post == Post():
        post = None
    return post, (lambda out: out) if drop is not None else (lambda out: _apply(dropout, out))


def _slope(before: Act | None) -> torch.Tensor | None:
    """PReLU's learned slope, an input of the kernel's autograd function so that it gets its gradient."""
    return before.module.weight if before is not None and before.kind == PRELU else None


def _apply(module: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return module(x) if module is not None else x


def dropout_args(module: nn.Module | None) -> tuple[int, int, float] | None:
    """The dropout the kernels draw as (bits per decision, values dropped, rate): what a module offering
    ``kernel_args`` (actprof's FastDropout) says in training mode; None for no dropout or another one."""
    args = getattr(module, "kernel_args", None)
    return args() if callable(args) else None


def _draw_words(post: Post | None, units: int) -> torch.Tensor | None:
    """The random words dropout decides from, drawn from torch's generator as FastDropout draws them (and
    decided as it decides: conv_pool.c), so a seed gives the same masks with the kernels as without."""
    return random_words(units, post.rate) if post is not None and post.bits else None


def _epilogue_struct(
    post: Post | None, words: torch.Tensor | None, dtype: torch.dtype, slope: torch.Tensor | None
) -> Epilogue | None:
    if post is None:
        return None
    kind, a, b, c, bits, dropped, rate, before = post
    # What FastDropout multiplies kept units by: 1 / (1 - p) in the output's precision.
    scale = float(torch.tensor(1.0 / (1.0 - rate), dtype=dtype)) if bits else 0.0
    pointer, halves = (words.data_ptr(), 2 * words.numel()) if words is not None else (None, 0)
    slope_value = float(slope.to(dtype)) if slope is not None else 0.0  # autocast rounds it as the input
    return Epilogue(int(kind), a, b, c, pointer, halves, bits, dropped, scale, before, slope_value)


def _kept_output(post: Post | None, out: torch.Tensor) -> torch.Tensor | None:
    return out if post is not None and post.reads_output() else None


def _slope_gradient(slope: torch.Tensor | None, value: ctypes.c_float) -> torch.Tensor | None:
    return torch.full_like(slope, value.value) if slope is not None else None


def _by_reference(struct: Epilogue | None):
    return ctypes.byref(struct) if struct is not None else None


class _ConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, slope, round_bf16, post):
        x = x if x.stride(3) == 1 else x.contiguous()
        n, _, height, width = x.shape
        channels = weight.shape[0]
        dtype = torch.bfloat16 if round_bf16 else x.dtype
        out = _channels_last_empty(n, channels, (height - 2) // 2, (width - 2) // 2, dtype)
        codes = torch.empty_like(out, dtype=torch.uint8) if any(ctx.needs_input_grad[1:4]) else None
        words = _draw_words(post, out.numel())
        struct = _epilogue_struct(post, words, dtype, slope)
        taps, fp32_bias = _tap_major(weight), bias.detach().float().contiguous()
        _check(
            library().conv_pool_forward(
                *_image_args(x),
                taps.data_ptr(),
                fp32_bias.data_ptr(),
                channels,
                int(round_bf16),
                out.data_ptr(),
                int(out.dtype == torch.bfloat16),
                codes.data_ptr() if codes is not None else None,
                n,
                _by_reference(struct),
            )
        )
        if codes is not None:
            ctx.save_for_backward(x, weight, bias, slope, codes, _kept_output(post, out), words)
            ctx.post, ctx.dtype, ctx.round_bf16 = post, dtype, round_bf16
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight, bias, slope, codes, out, words = ctx.saved_tensors
        struct = _epilogue_struct(ctx.post, words, ctx.dtype, slope)  # from the tensors as unpacked now
        channels = codes.shape[1]
        grad = grad if grad.dtype in (torch.float32, torch.bfloat16) else grad.float()
        grad = grad.contiguous(memory_format=torch.channels_last)
        taps, fp32_bias = _tap_major(weight), bias.detach().float().contiguous()  # read with a `before`
        grad_weight, grad_bias, grad_slope = torch.empty((9, channels)), torch.empty(channels), ctypes.c_float()
        _check(
            library().conv_pool_backward(
                *_image_args(x),
                taps.data_ptr(),
                fp32_bias.data_ptr(),
                int(ctx.round_bf16),
                grad.data_ptr(),
                int(grad.dtype == torch.bfloat16),
                codes.data_ptr(),
                channels,
                grad_weight.data_ptr(),
                grad_bias.data_ptr(),
                ctypes.byref(grad_slope),
                x.shape[0],
                out.data_ptr() if out is not None else None,
                int(ctx.dtype == torch.bfloat16),
                _by_reference(struct),
            )
        )
        weight_grad = grad_weight.t().reshape(channels, 1, 3, 3)
        return None, weight_grad, grad_bias, _slope_gradient(slope, grad_slope), None, None


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope, post):
        n, channels, height, width = x.shape
        out = _channels_last_empty(n, channels, height // 2, width // 2, x.dtype)
        codes = torch.empty_like(out, dtype=torch.uint8) if any(ctx.needs_input_grad[:2]) else None
        words = _draw_words(post, out.numel())
        struct = _epilogue_struct(post, words, x.dtype, slope)
        _check(
            library().max_pool_forward(
                x.data_ptr(),
                int(x.dtype == torch.bfloat16),
                n,
                height,
                width,
                channels,
                out.data_ptr(),
                codes.data_ptr() if codes is not None else None,
                _by_reference(struct),
            )
        )
        if codes is not None:
            before = post is not None and post.before != NO_ACTIVATION
            ctx.save_for_backward(codes, _kept_output(post, out), words, x if before else None, slope)
            ctx.input_shape, ctx.post, ctx.dtype = x.shape, post, x.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        codes, out, words, x, slope = ctx.saved_tensors
        struct = _epilogue_struct(ctx.post, words, ctx.dtype, slope)  # from the tensors as unpacked now
        grad_slope = ctypes.c_float()
        n, channels, height, width = ctx.input_shape
        grad = grad.to(ctx.dtype).contiguous(memory_format=torch.channels_last)
        grad_in = _channels_last_empty(n, channels, height, width, ctx.dtype)
        _check(
            library().max_pool_backward(
                grad.data_ptr(),
                int(grad.dtype == torch.bfloat16),
                codes.data_ptr(),
                n,
                height,
                width,
                channels,
                grad_in.data_ptr(),
                out.data_ptr() if out is not None else None,
                _by_reference(struct),
                x.data_ptr() if x is not None else None,
                ctypes.byref(grad_slope),
            )
        )
        return grad_in, _slope_gradient(slope, grad_slope), None


def _channels_last_empty(n: int, channels: int, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """An NCHW tensor laid out as [n][h][w][c], the kernels' layout (not a view: autograd allows in-place
    activations on it)."""
    return torch.empty((n, channels, height, width), dtype=dtype, memory_format=torch.channels_last)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _tap_major(weight: torch.Tensor) -> torch.Tensor:
    """(C, 1, 3, 3) → (9, C) fp32: for each tap, every channel's weight, contiguous."""
    return weight.detach().float().reshape(weight.shape[0], 9).t().contiguous()


def _image_args(x: torch.Tensor) -> tuple:
    return x.data_ptr(), int(x.dtype == torch.bfloat16), x.stride(0), x.stride(2), x.shape[2], x.shape[3]


def _autocast_dtype() -> torch.dtype | None:
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None


def _check(code: int) -> None:
    if code == -2:
        raise MemoryError("actprof's kernel could not allocate its partial sums")
    if code:
        raise RuntimeError("actprof's kernel refused its arguments (ops.applies should have said so)")

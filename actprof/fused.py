"""The seed CNN's first block — a 1-input-channel 3×3 convolution and the 2×2 max pool after it — as one C
kernel for CPU training.

In the unfused step this block was the largest cost on the 2-core CPU (benchmarks/RESULTS.md): oneDNN's
convolution with one input channel reaches a tenth of the machine's roof, and the pool moves its 4.6 M
bf16 outputs and their int64 indices three times (forward, a zeroed gradient, the scatter back). Fused,
the convolution's outputs never leave registers: each window's four are computed, compared and only the
maximum is written, with a one-byte code of which position won. The backward needs no input gradient (the
images), so it is one pass computing the weight and bias gradients from the codes.

Activations the kernels know run in the same pass: after the pool for the monotonic ones (ReLU, LeakyReLU,
the ELU family, sigmoid, tanh: the trainer's pool-first order), before it for those that are not (GELU,
GELU-tanh, SiLU, Mish, Hardswish, PReLU), each of the window's four values activated and then compared;
then dropout. Others run in torch around the kernels.

The kernel (``conv_pool.c``) is compiled once per machine with the system's C compiler into the user
cache and loaded with ctypes; its OpenMP threads are torch's own (conv_pool.c says how). Without a
compiler, or with ``ACTPROF_FUSED=0``, the model keeps torch's own layers: the same function.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from actprof.dropout import FastDropout, bits_per_draw, random_words
from actprof.environment import cpu_features
from actprof.storage import user_cache

SOURCE = Path(__file__).with_name("conv_pool.c")


def vector_lanes() -> int:
    """Channels per vector in the kernels: one AVX-512 register where the CPU has them, else 8 (one AVX2
    register). With 16 lanes on AVX2, GCC splits every vector in two, a channel block's nine weights and
    four sums no longer fit the sixteen registers, and the kernels ran 5.6-8.6x slower (Zen 3, RESULTS.md)."""
    return 16 if "avx512f" in cpu_features().split() else 8


LANES = vector_lanes()
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", f"-DLANES={LANES}")
# Threads: OpenMP where the compiler has it (sharing torch's runtime), else the kernel runs on one thread.
THREADING = (("-fopenmp",), ())
MAX_CHANNELS = 512
MAX_WIDTH = 4096
NO_ACTIVATION, LEAKY, ELU_FAMILY = 0, 1, 2  # conv_pool.c's activation kinds after the pool
GELU, GELU_TANH, SILU, MISH, HARDSWISH, PRELU = 3, 4, 5, 6, 7, 8  # and before it
SIGMOID, TANH = 9, 10  # after it
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def enabled() -> bool:
    return os.environ.get("ACTPROF_FUSED", "1") != "0"


def applies(x: torch.Tensor, conv: torch.nn.Conv2d, before: nn.Module | None = None) -> bool:
    """Whether ``fused_conv_pool`` can stand in for ``MaxPool2d(2)(before(conv(x)))`` here (no ``before``:
    the pool right after the convolution)."""
    return (
        enabled()
        and (before is None or before_args(before) is not None)
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


def pool_applies(x: torch.Tensor, pool: torch.nn.Module) -> bool:
    """Whether ``max_pool2`` can stand in for ``pool(x)``: a 2×2, stride-2 max pool on a channels-last CPU
    tensor."""
    return (
        enabled()
        and isinstance(pool, torch.nn.MaxPool2d)
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
    conv: torch.nn.Conv2d,
    activation: nn.Module | None = None,
    dropout: nn.Module | None = None,
    before: nn.Module | None = None,
) -> torch.Tensor:
    """``dropout(activation(MaxPool2d(2)(before(conv(x)))))`` in channels-last, at bf16 under bf16 autocast
    (as torch would compute it, up to the order of the convolution's fp32 sums), else at the input's
    precision. ``before`` must be one the kernel knows (``applies``); the activation and the dropout run
    inside the kernel where it knows them (``epilogue``), else after it."""
    round_bf16 = _autocast_dtype() == torch.bfloat16 or x.dtype == torch.bfloat16
    if round_bf16:
        x = x.to(torch.bfloat16)  # as autocast casts a convolution's input (a no-op for staged bf16 images)
    post, rest = epilogue(activation, dropout, before)
    return rest(_ConvPool.apply(x, conv.weight, conv.bias, _slope(before), round_bf16, post))


def max_pool2(
    x: torch.Tensor,
    activation: nn.Module | None = None,
    dropout: nn.Module | None = None,
    before: nn.Module | None = None,
) -> torch.Tensor:
    """``dropout(activation(MaxPool2d(2)(before(x))))`` for a channels-last ``x``. The pool has the same
    values and winners as torch's (it only compares), keeps one-byte codes instead of int64 indices, and its
    backward writes the input gradient in one pass instead of zeroing it and scattering into it. An
    activation ``before`` the pool that the kernel does not know runs first, in torch; the activation and
    the dropout after it as in ``fused_conv_pool``."""
    if before is not None and before_args(before) is None:
        x, before = before(x), None
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
    activation: nn.Module | None, dropout: nn.Module | None, before: nn.Module | None = None
) -> tuple[Post | None, Callable]:
    """What the kernels compute besides the pool, and what is left to run after them in torch, in order.
    ``before`` must be one the kernels know."""
    first = before_args(before) if before is not None else NO_ACTIVATION
    act = activation_args(activation) if activation is not None else (NO_ACTIVATION, 0.0, 0.0, 0.0)
    if act is None:  # an activation the kernels do not know: it, and the dropout after it, run in torch
        return (Post(before=first) if first else None), lambda out: _apply(dropout, activation(out))
    drop = dropout_args(dropout)
    post = Post(*act, *(drop or (0, 0, 0.0)), first)
    if post == Post():
        post = None
    return post, (lambda out: out) if drop is not None else (lambda out: _apply(dropout, out))


def before_args(module: nn.Module) -> int | None:
    """The kernels' kind for an activation they compute before the pool (those that are not monotonic),
    or None for one they do not."""
    if isinstance(module, nn.GELU):
        return {"none": GELU, "tanh": GELU_TANH}.get(module.approximate)
    if isinstance(module, nn.PReLU):
        return PRELU if module.num_parameters == 1 else None
    kinds = {nn.SiLU: SILU, nn.Mish: MISH, nn.Hardswish: HARDSWISH}
    return kinds.get(type(module))


def _slope(before: nn.Module | None) -> torch.Tensor | None:
    """PReLU's learned slope, an input of the kernel's autograd function so that it gets its gradient."""
    return before.weight if isinstance(before, nn.PReLU) else None


def _apply(module: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return module(x) if module is not None else x


def activation_args(module: nn.Module) -> tuple[int, float, float, float] | None:
    """The kernels' description of an activation (kind, a, b, c), or None for one they do not compute.
    Only non-decreasing ones whose derivative can come from the output."""
    if isinstance(module, nn.Sigmoid):
        return (SIGMOID, 0.0, 0.0, 0.0)
    if isinstance(module, nn.Tanh):
        return (TANH, 0.0, 0.0, 0.0)
    if isinstance(module, nn.ReLU):
        return (LEAKY, 0.0, 0.0, 0.0)
    if isinstance(module, nn.LeakyReLU) and module.negative_slope >= 0:
        return (LEAKY, float(module.negative_slope), 0.0, 0.0)
    if isinstance(module, nn.ELU) and module.alpha > 0:
        return (ELU_FAMILY, float(module.alpha), 1.0, 1.0)
    if isinstance(module, nn.CELU) and module.alpha > 0:
        return (ELU_FAMILY, float(module.alpha), 1.0, 1.0 / module.alpha)
    if isinstance(module, nn.SELU):
        return (ELU_FAMILY, SELU_ALPHA, SELU_SCALE, 1.0)
    return None


def dropout_args(module: nn.Module | None) -> tuple[int, int, float] | None:
    """actprof's FastDropout in training mode as (bits per decision, values dropped, rate), else None (no
    dropout, or one the kernels do not draw: alpha dropout, a rate that is no multiple of 1/256, torch's
    layers)."""
    if not (isinstance(module, FastDropout) and module.training and not module.alpha and module.p > 0):
        return None
    bits = bits_per_draw(module.p)
    return (bits, int(module.p * (1 << bits)), float(module.p)) if bits else None


class Epilogue(ctypes.Structure):
    """conv_pool.c's ``epilogue``."""

    _fields_ = [
        ("kind", ctypes.c_int32),
        ("a", ctypes.c_float),
        ("b", ctypes.c_float),
        ("c", ctypes.c_float),
        ("words", ctypes.c_void_p),
        ("halves", ctypes.c_int64),
        ("bits", ctypes.c_int32),
        ("dropped", ctypes.c_int32),
        ("scale", ctypes.c_float),
        ("before", ctypes.c_int32),
        ("slope", ctypes.c_float),
    ]


def _draw_words(post: Post | None, units: int) -> torch.Tensor | None:
    """The random words dropout decides from, drawn from torch's generator as FastDropout draws them (and
    decided as it decides: conv_pool.c), so a seed gives the same masks with the kernels as without."""
    return random_words(units, post.rate) if post is not None and post.bits else None


def counter_masks() -> bool:
    """Whether ``bernoulli_keep`` can draw dropout masks here (the kernels are enabled and built)."""
    return enabled() and library() is not None


def bernoulli_keep(units: int, p: float) -> torch.Tensor:
    """``units`` int16 keep decisions (1 kept, 0 dropped), each dropped with probability p (within 2^-33),
    from a counter-based generator (conv_pool.c) seeded by one draw from torch's: a seed gives the same
    masks. For rates whose decisions ``dropout.decisions`` cannot split from a few random bits."""
    lib = library()
    if lib is None:
        raise RuntimeError("the dropout mask kernel is not built here; check counter_masks() first")
    keep = torch.empty(units, dtype=torch.int16)
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    _check(lib.bernoulli_keep(keep.data_ptr(), units, seed, min(round(p * 2**32), 2**32 - 1)))
    return keep


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
    if code:
        raise RuntimeError("actprof's fused kernel refused its arguments (fused.applies should have said so)")


@cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they cannot be built or loaded."""
    lib = next(filter(None, map(_loaded, THREADING)), None)
    if lib is None:
        return None
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    image = [ptr, i32, i64, i64, i32, i32]
    post = ctypes.POINTER(Epilogue)
    lib.conv_pool_forward.argtypes = [*image, ptr, ptr, i32, i32, ptr, i32, ptr, i64, post]
    lib.conv_pool_backward.argtypes = [*image, ptr, ptr, i32, ptr, i32, ptr, i32, ptr, ptr, ptr, i64, ptr, i32, post]
    lib.max_pool_forward.argtypes = [ptr, i32, i64, i32, i32, i32, ptr, ptr, post]
    lib.max_pool_backward.argtypes = [ptr, i32, ptr, i64, i32, i32, i32, ptr, ptr, post, ptr, ptr]
    lib.bernoulli_keep.argtypes = [ptr, i64, ctypes.c_uint64, ctypes.c_uint32]
    kernels = (lib.conv_pool_forward, lib.conv_pool_backward, lib.max_pool_forward, lib.max_pool_backward)
    for kernel in (*kernels, lib.bernoulli_keep):
        kernel.restype = i32
    return lib


def _loaded(threading: tuple[str, ...]) -> ctypes.CDLL | None:
    """The library built with these threading flags, or None where it cannot be built or loaded (no
    compiler, no OpenMP, a damaged cache file, a foreign libc)."""
    try:
        return ctypes.CDLL(str(_build((*FLAGS, *threading))))
    except (OSError, subprocess.CalledProcessError):
        return None


def _build(flags: tuple[str, ...]) -> Path:
    """Compile the kernel into the cache, named by everything that decides the binary (the source, the
    flags, the compiler, this CPU's features, for -march=native); atomic, so concurrent workers agree."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler")
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(flags).encode(), compiler.encode(), cpu_features().encode()):
        key.update(part)
    target = _cache_dir() / f"conv_pool-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built), "-lm"], check=True, capture_output=True)
        os.replace(built, target)
    return target


def _cache_dir() -> Path:
    return user_cache("kernels", override="ACTPROF_KERNEL_DIR")

"""What an activation is: one row per activation, and everything else is read off the table.

A row says how PyTorch builds it and which parameter ``--alpha`` sets, the init its family needs, whether it
is monotonic non-decreasing (what the pool-first rewrite and the trainer's pool-first order need), how one
site of it is written in ONNX (the op, its attributes, the first opset that has it, and the ops the exporter
writes), how actprof's training kernels compute it (``Kernel``), and which decomposed patterns ``swap``
recognises as it in other networks. ``ONNX_ONLY`` adds the activation ops other networks use that actprof
does not train. Derived from the two tables: ``site_ops``, ``activation_ops``, ``monotonic_ops``,
``candidates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actprof.errors import UsageError
from actprof.settings.parse import parse_choices
from actprof.settings.training import INITS

if TYPE_CHECKING:
    from torch import nn

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

Params = tuple[float, float, float]  # what the kernel's epilogue takes as (a, b, c)


@dataclass(frozen=True)
class Onnx:
    """One activation site in ONNX: ``op`` (None: no single op in any opset) with ``attrs``, and the
    activation's parameter written to ``param_attr``; ``since``: the first opset with ``op``. ``exported``:
    the ops the exporters write for one site, where that is not ``op`` alone."""

    op: str | None
    since: int = 1
    attrs: dict[str, object] = field(default_factory=dict)
    param_attr: str | None = None
    exported: tuple[str, ...] = ()

    @property
    def ops(self) -> tuple[str, ...]:
        return self.exported or ((self.op,) if self.op else ())


@dataclass(frozen=True)
class Kernel:
    """How actprof's training kernels (``training/kernels``) compute the activation: the epilogue kind (a name
    the C source is compiled with), whether it runs on each of the pool's four inputs (an activation that is
    not monotonic) or once after the pool, and its (a, b, c) from the parameter (None: a parameter the
    kernel's formula does not cover, such as a negative slope)."""

    kind: str
    before_pool: bool
    params: Callable[[float | None], Params | None] = lambda _p: (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Activation:
    name: str
    summary: str
    torch: str  # the torch.nn class
    param: str | None  # the torch keyword --alpha sets, if the activation has a parameter
    default_param: float | None
    init: str
    monotonic: bool  # non-decreasing everywhere: f(max(a, b)) == max(f(a), f(b))
    onnx: Onnx
    kernel: Kernel | None = None  # None: the kernels do not compute it; it runs in torch around them
    torch_kwargs: dict[str, object] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()  # decomposed forms swap recognises as this activation (graphs.sites)
    alpha_dropout: bool = False  # SELU's self-normalisation needs AlphaDropout

    def module(self, param: float | None = None) -> nn.Module:
        from torch import nn

        value = self.default_param if param is None else param
        kwargs = {**self.torch_kwargs, **({self.param: value} if self.param else {})}
        cls = getattr(nn, self.torch, None) or _own_modules()[self.torch]
        return cls(**kwargs)

    @property
    def onnx_ops(self) -> tuple[str, ...]:
        """The ops one activation site exports to (opset >= 20)."""
        return self.onnx.ops

    def kernel_params(self, param: float | None = None) -> Params | None:
        """The kernel's (a, b, c) at ``param`` (None: the kernels do not compute this activation there)."""
        if self.kernel is None:
            return None
        return self.kernel.params(self.default_param if param is None else param)


def _slope(slope: float | None) -> Params | None:
    return (float(slope), 0.0, 0.0) if slope is not None and slope >= 0 else None


def _elu(alpha: float | None) -> Params | None:
    return (float(alpha), 1.0, 1.0) if alpha is not None and alpha > 0 else None


def _celu(alpha: float | None) -> Params | None:
    return (float(alpha), 1.0, 1.0 / alpha) if alpha is not None and alpha > 0 else None


def _before(kind: str) -> Kernel:
    return Kernel(kind, before_pool=True)


# fmt: off
_TABLE: tuple[Activation, ...] = (
    Activation("relu", "max(0, x)", "ReLU", None, None, "he", True, Onnx("Relu"), Kernel("LEAKY", False)),
    Activation(
        "leaky_relu", "x if x > 0 else a·x", "LeakyReLU", "negative_slope", 0.01, "he", True,
        Onnx("LeakyRelu", param_attr="alpha"), Kernel("LEAKY", False, _slope),
    ),
    # PReLU learns its slope; a negative slope would break monotonicity, so nothing may assume it.
    Activation(
        "prelu", "x if x > 0 else a·x, a learned", "PReLU", "init", 0.25, "he", False,
        Onnx("PRelu"), _before("PRELU"), torch_kwargs={"num_parameters": 1},
    ),
    Activation(
        "elu", "x if x > 0 else a·(eˣ − 1)", "ELU", "alpha", 1.0, "he", True,
        Onnx("Elu", param_attr="alpha"), Kernel("ELU_FAMILY", False, _elu),
    ),
    Activation(
        "selu", "λ·elu(x, α), self-normalising", "SELU", None, None, "lecun", True,
        Onnx("Selu"), Kernel("ELU_FAMILY", False, lambda _p: (SELU_ALPHA, SELU_SCALE, 1.0)), alpha_dropout=True,
    ),
    Activation(
        "celu", "max(0,x) + min(0, a·(e^(x/a) − 1))", "CELU", "alpha", 1.0, "he", True,
        Onnx("Celu", since=12, param_attr="alpha"), Kernel("ELU_FAMILY", False, _celu),
    ),
    Activation(
        "gelu", "x·Φ(x), exact (erf)", "GELU", None, None, "he", False,
        Onnx("Gelu", since=20), _before("GELU"), patterns=("GELU (Erf form)",),
    ),
    Activation(
        "gelu_tanh", "x·Φ(x), tanh approximation", "GELU", None, None, "he", False,
        Onnx("Gelu", since=20, attrs={"approximate": "tanh"}), _before("GELU_TANH"),
        torch_kwargs={"approximate": "tanh"}, patterns=("GELU (tanh form)",),
    ),
    Activation(
        "sigmoid", "1 / (1 + e⁻ˣ)", "Sigmoid", None, None, "glorot", True, Onnx("Sigmoid"), Kernel("SIGMOID", False),
    ),
    Activation("tanh", "tanh(x)", "Tanh", None, None, "glorot", True, Onnx("Tanh"), Kernel("TANH", False)),
    # ONNX's Softplus has no β; the kernels have no softplus: it runs in torch around them.
    Activation("softplus", "log(1 + e^(βx)) / β", "Softplus", "beta", 1.0, "he", True, Onnx("Softplus")),
    Activation(
        "silu", "x·σ(x) (swish)", "SiLU", None, None, "he", False,
        Onnx(None, exported=("Sigmoid", "Mul")), _before("SILU"), patterns=("SiLU (x·Sigmoid(x))",),
    ),
    Activation(
        "mish", "x·tanh(softplus(x))", "Mish", None, None, "he", False,
        Onnx("Mish", since=18), _before("MISH"), patterns=("Mish (x·Tanh(Softplus(x)))",),
    ),
    Activation(
        "hardswish", "x·relu6(x + 3) / 6", "Hardswish", None, None, "he", False,
        Onnx("HardSwish", since=14), _before("HARDSWISH"),
        patterns=("HardSwish (x·Clip(x+3, 0, 6)/6)", "HardSwish (x·HardSigmoid(x))"),
    ),
)

# Cheaper stand-ins that deployments put in an activation's place: ``swap --to`` candidates, never trained here.
_APPROXIMATIONS: tuple[Activation, ...] = (
    Activation(
        "quick_gelu", "x·σ(1.702x), approximates GELU", "QuickGELU", None, None, "he", False,
        Onnx(None, exported=("Mul", "Sigmoid", "Mul")), patterns=("QuickGELU (x·Sigmoid(1.702x))",),
    ),
    Activation(
        "relu6", "min(max(0, x), 6), ReLU clipped", "ReLU6", None, None, "he", True, Onnx(None, exported=("Clip",)),
    ),
    Activation(
        "hard_sigmoid", "relu6(x + 3) / 6, approximates σ", "Hardsigmoid", None, None, "glorot", True,
        Onnx("HardSigmoid", since=6, attrs={"alpha": 1 / 6, "beta": 0.5}),
        patterns=("HardSigmoid (Clip(x+3, 0, 6)/6)",),
    ),
)
# fmt: on

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _TABLE}

# Not a user-facing activation: the ablation and swap put it in an activation's place to price the op.
IDENTITY = Activation("identity", "x", "Identity", None, None, "default", True, Onnx("Identity"))


@dataclass(frozen=True)
class OnnxOnly:
    """An activation op other networks use that actprof does not train. ``site``: ``swap`` lists it as an
    activation site; otherwise it only counts as activation work in a profile (GELU's Erf, ORT's fused GELU
    kernels). Clip is a site only as ReLU6 (graphs.sites)."""

    op: str
    monotonic: bool = False
    site: bool = False


ONNX_ONLY: tuple[OnnxOnly, ...] = (
    OnnxOnly("HardSigmoid", monotonic=True, site=True),
    OnnxOnly("Softsign", monotonic=True),
    OnnxOnly("ThresholdedRelu"),
    OnnxOnly("Erf"),
    OnnxOnly("Clip"),
    OnnxOnly("QuickGelu"),
    OnnxOnly("FastGelu"),
    OnnxOnly("BiasGelu"),
)


# The parts an activation op plays where ``swap`` finds it in a network (graphs.sites): a hidden nonlinearity,
# a gate that scales another tensor (squeeze-excitation), or the head that squashes what the network outputs.
SITE_ROLES = ("activation", "gate", "head")


def site_ops() -> frozenset[str]:
    """Single ops ``swap`` lists as activation sites."""
    return frozenset(a.onnx.op for a in _TABLE if a.onnx.op) | {o.op for o in ONNX_ONLY if o.site}


def activation_ops() -> frozenset[str]:
    """Op types that count as activation work when profiling an arbitrary network (its residual Adds,
    BatchNormalizations and Muls do not; a decomposed activation's Mul is left out too: undercounting
    beats counting every Mul of a network)."""
    return site_ops() | {o.op for o in ONNX_ONLY}


def monotonic_ops() -> frozenset[str]:
    """Single ops that are non-decreasing whenever their ``alpha`` attribute (a slope or a scale) is ≥ 0."""
    ours = {a.onnx.op for a in _TABLE if a.monotonic and a.onnx.op and not a.onnx.exported}
    return frozenset(ours | {o.op for o in ONNX_ONLY if o.monotonic})


def candidates() -> dict[str, Activation]:
    """What ``swap --to`` can put at a site: every activation one ONNX input determines (not PReLU, whose
    slope is a learned weight), the approximations deployments use, and identity."""
    return {a.name: a for a in (*_TABLE, *_APPROXIMATIONS, IDENTITY) if a.name != "prelu"}


def patterns() -> dict[str, Activation]:
    """Each decomposed pattern ``swap`` recognises → the activation (or approximation) it computes."""
    return {kind: a for a in (*_TABLE, *_APPROXIMATIONS) for kind in a.patterns}


def _own_modules() -> dict[str, type]:
    """The candidates torch has no ``nn`` module for."""
    import torch
    from torch import nn

    class QuickGELU(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(1.702 * x)

    return {"QuickGELU": QuickGELU}


def names() -> list[str]:
    return list(ACTIVATIONS)


def get(name: str) -> Activation:
    try:
        return ACTIVATIONS[name.strip().lower()]
    except KeyError:
        raise UsageError(f"unknown activation {name!r}; choose from: {', '.join(names())}, or 'all'") from None


def parse_list(spec: str) -> list[Activation]:
    """``"elu"``, ``"relu,elu"`` or ``"all"`` → activations, in the order given, without repeats."""
    if "all" in (s.strip().lower() for s in spec.split(",")):  # "relu,all" too: every activation
        return list(_TABLE)
    return [ACTIVATIONS[n] for n in parse_choices(spec, names(), "--act", allow_all=True, what="activation")]


def check_init(init: str) -> str:
    if init not in INITS:
        raise UsageError(f"unknown --init {init!r}; choose from: {', '.join(INITS)}")
    return init

"""The activation registry: one row per activation, and the table is the documentation.

Each row says how to build the PyTorch module, which parameter ``--alpha`` sets, the init policy the
family needs, whether the function is monotonic non-decreasing (what the pool-first rewrite needs), and
which ONNX op(s) one activation site should export to at opset >= 20.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from actprof.errors import UsageError
from actprof.settings import parse_choices

if TYPE_CHECKING:
    from torch import nn

Init = Literal["he", "lecun", "glorot", "default"]
INITS: tuple[str, ...] = ("he", "lecun", "glorot", "default")


@dataclass(frozen=True)
class Activation:
    name: str
    summary: str
    build: Callable[[float | None], nn.Module]
    param: str | None  # the name --alpha sets, if the activation has a parameter
    default_param: float | None
    init: Init
    monotonic: bool  # non-decreasing everywhere: f(max(a, b)) == max(f(a), f(b))
    onnx_ops: tuple[str, ...]  # ops one activation site exports to (opset >= 20)
    alpha_dropout: bool = False  # SELU's self-normalisation needs AlphaDropout

    def module(self, param: float | None = None) -> nn.Module:
        return self.build(self.default_param if param is None else param)


def _relu(_: float | None) -> nn.Module:
    from torch import nn

    return nn.ReLU()


def _leaky_relu(slope: float | None) -> nn.Module:
    from torch import nn

    return nn.LeakyReLU(negative_slope=slope)


def _prelu(init: float | None) -> nn.Module:
    from torch import nn

    return nn.PReLU(num_parameters=1, init=init)


def _elu(alpha: float | None) -> nn.Module:
    from torch import nn

    return nn.ELU(alpha=alpha)


def _selu(_: float | None) -> nn.Module:
    from torch import nn

    return nn.SELU()


def _celu(alpha: float | None) -> nn.Module:
    from torch import nn

    return nn.CELU(alpha=alpha)


def _gelu(_: float | None) -> nn.Module:
    from torch import nn

    return nn.GELU()


def _gelu_tanh(_: float | None) -> nn.Module:
    from torch import nn

    return nn.GELU(approximate="tanh")


def _sigmoid(_: float | None) -> nn.Module:
    from torch import nn

    return nn.Sigmoid()


def _tanh(_: float | None) -> nn.Module:
    from torch import nn

    return nn.Tanh()


def _softplus(beta: float | None) -> nn.Module:
    from torch import nn

    return nn.Softplus(beta=beta)


def _silu(_: float | None) -> nn.Module:
    from torch import nn

    return nn.SiLU()


def _mish(_: float | None) -> nn.Module:
    from torch import nn

    return nn.Mish()


def _hardswish(_: float | None) -> nn.Module:
    from torch import nn

    return nn.Hardswish()


def _identity(_: float | None) -> nn.Module:
    from torch import nn

    return nn.Identity()


_TABLE: tuple[Activation, ...] = (
    Activation("relu", "max(0, x)", _relu, None, None, "he", True, ("Relu",)),
    Activation("leaky_relu", "x if x > 0 else a·x", _leaky_relu, "negative_slope", 0.01, "he", True, ("LeakyRelu",)),
    # PReLU learns its slope; a negative slope would break monotonicity, so the rewrite must not assume it.
    Activation("prelu", "x if x > 0 else a·x, a learned", _prelu, "init", 0.25, "he", False, ("PRelu",)),
    Activation("elu", "x if x > 0 else a·(eˣ − 1)", _elu, "alpha", 1.0, "he", True, ("Elu",)),
    Activation("selu", "λ·elu(x, α), self-normalising", _selu, None, None, "lecun", True, ("Selu",), True),
    Activation("celu", "max(0,x) + min(0, a·(e^(x/a) − 1))", _celu, "alpha", 1.0, "he", True, ("Celu",)),
    Activation("gelu", "x·Φ(x), exact (erf)", _gelu, None, None, "he", False, ("Gelu",)),
    Activation("gelu_tanh", "x·Φ(x), tanh approximation", _gelu_tanh, None, None, "he", False, ("Gelu",)),
    Activation("sigmoid", "1 / (1 + e⁻ˣ)", _sigmoid, None, None, "glorot", True, ("Sigmoid",)),
    Activation("tanh", "tanh(x)", _tanh, None, None, "glorot", True, ("Tanh",)),
    Activation("softplus", "log(1 + e^(βx)) / β", _softplus, "beta", 1.0, "he", True, ("Softplus",)),
    Activation("silu", "x·σ(x) (swish)", _silu, None, None, "he", False, ("Sigmoid", "Mul")),
    Activation("mish", "x·tanh(softplus(x))", _mish, None, None, "he", False, ("Mish",)),
    Activation("hardswish", "x·relu6(x + 3) / 6", _hardswish, None, None, "he", False, ("HardSwish",)),
)

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _TABLE}

# Not a user-facing activation: the profile ablation swaps an activation for it to price the op itself.
IDENTITY = Activation("identity", "x", _identity, None, None, "default", True, ())


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


def check_init(init: str) -> Init:
    if init not in INITS:
        raise UsageError(f"unknown --init {init!r}; choose from: {', '.join(INITS)}")
    return init  # type: ignore[return-value]

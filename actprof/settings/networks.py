"""The networks ``--model`` names: actprof's two CNNs, plain MLPs of any depth and width, and a user's own
network in a Python file. A spec is parsed (and refused in one line) here; ``training.networks`` builds it.

    seed                the Keras ELU experiment's CNN
    deep                six convolutions, no batch norm
    mlp:8x128           8 hidden layers of 128 units
    mlp:512-256         hidden layers of the widths listed
    my_net.py:build     build(act) in my_net.py: your network (running it runs your code)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from actprof.errors import UsageError
from actprof.settings.parse import require

BUILT_IN = ("seed", "deep")
DESCRIPTIONS = {
    "seed": "seed CNN (2 conv + 2 dense, 3 activation sites)",
    "deep": "deep CNN (6 conv + 2 dense, no batch norm, 7 activation sites)",
}
INPUT_SHAPE = (1, 28, 28)  # what every network takes (MNIST) …
CLASSES = 10  # … and what it gives
MAX_DEPTH = 200
MAX_WIDTH = 65536
MAX_WEIGHTS = 200_000_000  # 0.8 GB of fp32 weights, ~3.2 GB with Adam's state and the gradients
FORMS = "seed, deep, mlp:DEPTHxWIDTH (mlp:8x128), mlp:W1-W2-… (mlp:512-256) or FILE.py:FUNCTION"

_DEPTH_X_WIDTH = re.compile(r"^(\d+)x(\d+)$")
_WIDTHS = re.compile(r"^\d+(-\d+)*$")
_FUNCTION = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class NetworkSpec:
    """One ``--model`` value, parsed: its kind and what that kind needs."""

    kind: str  # seed | deep | mlp | file
    widths: tuple[int, ...] = ()  # mlp: the hidden layers' widths
    path: str = ""  # file: the Python file, as given
    function: str = ""  # file: the function in it that builds the network

    @classmethod
    def parse(cls, spec: str) -> NetworkSpec:
        text = spec.strip()
        if text in BUILT_IN:
            return cls(kind=text)
        if text.startswith("mlp:"):
            return cls(kind="mlp", widths=_mlp_widths(text[4:], spec))
        path, sep, function = text.rpartition(":")
        if sep and path.endswith(".py"):
            require(bool(_FUNCTION.match(function)), f"--model {spec!r}: {function!r} is not a Python function name")
            return cls(kind="file", path=path, function=function)
        raise _unknown(spec)

    @property
    def text(self) -> str:
        """The spec in its canonical form (what records store)."""
        if self.kind == "mlp":
            uniform = len(set(self.widths)) == 1 and len(self.widths) > 1
            return f"mlp:{len(self.widths)}x{self.widths[0]}" if uniform else "mlp:" + "-".join(map(str, self.widths))
        if self.kind == "file":
            return f"{self.path}:{self.function}"
        return self.kind

    @property
    def slug(self) -> str:
        """The spec as a file name part: ``seed``, ``mlp-8x128``, ``file-my_net-build``."""
        if self.kind == "file":
            stem = re.sub(r"[^\w.-]", "_", self.path.rsplit("/", 1)[-1].removesuffix(".py"))
            return f"file-{stem}-{self.function}"
        return self.text.replace(":", "-")


def _mlp_widths(body: str, spec: str) -> tuple[int, ...]:
    found = _DEPTH_X_WIDTH.match(body)
    if found:
        depth, width = int(found[1]), int(found[2])
        require(1 <= depth <= MAX_DEPTH, f"--model {spec!r}: the depth must be from 1 to {MAX_DEPTH}")
        widths = (width,) * depth
    elif _WIDTHS.match(body):
        widths = tuple(int(w) for w in body.split("-"))
        require(len(widths) <= MAX_DEPTH, f"--model {spec!r}: at most {MAX_DEPTH} hidden layers")
    else:
        raise _unknown(spec)
    require(all(1 <= w <= MAX_WIDTH for w in widths), f"--model {spec!r}: widths must be from 1 to {MAX_WIDTH}")
    sizes = (INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2], *widths, CLASSES)
    weights = sum(a * b for a, b in pairwise(sizes))
    require(weights <= MAX_WEIGHTS, f"--model {spec!r}: {weights:,} weights, over the {MAX_WEIGHTS:,} actprof trains")
    return widths


def _unknown(spec: str) -> UsageError:
    return UsageError(f"unknown --model {spec!r}; give {FORMS}")


def check_network(spec: str, *, batch_norm: bool = False, standardize: bool = False) -> NetworkSpec:
    """The spec parsed, refusing knobs that do not apply to it."""
    network = NetworkSpec.parse(spec)
    require(not batch_norm or network.kind == "mlp", f"--batch-norm applies to mlp:… networks, not {spec!r}")
    require(not standardize or network.kind == "mlp", f"--standardize applies to mlp:… networks, not {spec!r}")
    return network


def describe(spec: str, *, batch_norm: bool = False, standardize: bool = False) -> str:
    """The network in words, as every report names it."""
    if spec in DESCRIPTIONS:
        return DESCRIPTIONS[spec]
    try:
        network = NetworkSpec.parse(spec)
    except UsageError:  # a record from elsewhere: show what it says
        return spec
    if network.kind == "mlp":
        depth = len(network.widths)
        hidden = f"{depth}×{network.widths[0]}" if len(set(network.widths)) == 1 else "-".join(map(str, network.widths))
        norm = (", batch norm" if batch_norm else "") + (", standardized pixels" if standardize else "")
        layers = "hidden layer" if depth == 1 else "hidden layers"
        return f"MLP {network.text} ({hidden} {layers}{norm}, {depth} activation sites)"
    return f"your network {network.text}"

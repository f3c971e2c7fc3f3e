"""The networks beyond actprof's two CNNs: plain MLPs, and a user's own network from a Python file.

Both are ordinary PyTorch modules, trained as they are (no fast path applies to them), and both say where their
activation sites are (``ACT_LAYERS``: the names of the modules the activation factory made), which is all the
trainer and the statistics need.

A user's network: ``FILE.py:FUNCTION`` names a function called as ``FUNCTION(act, input_shape=(1, 28, 28),
num_classes=10)`` (the keywords it takes, or all of them if it absorbs ``**kwargs``), where ``act()`` returns a
fresh activation module; it returns an ``nn.Module`` mapping N×1×28×28 images to N×10 logits. Loading the file
runs its code, as ``python FILE.py`` would.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from actprof.activations import Activation
from actprof.errors import UsageError
from actprof.schema.training import NetworkInfo
from actprof.settings.networks import CLASSES, INPUT_SHAPE, NetworkSpec, describe
from actprof.settings.training import ModelConfig
from actprof.training.dropout import dropout_layer

# Standardizing the pixels, as the SELU authors' tutorial does (torchvision's MNIST mean and std).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Standardize(nn.Module):
    """(x − mean) / std with fixed constants: part of the network, so the exported model takes raw pixels."""

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Sequential):
    """Flatten → [Linear → (BatchNorm1d) → act → dropout] per hidden width → Linear(→ 10). ``plain``: torch's
    own dropout layers (as a user writes it) instead of actprof's faster ones with the same distribution."""

    def __init__(self, config: ModelConfig, widths: tuple[int, ...], act: Activation, *, plain: bool = False) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if config.standardize:
            layers["standardize"] = Standardize()
        layers["flatten"] = nn.Flatten()
        fan_in = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
        for i, width in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(fan_in, width)
            if config.batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm1d(width)
            layers[f"act{i}"] = act.module(config.param)
            if config.dropout:
                layers[f"drop{i}"] = _dropout(config, plain=plain)
            fan_in = width
        layers["out"] = nn.Linear(fan_in, CLASSES)
        super().__init__(layers)
        self.config = config  # the whole function: the exporter's graph store keys on it
        self.ACT_LAYERS = tuple(f"act{i}" for i in range(1, len(widths) + 1))


def _dropout(config: ModelConfig, *, plain: bool) -> nn.Module:
    if not plain:
        return dropout_layer(config.dropout, alpha=config.alpha_dropout)
    return nn.AlphaDropout(config.dropout) if config.alpha_dropout else nn.Dropout(config.dropout)


def user_network(spec: NetworkSpec, config: ModelConfig, act: Activation) -> nn.Module:
    """The user's network for ``act``, checked: built by their function, tried on two blank images (the output
    shape), and its activation sites found: the modules ``act()`` made that run in its forward pass."""
    function = _user_function(spec)
    made: list[nn.Module] = []

    def factory() -> nn.Module:
        module = act.module(config.param)
        made.append(module)
        return module

    kwargs = _accepted_keywords(function, spec, {"input_shape": INPUT_SHAPE, "num_classes": CLASSES})
    try:
        network = function(factory, **kwargs)
    except Exception as error:  # their code: one line, where it failed
        raise UsageError(
            f"--model {spec.text}: {spec.function}(act, …) failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(network, nn.Module):
        raise UsageError(f"--model {spec.text}: the function returned {type(network).__name__}, not an nn.Module")
    if not made:
        raise UsageError(f"--model {spec.text}: {_NO_SITE}")
    names = {id(module): name for name, module in network.named_modules()}
    if any(id(m) not in names for m in made):
        raise UsageError(
            f"--model {spec.text}: an activation made by act() is not a submodule of the network (kept in a plain "
            "list?); hold it in an attribute, nn.Sequential or nn.ModuleList"
        )
    calls = _trial_forward(network, spec, made)
    ran = [m for m in made if calls[id(m)]]
    if not ran:
        raise UsageError(f"--model {spec.text}: {_NO_SITE}")
    try:
        network.ACT_LAYERS = tuple(dict.fromkeys(names[id(m)] for m in ran))
        network.ACT_CALLS = sum(calls.values())  # a module applied twice is two sites (and two ONNX nodes)
    except AttributeError:
        raise UsageError(
            f"--model {spec.text}: the network defines ACT_LAYERS or ACT_CALLS itself; rename it"
        ) from None
    return network


_NO_FILE = "no file {path}; give FILE.py:FUNCTION with an existing file"
_NO_SITE = (
    "no module made by the activation factory runs in the network; build every activation with the function's "
    "first argument (act()) so actprof can swap it"
)


def _user_function(spec: NetworkSpec) -> Callable:
    path = Path(spec.path)
    if not path.is_file():
        raise UsageError(f"--model {spec.text}: {_NO_FILE.format(path=spec.path)}")
    identity = f"{path.resolve()}:{source_digest(spec)}"  # an edited file is loaded afresh
    module_name = "actprof_user_network_" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    if module_name not in sys.modules:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module  # before it runs: dataclasses and pickling look themselves up there
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:  # their code: say where it failed, in one line
            del sys.modules[module_name]
            failure = f"{type(error).__name__}: {error}"
            raise UsageError(f"--model {spec.text}: running {spec.path} failed: {failure}") from None
    function = getattr(sys.modules[module_name], spec.function, None)
    if not callable(function):
        raise UsageError(f"--model {spec.text}: {spec.path} has no function {spec.function!r}")
    return function


def check_unchanged(spec: NetworkSpec, recorded: str) -> None:
    """A user's network file is the one these models were made from: an edited file builds another network,
    whose step times or export would be priced as theirs."""
    now = source_digest(spec)
    if recorded and now != recorded:
        raise UsageError(
            f"--model {spec.text}: {spec.path} changed since these models were trained (sha256 {recorded[:12]}… "
            f"then, {now[:12]}… now): it is another network; restore the file or train again"
        )


def source_digest(spec: NetworkSpec) -> str:
    """The sha256 of a user's network file ("" for actprof's own networks): a changed file is a new network."""
    if spec.kind != "file":
        return ""
    try:
        return hashlib.sha256(Path(spec.path).read_bytes()).hexdigest()
    except OSError:
        raise UsageError(
            f"--model {spec.text}: no file {spec.path}; give FILE.py:FUNCTION with an existing file"
        ) from None


def _accepted_keywords(function: Callable, spec: NetworkSpec, offered: dict) -> dict:
    """The keywords of ``offered`` the function takes (all of them with ``**kwargs``); refuse a function
    that cannot be called with the factory as its one positional argument."""
    signature = inspect.signature(function)
    params = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        kwargs = dict(offered)
    else:
        kwargs = {k: v for k, v in offered.items() if k in signature.parameters}
    try:
        signature.bind(None, **kwargs)
    except TypeError as error:
        raise UsageError(
            f"--model {spec.text}: {spec.function}{signature} cannot be called as {spec.function}(act, "
            f"input_shape=…, num_classes=…) ({error}); take the activation factory as the one positional argument"
        ) from None
    return kwargs


def _trial_forward(network: nn.Module, spec: NetworkSpec, made: list[nn.Module]) -> Counter:
    """Run the network on two blank images in eval mode: refuse a wrong input or output shape; count how often
    each module ``act()`` made is called."""
    calls: Counter = Counter()
    hooks = [m.register_forward_hook(lambda module, _i, _o: calls.update([id(module)])) for m in made]
    images = torch.zeros(2, *INPUT_SHAPE)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(images)
    except Exception as error:  # their module refused the input
        raise UsageError(
            f"--model {spec.text}: the network does not take N×1×28×28 images ({type(error).__name__}: {error})"
        ) from None
    finally:
        network.train(was_training)
        for hook in hooks:
            hook.remove()
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, CLASSES):
        raise UsageError(f"--model {spec.text}: the network maps 2×1×28×28 images to {shape}, not (2, {CLASSES})")
    return calls


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every convolution and linear layer, by name: the layers whose gradients the curve records."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and name}


def activation_sites(model: nn.Module) -> int:
    """How many activations the network applies (a module a user's network calls twice counts twice)."""
    return getattr(model, "ACT_CALLS", None) or len(model.ACT_LAYERS)


def network_info(model: nn.Module, config: ModelConfig) -> NetworkInfo:
    return NetworkInfo(
        spec=config.architecture,
        words=describe(config.architecture, batch_norm=config.batch_norm, standardize=config.standardize),
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        activation_sites=activation_sites(model),
    )

"""The networks actprof trains, built only from a config that is saved with the result.

``seed``: the CNN of the Keras ELU experiment, three activation sites:
Conv2d(1→32, 3×3) → act → MaxPool 2 → Dropout → Conv2d(32→64, 3×3) → act → MaxPool 2 → Dropout
→ Flatten → Linear(1600→256) → act → Linear(256→10)

``deep``: a plain CNN with six convolutions and no batch norm — the setting of the ELU paper's mean-shift
argument (nothing re-centres the activations between layers), seven activation sites:
3 × [Conv2d(3×3, pad 1) → act → Conv2d(3×3, pad 1) → act → MaxPool 2 → Dropout] with 16, 32, 64 channels
(28 → 14 → 7 → 3 pixels) → Flatten → Linear(576→256) → act → Linear(256→10)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from actprof import activations
from actprof.activations import Activation
from actprof.errors import UsageError
from actprof.settings.networks import NetworkSpec
from actprof.settings.training import ALPHA_DROPOUT, DROPOUT, ModelConfig
from actprof.training.config import Recipe
from actprof.training.dropout import dropout_layer
from actprof.training.kernels import ops
from actprof.training.kernels.ops import Act
from actprof.training.networks import MLP, check_unchanged, source_digest, user_network

ACT_LAYERS = ("act1", "act2", "act3")  # the seed CNN's activation sites


def config_for(act: Activation, recipe: Recipe | None = None) -> ModelConfig:
    """The config an activation's family needs, with the recipe's overrides applied.

    The recipe's ``dropout`` sets the rate of plain dropout, its ``alpha_dropout`` the rate for families that
    need alpha dropout (SELU); each applies only to its own families.
    """
    recipe = recipe or Recipe()
    if act.alpha_dropout:
        rate = ALPHA_DROPOUT if recipe.alpha_dropout is None else recipe.alpha_dropout
    else:
        rate = DROPOUT if recipe.dropout is None else recipe.dropout
    return ModelConfig(
        activation=act.name,
        param=act.default_param if recipe.param is None else recipe.param,
        init=act.init if recipe.init is None else recipe.init,
        dropout=rate,
        alpha_dropout=act.alpha_dropout,
        architecture=recipe.architecture,
        batch_norm=recipe.batch_norm,
        standardize=recipe.standardize,
        source_sha256=source_digest(NetworkSpec.parse(recipe.architecture)),
    )


def check_recipe(acts: Sequence[Activation], recipe: Recipe) -> None:
    """Refuse, before any data loads, a recipe that does not apply to the activations chosen."""
    if recipe.param is not None and any(a.param is None for a in acts):
        bad = ", ".join(a.name for a in acts if a.param is None)
        raise UsageError(f"--alpha does not apply to {bad}; choose activations that take a parameter")
    if recipe.alpha_dropout is not None and not any(a.alpha_dropout for a in acts):
        raise UsageError("--alpha-dropout applies to selu only; use --dropout for the others")
    if NetworkSpec.parse(recipe.architecture).kind == "file" and (recipe.dropout or recipe.alpha_dropout):
        raise UsageError("--dropout and --alpha-dropout do not apply to --model FILE.py:FUNCTION: it has its own")
    if recipe.dropout is not None and acts and all(a.alpha_dropout for a in acts):
        raise UsageError("--dropout does not apply to selu (it uses alpha dropout); use --alpha-dropout")
    for act in acts:  # ModelConfig checks each one
        config_for(act, recipe)


def check_batch(model: nn.Module, batch_size: int) -> None:
    """Refuse a batch of one image for a network with batch norm (its training statistics need two)."""
    if batch_size == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise UsageError("--batch-size 1 cannot train a network with batch norm; use 2 or more")


def build(config: ModelConfig) -> nn.Module:
    """The network a config names, initialized with the config's init (``default``: PyTorch's, or for a
    user's network, whatever its function did)."""
    spec = NetworkSpec.parse(config.architecture)
    if spec.kind == "deep":
        return DeepCNN(config)
    if spec.kind == "seed":
        return SeedCNN(config)
    act = activations.get(config.activation)
    if spec.kind == "file":
        check_unchanged(spec, config.source_sha256)
    network = MLP(config, spec.widths, act) if spec.kind == "mlp" else user_network(spec, config, act)
    initialize(network, config.init)
    return network


class FastPaths:
    """A network that can train in an exact faster form: ``lean`` (only what reaches the loss) and
    ``pool_first`` (a monotonic activation after its max-pool). Networks without this train as they are."""

    pool_first: bool = False
    lean: bool = False


def training_form(model: nn.Module, act: Activation) -> bool:
    """Switch on the network's exact fast paths, if it has any (and say whether it had)."""
    if not isinstance(model, FastPaths):
        return False
    model.pool_first = act.monotonic
    model.lean = True
    return True


def canonical_form(model: nn.Module) -> None:
    """Back to the plain function (statistics and export read it)."""
    if isinstance(model, FastPaths):
        model.pool_first = model.lean = False


def _linear_nhwc(x: torch.Tensor, fc: nn.Linear) -> torch.Tensor:
    """``fc(flatten(x))`` for a channels-last ``x`` without converting it: flatten in its own memory order
    (a view) and permute fc's columns to match. The same sums in another order; it saves a layout copy
    of the activations, and every elementwise backward before it running on mixed layouts (ELU's was 1.7
    ms a step instead of 0.2)."""
    n, c, h, w = x.shape
    weight = fc.weight.view(fc.out_features, c, h, w).permute(0, 2, 3, 1).reshape(fc.out_features, -1)
    return nn.functional.linear(x.permute(0, 2, 3, 1).reshape(n, -1), weight, fc.bias)


def _pool_block(
    pool: nn.Module,
    x: torch.Tensor,
    *,
    lean: bool,
    before: Act | None = None,
    act: Act | None = None,
    dropout: nn.Module | None = None,
) -> torch.Tensor:
    """``dropout(act(pool(before(x))))``, each optional. In the lean form on a CPU, actprof's kernel: the
    pool's values and winners are torch's, and it computes the activations and dropout it knows."""
    if lean and ops.pool_applies(x, pool):
        return ops.max_pool2(x, activation=act, dropout=dropout, before=before)
    x = before.module(x) if before is not None else x
    x = pool(x)
    x = act.module(x) if act is not None else x
    return dropout(x) if dropout is not None else x


def _rows_used(size: int) -> int:
    """How many leading input rows (or columns) of the seed CNN reach its output: conv 3 → pool 2 (floor)
    → conv 3 → pool 2 (floor) uses 2 + 2·(2 + 2·p) of them, p the final pooled size."""
    pooled = ((size - 2) // 2 - 2) // 2
    return 2 + 2 * (2 + 2 * pooled)


class SeedCNN(FastPaths, nn.Module):
    ACT_LAYERS = ACT_LAYERS

    def __init__(self, config: ModelConfig, act: Activation | None = None) -> None:
        super().__init__()
        self.config = config
        act = act or activations.get(config.activation)
        self.activation = act
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.act1 = act.module(config.param)
        self.pool1 = nn.MaxPool2d(2)
        self.drop1 = dropout_layer(config.dropout, alpha=config.alpha_dropout)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.act2 = act.module(config.param)
        self.pool2 = nn.MaxPool2d(2)
        self.drop2 = dropout_layer(config.dropout, alpha=config.alpha_dropout)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 5 * 5, 256)
        self.act3 = act.module(config.param)
        self.fc2 = nn.Linear(256, 10)
        initialize(self, config.init)

    # pool_first, set by the trainer for a monotonic activation: MaxPool(f(x)) == f(MaxPool(x)), so running f
    # after the pool computes the same function on 4x fewer elements. Export always uses the canonical order.
    # lean, set by the trainer: compute only what reaches the output, in the layout the CPU prefers. The second
    # pool floors 11 rows to 5, so conv2's last output row and column, and everything only they depend on
    # (the input's last two rows and columns), never reach the loss: leaving them out is the same function
    # at 83% of conv2's work. And fc1 reads the channels-last activations as they lie (_linear_nhwc).

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lean:
            x = x[:, :, : _rows_used(x.shape[2]), : _rows_used(x.shape[3])]
            x = x.contiguous(memory_format=torch.channels_last)
        x = self._first_block(x)
        if self.pool_first:
            x = _pool_block(self.pool2, self.conv2(x), act=self._site(self.act2), dropout=self.drop2, lean=self.lean)
        else:
            x = _pool_block(self.pool2, self.conv2(x), before=self._site(self.act2), dropout=self.drop2, lean=self.lean)
        x = _linear_nhwc(x, self.fc1) if self.lean else self.fc1(self.flatten(x))
        return self.fc2(self.act3(x))

    def _first_block(self, x: torch.Tensor) -> torch.Tensor:
        """drop1(pool1(act1(conv1(x)))), or drop1(act1(pool1(conv1(x)))) with pool_first; in the lean form on a
        CPU, one kernel that never stores conv1's output where it knows the activation (before the pool:
        those that are not monotonic)."""
        if self.pool_first:
            if self.lean and ops.applies(x, self.conv1):
                return ops.fused_conv_pool(x, self.conv1, activation=self._site(self.act1), dropout=self.drop1)
            return self.drop1(self.act1(self.pool1(self.conv1(x))))
        if self.lean and ops.applies(x, self.conv1, before=self._site(self.act1)):
            return ops.fused_conv_pool(x, self.conv1, dropout=self.drop1, before=self._site(self.act1))
        return _pool_block(self.pool1, self.conv1(x), before=self._site(self.act1), dropout=self.drop1, lean=self.lean)

    def _site(self, module: nn.Module) -> Act:
        """One activation site as the kernels see it (the table's kernel column, this site's module)."""
        return Act.of(self.activation, self.config.param, module)


class DeepCNN(FastPaths, nn.Module):
    """Six 3×3 convolutions in three blocks of two, no batch norm: see the module docstring."""

    ACT_LAYERS = tuple(f"act{i}" for i in range(1, 8))
    WIDTHS = (16, 32, 64)

    def __init__(self, config: ModelConfig, act: Activation | None = None) -> None:
        super().__init__()
        self.config = config
        act = act or activations.get(config.activation)
        self.activation = act
        channels = 1
        for block, width in enumerate(self.WIDTHS):
            first, second = 2 * block + 1, 2 * block + 2
            setattr(self, f"conv{first}", nn.Conv2d(channels, width, kernel_size=3, padding=1))
            setattr(self, f"act{first}", act.module(config.param))
            setattr(self, f"conv{second}", nn.Conv2d(width, width, kernel_size=3, padding=1))
            setattr(self, f"act{second}", act.module(config.param))
            setattr(self, f"pool{block + 1}", nn.MaxPool2d(2))
            setattr(self, f"drop{block + 1}", dropout_layer(config.dropout, alpha=config.alpha_dropout))
            channels = width
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(channels * 3 * 3, 256)
        self.act7 = act.module(config.param)
        self.fc2 = nn.Linear(256, 10)
        initialize(self, config.init)

    # pool_first as SeedCNN: the second activation of each block runs after its pool. lean as SeedCNN: where a
    # block's size is odd (7 in the third), its pool drops the last row and column, so the second convolution
    # computes only the rows the pool keeps (padding the top and left only).

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in range(len(self.WIDTHS)):
            first, second = 2 * block + 1, 2 * block + 2
            x = getattr(self, f"act{first}")(getattr(self, f"conv{first}")(x))
            conv = getattr(self, f"conv{second}")
            if self.lean and x.shape[2] % 2 and x.shape[3] % 2:
                x = nn.functional.conv2d(nn.functional.pad(x, (1, 0, 1, 0)), conv.weight, conv.bias)
            else:
                x = conv(x)
            act = Act.of(self.activation, self.config.param, getattr(self, f"act{second}"))
            pool, drop = getattr(self, f"pool{block + 1}"), getattr(self, f"drop{block + 1}")
            if self.pool_first:
                x = _pool_block(pool, x, act=act, dropout=drop, lean=self.lean)
            else:
                x = _pool_block(pool, x, before=act, dropout=drop, lean=self.lean)
        x = _linear_nhwc(x, self.fc1) if self.lean else self.fc1(self.flatten(x))
        return self.fc2(self.act7(x))


def initialize(model: nn.Module, init: str) -> None:
    """He (fan-in, normal) for the ReLU family, LeCun normal for SELU, Glorot uniform for sigmoid/tanh."""
    if init == "default":
        return  # PyTorch's own (Kaiming-uniform with a=√5): kept so users can compare
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if init == "he":
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif init == "lecun":
            fan_in = nn.init._calculate_correct_fan(module.weight, "fan_in")
            nn.init.normal_(module.weight, std=1.0 / math.sqrt(fan_in))
        elif init == "glorot":
            nn.init.xavier_uniform_(module.weight)
        else:
            raise ValueError(f"unknown init {init!r}")
        if module.bias is not None:
            nn.init.zeros_(module.bias)

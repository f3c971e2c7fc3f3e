"""Dropout whose random draws cost a fraction of ``nn.Dropout``'s on a CPU, with the same distribution.

``nn.Dropout`` draws one random float per element with ``bernoulli_``, which was 30% of a training step
on the 2-core CPU. Where the rate is a multiple of 1/256 (the seed's 0.25), each keep decision takes only
as many random bits as the rate needs: 2 for p = 0.25, so one 32-bit draw from torch's generator makes 16
decisions (``torch.manual_seed`` reproduces every mask). Every step after the draw is int16 arithmetic,
because bool tensors and mixed-dtype casts run unvectorized here. Identity in eval mode, so the exported
graph does not change. Other rates (SELU's alpha dropout at 0.05) take each decision from 32 random bits
of a counter-based generator in actprof's C kernels (``kernels.masks.bernoulli_keep``: SplitMix64, both threads,
0.2 ms for a 1.15 M-unit layer against 7.4 ms for ``bernoulli_``, whose generator is serial; SELU's step
32.5 → 23.2 ms). As torch ops the same generator measured slower than ``bernoulli_``, as did 31-bit words
from ``random_``. Without the kernels (no compiler, ``ACTPROF_KERNELS=0``) those rates use torch's layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from actprof.training.kernels.masks import bernoulli_keep, bits_per_draw, counter_masks, random_words


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """0/1 keep decisions (int16) shaped like ``x`` and in its memory order, each Bernoulli(1 − p): from a
    few random bits each where p is a multiple of 1/256, else from the kernels' counter-based generator
    (on a CPU tensor, where ``masks.counter_masks()``)."""
    if bits_per_draw(p):
        keep = decisions(random_words(x.numel(), p, x.device).view(torch.int16), p)[: x.numel()]
    else:
        keep = bernoulli_keep(x.numel(), p)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = x.shape
        return keep.view(n, h, w, c).permute(0, 3, 1, 2)
    return keep.view(x.shape)


def decisions(words: torch.Tensor, p: float) -> torch.Tensor:
    """Split int16 ``words`` into lanes of ``bits_per_draw(p)`` bits and keep (1) each lane whose value is
    at least p·2**bits, else drop (0): Bernoulli(1 − p) exactly when the words are uniform."""
    bits = bits_per_draw(p)
    dropped = int(p * (1 << bits))
    # One row per shift: a row-wise constant shift vectorizes (the transposed layout was 7x slower).
    shifts = torch.arange(0, 16, bits, dtype=torch.int16, device=words.device).unsqueeze(1)
    lanes = (words.unsqueeze(0) >> shifts).bitwise_and_((1 << bits) - 1)  # each in [0, 2**bits)
    # lane >= dropped  <=>  lane + 2**bits − dropped has bit `bits` set
    return lanes.add_((1 << bits) - dropped).bitwise_right_shift_(bits).view(-1)


def scaled(keep: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """``keep`` × ``scale`` as ``dtype``; for bf16 by writing the bit pattern of bf16(scale) directly
    (an int16 multiply: a cast from an integer type is one of the slow paths)."""
    if dtype == torch.bfloat16:
        pattern = torch.tensor(scale, dtype=torch.bfloat16).view(torch.int16).item()
        return keep.mul_(pattern).view(torch.bfloat16)
    return keep.to(dtype).mul_(scale)


class FastDropout(nn.Module):
    """``nn.Dropout``, or ``nn.AlphaDropout`` with ``alpha=True``: the same distribution and scaling,
    with the mask from ``keep_mask``."""

    # SELU's fixed point: dropped units are set to its negative saturation value −λα.
    SELU_SATURATION = 1.7580993408473766

    def __init__(self, p: float, *, alpha: bool = False) -> None:
        super().__init__()
        if not (0 <= p < 1 and (bits_per_draw(p) or counter_masks())):
            raise ValueError(f"FastDropout needs p in [0, 1) as a multiple of 1/256 here, got {p}")
        self.p = p
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if not bits_per_draw(self.p) and x.device.type != "cpu":  # the counter-based masks are CPU code
            drop = nn.functional.alpha_dropout if self.alpha else nn.functional.dropout
            return drop(x, self.p, training=True)
        keep = keep_mask(x, self.p)
        if not self.alpha:
            # A multiply by a {0, 1/(1-p)} mask: about 3x cheaper than torch.where, forward and backward.
            return x * scaled(keep, 1.0 / (1.0 - self.p), x.dtype)
        # Alpha dropout keeps mean and variance: a·(x·m + (−λα)(1 − m)) + b, as torch.alpha_dropout.
        s = self.SELU_SATURATION
        a = 1.0 / math.sqrt((s * s * self.p + 1) * (1 - self.p))
        # Kept: a·x + a·s·p; dropped: a·s·(p − 1). That is a·keep·(x + s) + a·s·(p − 1), in three passes.
        return (x + s).mul_(scaled(keep, a, x.dtype)).add_(a * s * (self.p - 1))

    def kernel_args(self) -> tuple[int, int, float] | None:
        """What the kernels need to draw this dropout's masks themselves (``kernels.ops``): bits per decision,
        values dropped of 2^bits, the rate; None when they do not (eval mode, alpha dropout, no dropout, a
        rate that is no multiple of 1/256)."""
        bits = bits_per_draw(self.p)
        if not (self.training and not self.alpha and self.p > 0 and bits):
            return None
        return bits, int(self.p * (1 << bits)), float(self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}"


def dropout_layer(p: float, *, alpha: bool) -> nn.Module:
    """The dropout a network uses at rate ``p``: FastDropout where the rate allows, else torch's."""
    if bits_per_draw(p) or counter_masks():
        return FastDropout(p, alpha=alpha)
    return nn.AlphaDropout(p) if alpha else nn.Dropout(p)

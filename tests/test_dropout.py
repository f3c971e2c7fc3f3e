"""FastDropout draws the same distribution as torch's dropout, in the layout of its input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from actprof.training.dropout import FastDropout, decisions, dropout_layer, keep_mask, scaled
from actprof.training.kernels import build, masks, ops
from actprof.training.kernels.masks import bits_per_draw

NEEDS_KERNELS = pytest.mark.skipif(
    build.library() is None, reason="no C compiler: the kernels' mask generator cannot be built"
)
OFF_THE_BIT_GRID = pytest.param(0.05, marks=NEEDS_KERNELS, id="0.05")  # SELU's rate, no multiple of 1/256


@given(st.integers(0, 255))
def test_bits_per_draw_is_the_fewest_that_draw_the_rate_exactly(numerator):
    p = numerator / 256
    bits = bits_per_draw(p)
    assert (p * (1 << bits)).is_integer()
    assert all(not (p * (1 << fewer)).is_integer() for fewer in (1, 2, 4, 8) if fewer < bits)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 255), st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=40))
def test_each_lane_is_kept_exactly_when_its_value_reaches_the_rate(numerator, values):
    p = numerator / 256
    bits = bits_per_draw(p)
    words = torch.tensor(values, dtype=torch.int16)
    got = decisions(words, p).view(16 // bits, len(values))  # row k: lane k of every word
    for k in range(16 // bits):
        lanes = [(v >> (k * bits)) & ((1 << bits) - 1) for v in values]
        assert got[k].tolist() == [int(lane >= p * (1 << bits)) for lane in lanes]


def test_every_lane_value_occurs_equally_often_so_the_rate_is_exact():
    # All 65,536 words: each lane value occurs equally often, so the kept fraction is exactly 1 − p.
    words = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    for p in (1 / 256, 0.25, 0.5, 5 / 16, 0.75, 255 / 256):
        assert decisions(words, p).double().mean().item() == 1 - p


@pytest.mark.parametrize("p", [0.25, 0.5, 3 / 256, 5 / 16])
def test_masks_from_the_generator_keep_one_minus_p(p):
    torch.manual_seed(0)
    n = 2_000_000
    kept = keep_mask(torch.empty(n), p).double().mean().item()
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


def test_masks_follow_torch_manual_seed():
    x = torch.empty(10_000)
    torch.manual_seed(7)
    first = keep_mask(x, 0.25)
    torch.manual_seed(7)
    assert torch.equal(first, keep_mask(x, 0.25))
    assert not torch.equal(first, keep_mask(x, 0.25))  # the next draw differs


def test_dropout_keeps_three_quarters_rescales_and_keeps_channels_last():
    torch.manual_seed(0)
    drop = FastDropout(0.25).train()
    x = torch.ones(200, 32, 13, 13).contiguous(memory_format=torch.channels_last)
    y = drop(x)
    assert abs((y != 0).float().mean().item() - 0.75) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.75))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(drop.eval()(x), x)


def test_every_channel_and_position_is_dropped_alike():
    torch.manual_seed(1)
    y = FastDropout(0.25).train()(torch.ones(4000, 3, 2, 2).contiguous(memory_format=torch.channels_last))
    assert torch.all(((y != 0).float().mean(dim=(0, 2, 3)) - 0.75).abs() < 0.02)
    assert torch.all(((y != 0).float().mean(dim=(0, 1)) - 0.75).abs() < 0.02)


def test_bf16_masks_carry_the_scale_torch_would_round_to():
    keep = torch.tensor([0, 1, 1, 0], dtype=torch.int16)
    got = scaled(keep.clone(), 1 / 0.75, torch.bfloat16)
    assert torch.equal(got, torch.tensor([0, 1, 1, 0], dtype=torch.bfloat16) * (1 / 0.75))
    assert torch.equal(scaled(keep.clone(), 1 / 0.75, torch.float32), torch.tensor([0, 1, 1, 0]) / 0.75)


@pytest.mark.parametrize("p", [0.25, OFF_THE_BIT_GRID])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_alpha_dropout_keeps_selu_moments_like_torchs(dtype, p):
    torch.manual_seed(0)
    x = torch.randn(400_000, dtype=torch.float64)
    y = FastDropout(p, alpha=True).train()(x.to(dtype)).double()
    reference = nn.functional.alpha_dropout(x, p, training=True)
    assert abs(y.mean().item() - reference.mean().item()) < 0.01
    assert abs(y.std().item() - reference.std().item()) < 0.01
    assert abs(y.mean().item()) < 0.01 and abs(y.std().item() - 1) < 0.01


@pytest.mark.parametrize("p", [0.25, OFF_THE_BIT_GRID])
def test_alpha_dropout_sends_dropped_units_to_the_selu_saturation_point(p):
    torch.manual_seed(0)
    s = FastDropout.SELU_SATURATION
    a = 1 / math.sqrt((s * s * p + 1) * (1 - p))
    x = torch.randn(10_000, dtype=torch.float64)
    y = FastDropout(p, alpha=True).train()(x)
    kept = torch.isclose(y, a * x + a * s * p)
    assert torch.allclose(y[~kept], torch.tensor(a * s * (p - 1), dtype=torch.float64))
    assert abs(kept.double().mean().item() - (1 - p)) < 0.02


@NEEDS_KERNELS
def test_other_rates_draw_from_the_kernels_generator_or_use_torchs_layers(monkeypatch):
    assert isinstance(dropout_layer(0.3, alpha=False), FastDropout)
    assert isinstance(dropout_layer(0.05, alpha=True), FastDropout)
    # The fused kernels draw only rates on the grid; this one runs after them, in FastDropout.forward.
    assert ops.dropout_args(FastDropout(0.3).train()) is None
    assert ops.dropout_args(FastDropout(0.25).train()) == (2, 1, 0.25)
    monkeypatch.setenv("ACTPROF_KERNELS", "0")  # no kernels: torch's layers, and FastDropout refuses the rate
    with pytest.raises(ValueError):
        FastDropout(0.3)
    assert isinstance(dropout_layer(0.3, alpha=False), nn.Dropout)
    assert isinstance(dropout_layer(0.05, alpha=True), nn.AlphaDropout)
    assert isinstance(dropout_layer(0.25, alpha=True), FastDropout)


@NEEDS_KERNELS
@pytest.mark.parametrize("p", [0.05, 0.3])
def test_counter_based_masks_drop_at_the_rate_independently(p):
    torch.manual_seed(0)
    units = 4_000_001  # odd: the last unit has a number of its own
    keep = masks.bernoulli_keep(units, p).double()
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    sigma = math.sqrt(p * (1 - p) / units)
    assert abs((1 - keep.mean().item()) - p) < 5 * sigma
    # Neighbours (the two halves of one number, and across numbers) and channels' strides are uncorrelated.
    centred = keep - keep.mean()
    for lag in (1, 2, 32, 64):
        corr = (centred[:-lag] * centred[lag:]).mean() / centred.var()
        assert abs(corr.item()) < 5 / math.sqrt(units), lag


@NEEDS_KERNELS
def test_counter_based_masks_follow_torchs_seed():
    torch.manual_seed(3)
    first, second = masks.bernoulli_keep(10_000, 0.05), masks.bernoulli_keep(10_000, 0.05)
    torch.manual_seed(3)
    assert torch.equal(masks.bernoulli_keep(10_000, 0.05), first)
    assert not torch.equal(first, second)

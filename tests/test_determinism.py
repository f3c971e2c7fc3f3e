"""The kernels' sums are combined in a fixed order: the same bits at 1, 2 and 4 threads, and a training
repeated at the same thread count gives bit-identical weights at any count."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from actprof import activations
from actprof.training.kernels import build, ops
from actprof.training.kernels.ops import Act
from tests.helpers import FAST

pytestmark = pytest.mark.skipif(build.library() is None, reason="actprof's kernels are not built here")

THREADS = (1, 2, 4)
KINDS = ["relu", "elu", "selu", "sigmoid", "gelu", "mish", "prelu"]  # after the pool, and before it


@pytest.fixture
def threads():
    """Runs the test body at a given thread count, and restores torch's afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _first_block(name: str, count: int, set_threads) -> list[torch.Tensor]:
    """Forward and backward of the fused first block (conv + pool + activation) at ``count`` threads."""
    set_threads(count)
    torch.manual_seed(0)
    act = activations.get(name)
    conv = torch.nn.Conv2d(1, 32, 3)
    module = act.module()
    site = Act.of(act, None, module)
    x = torch.rand(250, 1, 28, 28)  # a training batch: many images per thread, whatever the count
    if site.computed_before:
        out = ops.fused_conv_pool(x, conv, before=site)
    else:
        out = ops.fused_conv_pool(x, conv, activation=site)
    out.backward(torch.randn_like(out))
    grads = [conv.weight.grad, conv.bias.grad] + [p.grad for p in module.parameters()]
    return [out.detach(), *grads]


@pytest.mark.parametrize("name", KINDS)
def test_the_first_block_gives_the_same_bits_at_any_thread_count(name, threads):
    results = {count: _first_block(name, count, threads) for count in THREADS}
    for count in THREADS[1:]:
        for a, b in zip(results[1], results[count], strict=True):
            assert torch.equal(a, b), f"{name}: {count} threads differ from 1"


@pytest.mark.parametrize("name", ["relu", "gelu", "prelu"])
def test_the_pool_gives_the_same_bits_at_any_thread_count(name, threads):
    act = activations.get(name)
    results = {}
    for count in THREADS:
        threads(count)
        torch.manual_seed(1)
        module = act.module()
        site = Act.of(act, None, module)
        x = torch.randn(64, 32, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
        out = ops.max_pool2(x, before=site) if site.computed_before else ops.max_pool2(x, activation=site)
        out.backward(torch.randn_like(out))
        results[count] = [out.detach(), x.grad, *(p.grad for p in module.parameters())]
    for count in THREADS[1:]:
        for a, b in zip(results[1], results[count], strict=True):
            assert torch.equal(a, b), f"{name}: {count} threads differ from 1"


@pytest.mark.parametrize("name", ["elu", "prelu"])
def test_a_training_repeated_at_four_threads_is_bit_identical(name, sample):
    """More threads than this machine has cores (the case that differed): the same weights, twice."""
    from actprof.training.loop import train
    from actprof.training.model import config_for

    config = replace(FAST, threads=4)
    before = torch.get_num_threads()
    try:
        weights = [train(config_for(activations.get(name)), config, sample)[0].state_dict() for _ in range(2)]
    finally:
        torch.set_num_threads(before)
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key

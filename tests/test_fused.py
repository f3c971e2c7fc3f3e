"""actprof's C kernels (actprof/training/kernels) compute what torch's layers compute.

The max pool only compares, so it must agree with torch bit for bit: values, winners (first maximum, a
NaN wins), and the gradient. The fused convolution + pool sums in another order than oneDNN, so it
agrees within fp32 rounding, and under bf16 autocast within one bf16 step.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from actprof import activations
from actprof.training.dropout import FastDropout
from actprof.training.kernels import build, ops

pytestmark = pytest.mark.skipif(build.library() is None, reason="no C compiler: the kernels cannot be built")

DTYPES = (torch.float32, torch.bfloat16)


def site(case: str, module: nn.Module | None = None) -> ops.Act:
    """``"elu"`` or ``"elu 0.5"``: that activation site as the kernels see it (the table's row at that
    parameter, None: its default), with a fresh module (PReLU's slope collects its gradient) unless given."""
    name, *param = case.split()
    value = float(param[0]) if param else None
    row = activations.get(name)
    return ops.Act.of(row, value, module if module is not None else row.module(value))


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def conv_and_pool(channels: int, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(1, channels, kernel_size=3)
    nn.init.normal_(conv.bias, std=0.1)
    return conv


def images(n: int, height: int, width: int, *, crop: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Images as the trainer passes them: channels-last, possibly a cropped (strided) view."""
    x = channels_last(torch.rand(n, 1, height + crop, width + crop).to(dtype))
    return x[:, :, :height, :width]


def grads_of(module_fn, conv: nn.Conv2d, x: torch.Tensor, upstream: torch.Tensor):
    conv.zero_grad()
    out = module_fn(x)
    out.backward(upstream)
    return out.detach(), conv.weight.grad.clone(), conv.bias.grad.clone()


def assert_sums_close(got, expected, upstream: torch.Tensor) -> None:
    """Weight and bias gradients are sums over every pooled position, added in another order than torch's
    (one that depends on the vector width): they must agree to a few ulp of the sum of the magnitudes
    added (images in [0, 1), activation derivatives below 2: at most twice the upstream gradient's)."""
    budget = 2**-21 * float(upstream.abs().sum())
    for got_one, expected_one in zip(got, expected, strict=True):
        torch.testing.assert_close(got_one, expected_one, rtol=1e-5, atol=budget)


def torch_block(conv):
    return lambda x: nn.functional.max_pool2d(conv(x), 2)


def fused_block(conv):
    return lambda x: ops.fused_conv_pool(x, conv)


# --- the max pool: bit for bit --------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    channels=st.sampled_from([16, 32, 64]),
    height=st.integers(2, 13),
    width=st.integers(2, 13),
    dtype=st.sampled_from(DTYPES),
    ties=st.booleans(),
)
def test_max_pool_matches_torch_bit_for_bit(n, channels, height, width, dtype, ties):
    x = torch.randn(n, channels, height, width)
    if ties:  # few distinct values: most windows hold a tie, which only the first position may win
        x = x.round()
    x = channels_last(x.to(dtype))
    expected_in, got_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = nn.functional.max_pool2d(expected_in, 2)
    got = ops.max_pool2(got_in)
    upstream = torch.randn_like(expected)
    expected.backward(upstream)
    got.backward(upstream)
    assert torch.equal(got, expected)
    assert torch.equal(got_in.grad, expected_in.grad)  # the same winners, zeros in the rows a floor drops
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert got_in.grad.is_contiguous(memory_format=torch.channels_last)


def test_max_pool_propagates_nan_like_torch():
    x = channels_last(torch.randn(2, 16, 4, 4))
    x[0, 3, 1, 0] = float("nan")
    expected, got = nn.functional.max_pool2d(x, 2), ops.max_pool2(x)
    assert torch.equal(expected.isnan(), got.isnan())
    assert torch.equal(expected.nan_to_num(), got.nan_to_num())


# --- the fused convolution and pool ----------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 5),
    channels=st.sampled_from([16, 32, 48]),
    height=st.integers(4, 15),
    width=st.integers(4, 15),
    crop=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_conv_pool_matches_torch_in_fp32(n, channels, height, width, crop, seed):
    conv = conv_and_pool(channels, seed)
    x = images(n, height, width, crop=crop)
    upstream = channels_last(torch.randn(n, channels, (height - 2) // 2, (width - 2) // 2))
    expected, expected_w, expected_b = grads_of(torch_block(conv), conv, x, upstream)
    got, got_w, got_b = grads_of(fused_block(conv), conv, x, upstream)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert_sums_close((got_w, got_b), (expected_w, expected_b), upstream)
    assert got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("staged_as", DTYPES)
def test_conv_pool_under_bf16_autocast_is_torchs_within_one_bf16_step(staged_as):
    conv = conv_and_pool(32)
    x = images(250, 26, 26, crop=2, dtype=staged_as)
    upstream = channels_last(torch.randn(250, 32, 12, 12)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, expected_w, _ = grads_of(torch_block(conv), conv, x, upstream)
        got, got_w, got_b = grads_of(fused_block(conv), conv, x, upstream)
    assert got.dtype == expected.dtype == torch.bfloat16
    # The same fp32 sums in another order: where one rounds to the neighbouring bf16 value, one step.
    step = expected.float().abs() * 2**-7
    assert ((got.float() - expected.float()).abs() <= step).all()
    assert (got != expected).float().mean() < 1e-3
    # The gradients are the exact ones for the bf16-rounded inputs and weights (an fp64 reference with the
    # same winners). oneDNN's bf16 weight gradient is not: it was off by 4% of the largest here.
    exact = nn.Conv2d(1, 32, 3).double()
    with torch.no_grad():
        exact.weight.copy_(conv.weight.to(torch.bfloat16))
        exact.bias.copy_(conv.bias.to(torch.bfloat16))
    _, exact_w, exact_b = grads_of(torch_block(exact), exact, x.to(torch.bfloat16).double(), upstream.double())
    assert (got_w.double() - exact_w).abs().max() < 1e-5 * exact_w.abs().max()
    assert (got_b.double() - exact_b).abs().max() < 1e-5 * exact_b.abs().max()
    assert (expected_w.double() - exact_w).abs().max() < 0.1 * exact_w.abs().max()  # oneDNN's, for scale


def test_conv_pool_in_inference_mode_keeps_no_codes():
    conv = conv_and_pool(32)
    x = images(8, 26, 26)
    with torch.inference_mode():
        got = ops.fused_conv_pool(x, conv)
        expected = torch_block(conv)(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda conv, x: (nn.Conv2d(1, 32, 3, padding=1), x), "padding"),
        (lambda conv, x: (nn.Conv2d(1, 20, 3), x), "channels not a multiple of the vector"),
        (lambda conv, x: (nn.Conv2d(1, 32, 5), x), "a 5x5 kernel"),
        (lambda conv, x: (nn.Conv2d(1, 32, 3, bias=False), x), "no bias"),
        (lambda conv, x: (nn.Conv2d(3, 32, 3), torch.rand(2, 3, 26, 26)), "three input channels"),
        (lambda conv, x: (conv, x.double()), "fp64"),
        (lambda conv, x: (conv, x.clone().requires_grad_()), "an input that needs a gradient"),
    ],
)
def test_conv_pool_declines_what_it_does_not_compute(change, why):
    conv, x = conv_and_pool(32), images(2, 26, 26)
    assert ops.applies(x, conv)
    changed_conv, changed_x = change(conv, x)
    assert not ops.applies(changed_x, changed_conv), why


@pytest.mark.parametrize(
    ("pool", "x", "why"),
    [
        (nn.MaxPool2d(3), channels_last(torch.rand(2, 16, 9, 9)), "a 3x3 window"),
        (nn.MaxPool2d(2, ceil_mode=True), channels_last(torch.rand(2, 16, 9, 9)), "ceil mode"),
        (nn.MaxPool2d(2, padding=1), channels_last(torch.rand(2, 16, 9, 9)), "padding"),
        (nn.AvgPool2d(2), channels_last(torch.rand(2, 16, 8, 8)), "an average pool"),
        (nn.MaxPool2d(2), torch.rand(2, 16, 8, 8), "NCHW memory"),
        (nn.MaxPool2d(2), channels_last(torch.rand(2, 20, 8, 8)), "channels not a multiple of the vector"),
    ],
)
def test_max_pool_declines_what_it_does_not_compute(pool, x, why):
    assert ops.pool_applies(channels_last(torch.rand(2, 16, 8, 8)), nn.MaxPool2d(2))
    assert not ops.pool_applies(x, pool), why


@pytest.mark.parametrize("variable", ["ACTPROF_KERNELS", "ACTPROF_FUSED"])  # the new name, and the older one
def test_actprof_kernels_0_turns_the_kernels_off(variable, monkeypatch):
    monkeypatch.delenv("ACTPROF_KERNELS", raising=False)
    monkeypatch.setenv(variable, "0")
    assert not ops.applies(images(2, 26, 26), conv_and_pool(32))
    assert not ops.pool_applies(channels_last(torch.rand(2, 16, 8, 8)), nn.MaxPool2d(2))


# --- building the library ------------------------------------------------------------------------


def test_the_library_is_built_once_per_source_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTPROF_KERNEL_DIR", str(tmp_path))
    first = build._build(build.FLAGS)
    assert first.parent == tmp_path and first.exists()
    assert build._build(build.FLAGS) == first  # cached: not rebuilt
    assert build._build((*build.FLAGS, "-DACTPROF_OTHER=1")) != first  # other flags, another binary
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".so")] == []  # no scratch left


def test_the_vector_width_follows_the_cpu(monkeypatch):
    # 16 lanes on a CPU without AVX-512 made GCC split every vector and spill: 5.6-8.6x slower kernels on Zen 3
    monkeypatch.setattr(build, "cpu_features", lambda: "fpu sse2 avx avx2 fma avx512f avx512bw")
    assert build.vector_lanes() == 16
    monkeypatch.setattr(build, "cpu_features", lambda: "fpu sse2 avx avx2 fma f16c")
    assert build.vector_lanes() == 8
    assert f"-DLANES={build.LANES}" in build.FLAGS


def test_without_a_compiler_the_trainer_keeps_torchs_layers(tmp_path):
    # In a fresh process: the library is loaded once per process.
    script = (
        "import torch; from actprof import activations; from actprof.training import model;"
        "from actprof.training.kernels import build, ops;"
        "assert build.library() is None;"
        "m = model.SeedCNN(model.config_for(activations.get('relu'))).to(memory_format=torch.channels_last);"
        "m.lean = m.pool_first = True;"
        "x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last);"
        "assert not ops.applies(x, m.conv1);"
        "print(tuple(m.train()(x).shape))"
    )
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "ACTPROF_KERNEL_DIR": str(tmp_path / "k")}
    env.pop("PATH", None)  # nor a cc on the path
    env["PATH"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4, 10)"


# --- the activation after the pool, inside the kernels -------------------------------------------

KERNEL_ACTIVATIONS = [
    "relu",
    "leaky_relu 0.01",
    "leaky_relu 0.3",
    "elu",
    "elu 0.5",
    "celu 2.0",
    "selu",
    "sigmoid",
    "tanh",
]


@pytest.mark.parametrize("case", KERNEL_ACTIVATIONS)
def test_the_kernels_know_these_activations(case):
    assert site(case).computed_after


def test_relu_in_the_kernel_maps_minus_infinity_to_zero():
    x = channels_last(torch.full((1, 16, 2, 2), float("-inf")))
    assert torch.equal(ops.max_pool2(x, activation=site("relu")), torch.zeros(1, 16, 1, 1))


def test_gradients_arriving_in_nchw_memory_are_read_as_such():
    x = channels_last(torch.randn(2, 32, 6, 6))
    expected_in, got_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    upstream = torch.randn(2, 32, 3, 3)  # contiguous NCHW, not the kernel's layout
    nn.functional.elu(nn.functional.max_pool2d(expected_in, 2)).backward(upstream)
    ops.max_pool2(got_in, activation=site("elu")).backward(upstream)
    torch.testing.assert_close(got_in.grad, expected_in.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["gelu", "mish", "leaky_relu -0.1", "elu -1.0", "softplus"])
def test_other_activations_run_after_the_kernel_in_torch(case):
    act = site(case)
    assert not act.computed_after
    x = channels_last(torch.randn(2, 16, 6, 6))
    torch.testing.assert_close(ops.max_pool2(x, activation=act), act.module(nn.functional.max_pool2d(x, 2)))


def test_elu_in_the_kernel_is_torchs_within_a_few_ulp_over_its_whole_range():
    # Every regime of the kernel's expm1: 0 and -0, tiny values, both sides of each reduction step
    # (w = n·ln 2 + r switches n at -ln 2 / 2, -3 ln 2 / 2, ...), large negative values, the underflow of exp.
    edges = torch.tensor([0.0, -0.0, -1e-30, -1e-8, -1e-3, -0.3465, -0.3466, -0.35, -1.0, -10.0, -86.9, -87.5, -200.0])
    grid = -torch.logspace(-8, 2.5, 16 * 400 - len(edges))
    values = torch.cat([edges, grid, -edges, -grid])  # and as many positive ones
    x = channels_last(values.reshape(1, 16, -1, 1).repeat_interleave(2, 2).repeat_interleave(2, 3))
    for case in ("elu", "elu 0.5", "celu 2.0", "selu"):
        act = site(case)
        expected = act.module(nn.functional.max_pool2d(x.double(), 2))
        got = ops.max_pool2(x, activation=act).double()
        assert ((got - expected).abs() <= 4 * 2**-24 * expected.abs() + 1e-37).all(), case


@pytest.mark.parametrize("case", KERNEL_ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_and_activation_match_torch(case, dtype):
    act = site(case)
    x = channels_last(torch.randn(8, 32, 9, 10).to(dtype))
    expected_in, got_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = act.module(nn.functional.max_pool2d(expected_in, 2))
    got = ops.max_pool2(got_in, activation=act)
    upstream = torch.randn_like(expected)
    expected.backward(upstream)
    got.backward(upstream)
    assert got.dtype == expected.dtype == dtype
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got_in.grad, expected_in.grad, rtol=1e-5, atol=1e-6)
    else:  # fp32 results a few ulp apart can round to neighbouring bf16 values; the derivative comes
        # from the bf16 output rather than the input (as torch's in-place ELU does)
        step = 2**-7 * expected.float().abs()
        assert ((got.float() - expected.float()).abs() <= step).all()
        assert (got != expected).float().mean() < 0.01
        grad_step = 2**-6 * expected_in.grad.float().abs() + 1e-6
        assert ((got_in.grad.float() - expected_in.grad.float()).abs() <= grad_step).all()


@pytest.mark.parametrize("case", KERNEL_ACTIVATIONS)
def test_conv_pool_and_activation_match_torch_in_fp32(case):
    act = site(case)
    conv = conv_and_pool(32)
    x = images(6, 26, 26, crop=2)
    upstream = channels_last(torch.randn(6, 32, 12, 12))
    expected, expected_w, expected_b = grads_of(lambda x: act.module(torch_block(conv)(x)), conv, x, upstream)
    got, got_w, got_b = grads_of(lambda x: ops.fused_conv_pool(x, conv, activation=act), conv, x, upstream)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert_sums_close((got_w, got_b), (expected_w, expected_b), upstream)


# --- dropout after the pool and the activation, inside the kernels --------------------------------


@pytest.mark.parametrize("p", [0.5, 0.25, 0.125, 3 / 256])  # 1, 2, 4 and 8 random bits per decision
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 32, 10, 10), (3, 16, 7, 9)])
def test_dropout_in_the_kernel_is_fastdropouts_mask_for_mask(p, dtype, shape):
    # The same random words, decided the same way: with one seed, the kernel and torch's layers drop the
    # same units, so the trainer's masks do not depend on whether the kernels run.
    x = channels_last((torch.rand(*shape) + 0.1).to(dtype))
    torch.manual_seed(7)
    got = ops.max_pool2(x, activation=site("relu"), dropout=FastDropout(p).train())
    torch.manual_seed(7)
    expected = FastDropout(p).train()(nn.functional.relu(nn.functional.max_pool2d(x, 2)))
    assert torch.equal(got, expected)


def test_dropout_in_the_kernel_drops_at_its_rate():
    x = channels_last(torch.rand(64, 64, 20, 20) + 0.1)
    torch.manual_seed(0)
    got = ops.max_pool2(x, activation=site("relu"), dropout=FastDropout(0.25).train())
    n = got.numel()
    dropped = int((got == 0).sum())
    assert abs(dropped - 0.25 * n) < 5 * (n * 0.25 * 0.75) ** 0.5  # five binomial standard deviations


@pytest.mark.parametrize("case", ["relu", "elu", "selu", None], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_in_the_kernel_backpropagates_through_its_mask(case, dtype):
    act = site(case) if case is not None else None
    x = channels_last(torch.randn(6, 32, 8, 8).to(dtype))
    x_in = x.clone().requires_grad_()
    got = ops.max_pool2(x_in, activation=act, dropout=FastDropout(0.25).train())
    upstream = torch.randn_like(got)
    got.backward(upstream)
    # The same function in torch with the mask the kernel drew (read off its output: nothing else is 0).
    reference_in = x.clone().requires_grad_()
    pooled = nn.functional.max_pool2d(reference_in, 2)
    activated = act.module(pooled) if act is not None else pooled
    scale = torch.tensor(1 / 0.75, dtype=dtype)
    expected = activated * torch.where(got != 0, scale, torch.zeros((), dtype=dtype))
    expected.backward(upstream)
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(x_in.grad, reference_in.grad, rtol=1e-5, atol=1e-6)
    else:
        assert ((got.float() - expected.float()).abs() <= 2**-7 * expected.float().abs()).all()
        grad_step = 2**-6 * reference_in.grad.float().abs() + 1e-6
        assert ((x_in.grad.float() - reference_in.grad.float()).abs() <= grad_step).all()


def test_conv_pool_with_activation_and_dropout_trains_on_torchs_gradients():
    conv = conv_and_pool(32)
    x = images(6, 26, 26, crop=2)
    upstream = channels_last(torch.randn(6, 32, 12, 12))
    got, got_w, got_b = grads_of(
        lambda x: ops.fused_conv_pool(x, conv, activation=site("elu"), dropout=FastDropout(0.25).train()),
        conv,
        x,
        upstream,
    )
    mask = torch.where(got != 0, torch.tensor(1 / 0.75), torch.tensor(0.0))
    expected, expected_w, expected_b = grads_of(
        lambda x: nn.functional.elu(torch_block(conv)(x)) * mask, conv, x, upstream
    )
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert_sums_close((got_w, got_b), (expected_w, expected_b), upstream)


@pytest.mark.parametrize(
    "dropout",
    [
        FastDropout(0.25).eval(),
        FastDropout(0.0).train(),
        FastDropout(12 / 256, alpha=True).train(),
        nn.Dropout(0.25).train(),
    ],
    ids=["eval mode", "p = 0", "alpha dropout", "torch's nn.Dropout"],
)
def test_dropouts_the_kernels_do_not_draw_run_in_torch(dropout):
    assert ops.dropout_args(dropout) is None
    x = channels_last(torch.rand(2, 16, 6, 6))
    torch.manual_seed(3)
    got = ops.max_pool2(x, activation=site("relu"), dropout=dropout)
    torch.manual_seed(3)
    torch.testing.assert_close(got, dropout(nn.functional.relu(nn.functional.max_pool2d(x, 2))))


# --- the activation before the pool (not monotonic), inside the kernels ---------------------------


BEFORE_CASES = ["gelu", "gelu_tanh", "silu", "mish", "hardswish", "prelu 0.25", "prelu -0.5"]


@pytest.mark.parametrize("case", BEFORE_CASES)
def test_the_kernels_know_these_activations_before_the_pool(case):
    assert site(case).computed_before


@pytest.mark.parametrize(
    "act",
    [site("relu"), site("tanh"), site("sigmoid"), site("prelu", nn.PReLU(16))],
    ids=["relu", "tanh", "sigmoid", "prelu, one slope per channel"],
)
def test_other_activations_before_the_pool_run_in_torch(act):
    assert not act.computed_before
    x = channels_last(torch.randn(2, 16, 6, 6))
    torch.testing.assert_close(ops.max_pool2(x, before=act), nn.functional.max_pool2d(act.module(x), 2))


def test_activations_before_the_pool_are_exact_in_fp32_over_their_whole_range():
    # Every regime: 0 and -0, tiny values, hardswish's corners at ±3, where exp saturates (±20 for Mish's
    # n / (n + 2), ±88), and far beyond; against fp64. GELU's erf is torch's own approximation (1.5e-7), so
    # it is as far from fp64 as torch's; the tanh form is closer than torch's, whose 1 + tanh cancels.
    edges = torch.tensor([0.0, -0.0, 1e-30, 1e-8, 1e-3, 0.5, 1.0, 2.9999, 3.0, 3.0001, 9.0, 19.9, 20.0, 20.1, 87.0])
    grid = torch.logspace(-6, 2.3, 8 * 400 - len(edges))
    magnitudes = torch.cat([edges, grid])
    values = torch.cat([magnitudes, -magnitudes])  # 16 channels of 400 values, both signs
    x = channels_last(values.reshape(1, 16, -1, 1).repeat_interleave(2, 2).repeat_interleave(2, 3))
    for case in BEFORE_CASES:
        act, exact_act = site(case), site(case).module.double()
        got_in, exact_in = x.clone().requires_grad_(), x.double().requires_grad_()
        # Every value fills its whole window, so each window's winner is its first position.
        got = ops.max_pool2(got_in, before=act)
        exact = nn.functional.max_pool2d(exact_act(exact_in), 2)
        got.backward(torch.ones_like(got))
        exact.backward(torch.ones_like(exact))
        for label, value, reference in (("value", got, exact), ("gradient", got_in.grad, exact_in.grad)):
            excess = (value.double() - reference).abs() - 1e-6 * reference.abs()
            assert excess.max() <= 3e-7, (case, label, float(excess.max()))
        # Non-trivial, x's own gradient: the test cannot pass on an activation the kernel skipped.
        assert not torch.equal(got_in.grad, torch.ones_like(x) * (got_in.grad != 0))


@pytest.mark.parametrize("case", BEFORE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_then_pool_matches_torch(case, dtype):
    torch.manual_seed(1)
    x = channels_last(torch.randn(8, 32, 9, 10).mul(3).to(dtype))
    expected_act, got_act = site(case).module, site(case)
    expected_in, got_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):  # PReLU's slope, as bf16
        expected = nn.functional.max_pool2d(expected_act(expected_in), 2)
    got = ops.max_pool2(got_in, before=got_act)
    upstream = torch.randn_like(expected)
    expected.backward(upstream)
    got.backward(upstream)
    assert got.dtype == expected.dtype == dtype
    assert got.is_contiguous(memory_format=torch.channels_last)
    if dtype == torch.float32:  # GELU-tanh's differs from torch's by torch's cancellation (above)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=3e-7)
        torch.testing.assert_close(got_in.grad, expected_in.grad, rtol=1e-5, atol=3e-6)
    else:  # fp32 results a few ulp apart can round to neighbouring bf16 values, and then win elsewhere
        step = 2**-7 * expected.float().abs() + 1e-6
        assert ((got.float() - expected.float()).abs() <= step).float().mean() > 0.999
        grad_step = 2**-7 * expected_in.grad.float().abs() + 1e-6
        assert ((got_in.grad.float() - expected_in.grad.float()).abs() <= grad_step).float().mean() > 0.99
    if isinstance(got_act.module, nn.PReLU):  # torch sums its slope gradient in bf16 for a bf16 input
        tolerance = 1e-4 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(got_act.module.weight.grad, expected_act.weight.grad, rtol=tolerance, atol=1e-3)


@pytest.mark.parametrize("case", BEFORE_CASES)
def test_conv_activation_pool_matches_torch_in_fp32(case):
    conv = conv_and_pool(32)
    x = images(6, 26, 26, crop=2)
    upstream = channels_last(torch.randn(6, 32, 12, 12))
    expected_act, got_act = site(case).module, site(case)
    expected, expected_w, expected_b = grads_of(
        lambda x: nn.functional.max_pool2d(expected_act(conv(x)), 2), conv, x, upstream
    )
    got, got_w, got_b = grads_of(lambda x: ops.fused_conv_pool(x, conv, before=got_act), conv, x, upstream)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert_sums_close((got_w, got_b), (expected_w, expected_b), upstream)
    if isinstance(got_act.module, nn.PReLU):  # a sum of ~10^4 terms that mostly cancel: fp32 rounding in both
        torch.testing.assert_close(got_act.module.weight.grad, expected_act.weight.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", ["gelu", "mish", "prelu -0.5"])
def test_conv_activation_pool_under_bf16_autocast_is_torchs_within_bf16_rounding(case):
    act = site(case)
    conv = conv_and_pool(32)
    x = images(250, 26, 26, crop=2, dtype=torch.bfloat16)
    upstream = channels_last(torch.randn(250, 32, 12, 12)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, _, _ = grads_of(lambda x: nn.functional.max_pool2d(act.module(conv(x)), 2), conv, x, upstream)
        got, got_w, got_b = grads_of(lambda x: ops.fused_conv_pool(x, conv, before=act), conv, x, upstream)
    assert got.dtype == expected.dtype == torch.bfloat16
    # Sums in another order round, now and then, to the neighbouring bf16 value, and the activation of a
    # neighbour can win the window instead.
    assert (got != expected).float().mean() < 0.02
    # The gradients are the exact ones, in fp64, for the bf16 values the forward computed and compared.
    exact = nn.Conv2d(1, 32, 3).double()
    with torch.no_grad():
        exact.weight.copy_(conv.weight.to(torch.bfloat16))
        exact.bias.copy_(conv.bias.to(torch.bfloat16))
    z = exact(x.double()).to(torch.bfloat16).double()  # conv1's output as torch rounds it
    with torch.no_grad():
        y = act.module.double()(z).to(torch.bfloat16).double()  # the activation's output, rounded
        _, winners = nn.functional.max_pool2d(y, 2, return_indices=True)
    z = z.detach().requires_grad_()
    act_d = act.module.double()
    # The gradient at the winners, through the activation at z, rounded to bf16 as torch rounds it.
    picked = z.flatten(2).gather(2, winners.flatten(2))
    g_out = upstream.double().flatten(2)
    (dz,) = torch.autograd.grad(act_d(picked), picked, g_out)
    dz = dz.to(torch.bfloat16).double()
    grad_z = torch.zeros_like(z).flatten(2).scatter(2, winners.flatten(2), dz).view_as(z)
    (exact_w, exact_b) = torch.autograd.grad(exact(x.double()), (exact.weight, exact.bias), grad_z)
    assert (got_w.double() - exact_w).abs().max() < 2e-3 * exact_w.abs().max()
    assert (got_b.double() - exact_b).abs().max() < 2e-3 * exact_b.abs().max()


def test_sigmoid_and_tanh_in_the_kernel_are_exact_to_a_few_ulp_over_their_whole_range():
    # 0 and -0, tiny values (tanh's output is its input there), both saturations, far beyond.
    edges = torch.tensor([0.0, -0.0, 1e-30, 1e-8, 1e-3, 0.3, 0.55, 1.0, 9.0, 20.0, 44.0, 87.0, 89.0, 200.0])
    grid = torch.logspace(-8, 2.3, 8 * 400 - len(edges))
    magnitudes = torch.cat([edges, grid])
    values = torch.cat([magnitudes, -magnitudes]).reshape(1, 16, -1, 1)
    x = channels_last(values.repeat_interleave(2, 2).repeat_interleave(2, 3))  # each value fills its window
    for case in ("sigmoid", "tanh"):
        act = site(case)
        exact = act.module(values.double())
        got = ops.max_pool2(x, activation=act).double()
        excess = (got - exact).abs() - 4 * 2**-24 * exact.abs()
        assert excess.max() <= 1e-38, (case, float(excess.max()))

"""What an activation is lives in one table (``actprof.activations``): the rest is read off it."""

from __future__ import annotations

import pytest
import torch

from actprof import activations
from actprof.graphs import candidates, patterns, sites, surgery
from actprof.graphs.census import activation_census, census
from actprof.training.kernels import build
from actprof.training.kernels.ops import Act

TABLE = list(activations.ACTIVATIONS.values())


def test_swap_recognises_exactly_the_tables_single_ops_and_its_onnx_only_sites():
    ours = {a.onnx.op for a in TABLE if a.onnx.op}
    assert ours | {"HardSigmoid"} == sites.SINGLE_OPS
    assert sites.SINGLE_OPS <= sites.ACTIVATION_OPS
    assert {"Erf", "Clip", "QuickGelu", "FastGelu", "BiasGelu", "Softsign", "ThresholdedRelu"} <= sites.ACTIVATION_OPS


def test_every_pattern_the_table_names_has_a_matcher_and_no_matcher_is_unnamed():
    assert set(activations.patterns()) == set(patterns.MATCHERS)


def test_the_monotonic_ops_are_the_tables_monotonic_single_ops():
    expected = {a.onnx.op for a in TABLE if a.monotonic and a.onnx.op} | {"HardSigmoid", "Softsign"}
    assert expected == surgery.MONOTONIC_OPS
    assert not {a.onnx.op for a in TABLE if not a.monotonic} & surgery.MONOTONIC_OPS


@pytest.mark.parametrize("act", [a for a in TABLE if a.name != "prelu"], ids=lambda a: a.name)
def test_each_swap_candidate_is_written_as_the_table_says(act):
    op, attrs, since = candidates.CANDIDATES[act.name]
    assert op == (act.onnx.op or "") and since == act.onnx.since
    if act.onnx.param_attr:
        assert attrs[act.onnx.param_attr] == act.default_param


class _OneSite(torch.nn.Module):
    """Conv → the activation → Linear: one site, as actprof's networks have it."""

    def __init__(self, act: activations.Activation) -> None:
        super().__init__()
        self.conv, self.act, self.fc = torch.nn.Conv2d(1, 4, 3), act.module(), torch.nn.Linear(4 * 26 * 26, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).flatten(1))


@pytest.mark.parametrize("act", TABLE, ids=lambda a: a.name)
def test_the_module_the_table_builds_exports_to_the_ops_it_lists(act):
    import onnx

    from actprof.export.exporter import to_onnx

    exported = to_onnx(_OneSite(act), opset=20, exporter="dynamo")
    onnx.checker.check_model(exported)
    found = activation_census(census(exported))
    if act.name == "softplus":  # the exporter adds torch's threshold branch: x > 20 / β returns x
        assert found == {"Softplus": 1, "Greater": 1, "Where": 1}
    else:
        assert found == {op: 1 for op in act.onnx_ops}


@pytest.mark.parametrize("act", TABLE, ids=lambda a: a.name)
def test_the_kernels_compute_what_the_table_says(act):
    site = Act.of(act, None, act.module())
    if act.kernel is None:
        assert site.kind is None
    else:
        assert site.kind == build.kind(act.kernel.kind) and site.before_pool == act.kernel.before_pool
        assert site.before_pool == (not act.monotonic)  # what is not monotonic must see every pooled value


def test_a_parameter_outside_the_kernels_formula_runs_in_torch():
    leaky, elu = activations.get("leaky_relu"), activations.get("elu")
    assert Act.of(leaky, -0.1, leaky.module(-0.1)).kind is None  # a negative slope: no derivative from the output
    assert Act.of(elu, -1.0, elu.module(-1.0)).kind is None
    assert Act.of(elu, 2.0, elu.module(2.0)).params == (2.0, 1.0, 1.0)

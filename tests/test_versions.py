"""``actprof profile --runtime-versions``: pins, isolated environments, workers, and the side-by-side record."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actprof import api
from actprof.errors import RuntimeInstallError, UsageError
from actprof.measure.environments import environment_for, install_failure
from actprof.measure.versions import site_elements
from actprof.measure.workers import Worker
from actprof.report.versions import change_call, versions_markdown
from actprof.schema.profiling import Interval
from actprof.schema.storage import read_json
from actprof.schema.versions import VersionsRecord
from actprof.settings.versions import RuntimePin, parse_runtime_versions
from tests.helpers import assert_user_error, run_cli

QUICK = api.ProfileSettings(batch_sizes=[1], min_time=0.05, min_runs=5)


# --- pins ------------------------------------------------------------------------------------------------


def test_pins_name_builds_of_one_runtime():
    pins = parse_runtime_versions(" onnxruntime==1.20.1, onnxruntime==1.21.1 ,onnxruntime")
    assert [p.label for p in pins] == ["onnxruntime 1.20.1", "onnxruntime 1.21.1", "onnxruntime (installed)"]
    assert [p.requirement for p in pins] == ["onnxruntime==1.20.1", "onnxruntime==1.21.1", "onnxruntime"]
    assert {p.provider for p in pins} == {"cpu"}
    assert parse_runtime_versions("openvino==2024.6.0,openvino")[0].provider == "openvino"


def test_a_build_named_twice_is_an_aa_control():
    pins = parse_runtime_versions("onnxruntime,onnxruntime")
    assert [p.label for p in pins] == ["onnxruntime (installed)", "onnxruntime (installed) #2"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("onnxruntime==1.20.1", "two or more"),
        ("tensorflow==2.1,onnxruntime", "unknown package 'tensorflow'"),
        ("onnxruntime==latest,onnxruntime", "not a release number"),
        ("onnxruntime>=1.20,onnxruntime", "exact pins"),
        ("onnxruntime==,onnxruntime", "no version"),
        ("onnxruntime==1.20.1,openvino", "one runtime"),
        (",".join(["onnxruntime"] * 7), "at most 6"),
    ],
)
def test_bad_pins_are_refused_in_one_line(spec, words):
    with pytest.raises(UsageError, match=words):
        parse_runtime_versions(spec)


@given(st.text(max_size=60))
def test_any_spec_parses_or_is_refused_as_a_usage_error(spec):
    try:
        pins = parse_runtime_versions(spec)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert 2 <= len(pins) <= 6 and len({p.package for p in pins}) == 1


# --- what pip says, in one line -----------------------------------------------------------------------------

PIP_NO_RELEASE = """\
ERROR: Could not find a version that satisfies the requirement onnxruntime==0.0.1 (from versions: 1.15.0, 1.20.1)
ERROR: No matching distribution found for onnxruntime==0.0.1
"""
PIP_OFFLINE = """\
WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by \
'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new \
connection: [Errno -3] Temporary failure in name resolution')': /simple/onnxruntime/
ERROR: Could not find a version that satisfies the requirement onnxruntime==1.20.1 (from versions: none)
"""


def test_pip_failures_become_one_line_that_names_the_fix():
    pin = RuntimePin("onnxruntime", "0.0.1")
    no_release = install_failure(pin, PIP_NO_RELEASE)
    assert "no such release" in no_release and "pip index versions onnxruntime" in no_release
    offline = install_failure(RuntimePin("onnxruntime", "1.20.1"), PIP_OFFLINE)
    assert "cannot be reached" in offline and "no such release" not in offline
    other = install_failure(pin, "ERROR: Some other failure\n")
    assert other.endswith("pip says: ERROR: Some other failure") and "\n" not in other


# --- the side-by-side record, with real workers --------------------------------------------------------------


def test_site_elements_is_the_first_activation_input(trained_models):
    models, _ = trained_models
    data = (models / "elu.onnx").read_bytes()
    assert site_elements(data, 1) == 32 * 26 * 26  # the seed CNN's first convolution: 32 maps of 26×26
    assert site_elements(data, 64) == 64 * 32 * 26 * 26


def test_two_workers_of_the_installed_build_agree(trained_models, tmp_path):
    """An A/A control through the whole path: two worker processes of the same build, real ORT sessions,
    rounds alternating between them, the record written and read back."""
    models, _ = trained_models
    done = api.profile_versions(
        models, "onnxruntime,onnxruntime", settings=QUICK, names=["relu", "elu"], baseline="relu", out=tmp_path
    )
    record = read_json(tmp_path / "versions.json", VersionsRecord)
    assert record == done.record
    assert [b.label for b in record.runtimes] == ["onnxruntime (installed)", "onnxruntime (installed) #2"]
    assert all(b.installed and "a pool per session" in b.threads for b in record.runtimes)
    assert {(r.model, r.kind, r.runtime) for r in record.latency} == {
        (m, k, b.label) for m in ("relu", "elu") for k in ("network", "kernel") for b in record.runtimes
    }
    elu = next(r for r in record.latency if (r.model, r.kind) == ("elu", "network"))
    assert elu.vs_baseline is not None and elu.vs_baseline.low <= elu.vs_baseline.value <= elu.vs_baseline.high
    for change in record.changes:  # structure only: how fast two workers run is not a unit test's to judge
        latency = change.latency
        assert all(math.isfinite(v) for v in (latency.value, latency.low, latency.high)), change
        assert 0 < latency.low <= latency.value <= latency.high, change
        assert latency.n >= 20  # one per round
        assert change_call(latency) in {"regression", "improvement", "no change", "inconclusive"}
    assert record.adjacent == record.changes  # two builds: build to build is against the first
    assert set(record.fusion) == {b.label for b in record.runtimes}
    census = {c.model: c for c in record.fusion["onnxruntime (installed)"]}
    assert census["relu"].fused  # ORT fuses Relu into its convolution
    assert {p.model for p in record.op_profiles["onnxruntime (installed) #2"]} == {"relu", "elu"}
    text = versions_markdown(record)
    assert "The activation alone" in text and "The whole network, batch 1" in text
    assert (tmp_path / "versions.md").read_text() == text


def test_change_calls_are_the_gates():
    assert change_call(Interval(1.3, 1.2, 1.4, 30)) == "regression"
    assert change_call(Interval(0.7, 0.6, 0.8, 30)) == "improvement"
    assert change_call(Interval(1.01, 0.98, 1.03, 30)) == "no change"
    assert change_call(Interval(0.95, 0.91, 0.99, 30)) == "no change"  # better, but not surely by 5%
    assert change_call(Interval(1.06, 1.02, 1.10, 30)) == "inconclusive"
    assert change_call(Interval(math.nan, math.nan, math.nan, 0)) == "inconclusive"


def test_a_worker_failure_is_one_line(trained_models):
    environment = environment_for(RuntimePin("onnxruntime"))
    worker = Worker(environment, provider="cpu", threads=1)
    try:
        with pytest.raises(Exception, match=r"onnxruntime \(installed\): .*cannot load the model") as caught:
            worker.request("load", key="k", model=__file__, opt_level="all", x=__file__, names=["x", "y"])
        assert "\n" not in str(caught.value)
    finally:
        worker.close()


# --- the command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--runtime-versions", "onnxruntime==1.20.1,tensorrt==10.0"], "unknown package 'tensorrt'"),
        (["--runtime-versions", "onnxruntime,onnxruntime", "--precision", "int8"], "fp32"),
        (["--runtime-versions", "onnxruntime,onnxruntime", "--opt-level", "basic,all"], "one --opt-level"),
    ],
)
def test_cli_refuses_what_a_versions_profile_cannot_do(trained_models, tmp_path, extra, words):
    models, _ = trained_models
    result = run_cli("profile", "--models", str(models), "--out", str(tmp_path), *extra)
    assert_user_error(result, code=2, contains=words)
    assert not list(tmp_path.iterdir())


# --- a real release in its own environment (the package index, once) ------------------------------------------


@pytest.mark.slow
def test_an_older_release_runs_in_its_own_environment(trained_models, tmp_path, monkeypatch):
    """ONNX Runtime 1.20.1 (no shared thread pool from Python) installed into an environment of its own and
    driven through a worker; a release that does not exist is refused in one line."""
    models, _ = trained_models
    # The one test that reaches for the package index (conftest sets ACTPROF_OFFLINE=1 for all the others).
    monkeypatch.delenv("ACTPROF_OFFLINE", raising=False)
    try:
        environment = environment_for(RuntimePin("onnxruntime", "1.20.1"))
    except RuntimeInstallError as exc:
        if "cannot be reached" in str(exc):
            pytest.skip(f"the package index is not reachable here: {exc}")
        raise
    assert environment.python.exists() and environment.code is not None
    worker = Worker(environment, provider="cpu", threads=1)
    try:
        assert worker.build["version"] == "1.20.1"
        census = worker.request("census", name="elu", model=str(models / "elu.onnx"), opt_level="all")
        assert census["model"] == "elu" and census["ops"]
    finally:
        worker.close()
    again = environment_for(RuntimePin("onnxruntime", "1.20.1"))
    assert again == environment  # cached: nothing installed twice
    with pytest.raises(RuntimeInstallError, match="no such release") as caught:
        environment_for(RuntimePin("onnxruntime", "0.0.1"))
    assert "\n" not in str(caught.value)
    assert not [p for p in environment.python.parents[2].iterdir() if p.name.startswith(".onnxruntime-0.0.1")]
    assert json.loads((environment.python.parents[1] / "actprof-environment.json").read_text())["requirements"][0] == (
        "onnxruntime==1.20.1"
    )
    assert os.access(environment.python, os.X_OK)


def test_rounds_rotate_the_builds_within_each_model():
    from actprof.measure.versions import _rotated

    groups = [["a|relu|network", "b|relu|network", "c|relu|network"], ["a|elu|kernel", "b|elu|kernel", "c|elu|kernel"]]
    orders = [_rotated(groups, r) for r in range(3)]
    for order in orders:
        assert sorted(order) == sorted(k for g in groups for k in g)
        assert {k.split("|")[1] for k in order[:3]} == {"relu"}  # model by model
    assert {order[0] for order in orders} == set(groups[0])  # each build leads once in three rounds


# --- build to build: each build against the one before it, from the same rounds ---------------------------------

BUILDS = ["onnxruntime 1.20.1", "onnxruntime 1.21.0", "onnxruntime 1.22.0"]
# Per-round medians (ns) of three builds: elu's kernel slows by 30% in 1.21.0 and stays there; relu never moves.
SLOWDOWN = {("relu", BUILDS[0]): 1.0, ("relu", BUILDS[1]): 1.0, ("relu", BUILDS[2]): 1.0}
SLOWDOWN |= {("elu", BUILDS[0]): 1.0, ("elu", BUILDS[1]): 1.3, ("elu", BUILDS[2]): 1.3}


def _planted_rounds(count: int = 40):
    """Rounds as ``harness.interleave`` returns them: 5% drift shared by a round's builds, 1% noise each."""
    from actprof.measure import harness

    rng = np.random.default_rng(1)
    drift = 1 + 0.05 * rng.standard_normal(count)
    rounds = harness.Interleaved()
    for (model, build), factor in SLOWDOWN.items():
        key = f"{build}|{model}|kernel"
        rounds.rounds[key] = list(1e5 * factor * drift * (1 + 0.01 * rng.standard_normal(count)))
        rounds.samples[key] = [int(v) for v in rounds.rounds[key]]
    return rounds


def _changes(pairs):
    from actprof.measure.versions import _changes

    rounds = _planted_rounds()
    return {(c.model, c.base, c.runtime): c for c in _changes(rounds, dict.fromkeys(rounds.rounds), pairs, 1, None)}


def test_build_to_build_changes_say_which_release_a_regression_came_in():
    """The change against the first build says elu is 1.3x slower under 1.22.0 as under 1.21.0; build to build
    says it came in 1.21.0 and 1.22.0 changed nothing (the same rounds, no new measurement)."""
    against_first = _changes([(BUILDS[0], BUILDS[1]), (BUILDS[0], BUILDS[2])])
    adjacent = _changes(list(itertools.pairwise(BUILDS)))
    assert change_call(against_first[("elu", BUILDS[0], BUILDS[2])].latency) == "regression"
    assert change_call(adjacent[("elu", BUILDS[0], BUILDS[1])].latency) == "regression"
    assert change_call(adjacent[("elu", BUILDS[1], BUILDS[2])].latency) == "no change"
    assert {change_call(c.latency) for (model, _, _), c in adjacent.items() if model == "relu"} == {"no change"}
    assert adjacent[("elu", BUILDS[0], BUILDS[1])] == against_first[("elu", BUILDS[0], BUILDS[1])]
    assert set(adjacent) == {(m, a, b) for m in ("relu", "elu") for a, b in itertools.pairwise(BUILDS)}


def _three_build_record(adjacent) -> VersionsRecord:
    from actprof.schema.storage import header
    from actprof.schema.versions import RuntimeBuild, VersionsSettings

    builds = [RuntimeBuild(b, "onnxruntime", b.split()[1], False, "3.11", "2.1", "1.17", "1 thread") for b in BUILDS]
    settings = VersionsSettings("cpu", [1], "all", 0.05, 5, 1)
    return VersionsRecord(
        **header("versions"),
        settings=settings,
        runtimes=builds,
        baseline=None,
        models=[],
        latency=[],
        changes=[],
        fusion={},
        op_profiles={},
        seconds=1.0,
        adjacent=list(adjacent),
    )


def test_the_report_has_a_build_to_build_table_and_old_records_still_load(tmp_path):
    from actprof.report.versions import step_rows, write_versions

    record = _three_build_record(_changes(list(itertools.pairwise(BUILDS))).values())
    rows = step_rows(record, "kernel", 1)
    assert [(r["activation"], r["from"], r["to"], r["call"]) for r in rows if r["activation"] == "elu"] == [
        ("elu", "1.20.1", "1.21.0", "regression"),
        ("elu", "1.21.0", "1.22.0", "no change"),
    ]
    write_versions(record, tmp_path)
    assert "## Build to build: the activation alone, batch 1" in (tmp_path / "versions.md").read_text()
    assert read_json(tmp_path / "versions.json", VersionsRecord) == record
    older = json.loads((tmp_path / "versions.json").read_text())
    del older["adjacent"]
    (tmp_path / "older.json").write_text(json.dumps(older | {"schema_version": 6}))
    loaded = read_json(tmp_path / "older.json", VersionsRecord)
    assert loaded.adjacent == [] and not step_rows(loaded, "kernel", 1)
    assert "Build to build" not in versions_markdown(loaded)

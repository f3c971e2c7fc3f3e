"""``actprof history``: reports kept over time in a local SQLite file, shown and plotted, and every file that is
not an actprof history refused in one line.

The runs are real: the committed report of a full run (reports/example, 21 activations on ORT's CPU provider),
and the same report as a later run on other runtime versions (its created time and versions changed), which is
how a second CI run looks to the history. Training and profiling afresh here would add minutes, not coverage.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import subprocess
from pathlib import Path

import pytest

from actprof import api
from actprof.analysis.gate import load_report
from actprof.errors import ModelFileError, OutputError, UsageError
from actprof.schema import history
from actprof.schema.profiling import Interval
from actprof.schema.reports import ReportRecord
from actprof.schema.storage import write_json
from tests.helpers import assert_user_error, run_cli

EXAMPLE = Path(__file__).resolve().parent.parent / "reports" / "example"
LATER = "2027-01-15T10:00:00+00:00"


@pytest.fixture(scope="module")
def report() -> ReportRecord:
    return load_report(EXAMPLE)


def later_run(report: ReportRecord) -> ReportRecord:
    """The same results as a later run on newer runtimes, elu's batch-1 ratio without bounds (one round)."""
    versions = {**report.environment.versions, "onnxruntime-gpu": "1.99.0", "openvino": "2099.1"}
    environment = dataclasses.replace(report.environment, versions=versions)

    def unbounded(latency):
        if latency.batch != 1 or latency.vs_baseline is None:
            return latency
        return dataclasses.replace(latency, vs_baseline=Interval(1.5, math.nan, math.nan, 1))

    activations = [
        dataclasses.replace(s, latency=[unbounded(r) for r in s.latency]) if s.name == "elu" else s
        for s in report.activations
    ]
    return dataclasses.replace(report, created=LATER, environment=environment, activations=activations)


@pytest.fixture
def two_reports(tmp_path, report) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    write_json(first / "report.json", report)
    write_json(second / "report.json", later_run(report))
    return first, second


def test_two_runs_are_kept_and_an_activation_followed_over_them(tmp_path, report, two_reports):
    db = tmp_path / "h" / "history.sqlite"
    first, second = two_reports
    # added newest first: shown oldest report first all the same
    later = api.history_add(db, second / "report.json", label="ORT 1.99 trial")
    earlier = api.history_add(db, first)
    assert later.added and earlier.added and later.accuracies == len(report.activations)
    found = api.history_show(db, activation="elu")
    assert [r.id for r in found.runs] == [earlier.run.id, later.run.id]
    old, new = found.runs
    assert (old.onnxruntime, old.openvino, new.onnxruntime, new.openvino) == ("1.31.1", None, "1.99.0", "2099.1")
    assert new.label == "ORT 1.99 trial" and old.label is None
    assert (new.cpu_model, new.cpu_count, new.arch) == (report.environment.cpu_model, 2, "x86_64")
    assert new.actprof == report.environment.actprof and new.created == LATER
    assert new.git_commit is None  # tmp_path is in no repository
    expected = {(r.provider, r.precision, r.batch): r.vs_baseline for s in report.activations if s.name == "elu"
                for r in s.latency}  # fmt: skip
    assert {(p.provider, p.precision, p.batch): p.ratio for p in found.ratios if p.run_id == old.id} == expected
    unbounded = next(p.ratio for p in found.ratios if p.run_id == new.id and p.batch == 1)
    assert unbounded.value == 1.5 and math.isnan(unbounded.low) and math.isnan(unbounded.high)
    elu = next(s for s in report.activations if s.name == "elu")
    assert [a.test_accuracy for a in found.accuracy] == [elu.test_accuracy] * 2
    narrowed = api.history_show(db, activation="ELU", provider="cpu", precision="fp32", batch=64)
    assert {p.batch for p in narrowed.ratios} == {64} and len(narrowed.ratios) == 2


def test_the_same_report_twice_is_skipped(tmp_path, two_reports):
    db = tmp_path / "history.sqlite"
    first, _ = two_reports
    added = api.history_add(db, first)
    again = api.history_add(db, first / "report.json", label="a re-run CI job")
    assert added.added and not again.added and again.run.id == added.run.id
    assert len(api.history_show(db).runs) == 1


def test_the_commit_of_the_results_repository_is_recorded(tmp_path, two_reports):
    first, _ = two_reports
    git = ["git", "-C", str(first), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "results"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert api.history_add(tmp_path / "history.sqlite", first).run.git_commit == head


def test_a_failed_add_leaves_the_history_as_it_was(tmp_path, two_reports, monkeypatch):
    db = tmp_path / "history.sqlite"
    first, second = two_reports
    api.history_add(db, first)
    before = db.read_bytes()

    def disk_gone(*_args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(history, "_insert_accuracy", disk_gone)
    with pytest.raises(OutputError, match="cannot write"):
        api.history_add(db, second)
    assert db.read_bytes() == before
    assert len(api.history_show(db).runs) == 1


def test_show_plots_the_ratio_over_runs_and_never_writes_the_history(tmp_path, two_reports):
    db = tmp_path / "history.sqlite"
    for results in two_reports:
        api.history_add(db, results)
    before = db.read_bytes()
    png, svg = tmp_path / "plots" / "elu.png", tmp_path / "elu.svg"
    api.history_show(db, activation="elu", plot=png)
    api.history_show(db, activation="elu", provider="cpu", batch=1, plot=svg)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in svg.read_bytes()[:1000]
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("**/.elu.png.*.tmp"))


def test_bad_options_are_refused_before_reading(tmp_path, two_reports):
    db = tmp_path / "history.sqlite"
    api.history_add(db, two_reports[0])
    with pytest.raises(UsageError, match=r"\.png or \.svg"):
        api.history_show(db, activation="elu", plot=tmp_path / "elu.jpg")
    with pytest.raises(UsageError, match="--act"):
        api.history_show(db, plot=tmp_path / "elu.png")
    with pytest.raises(UsageError, match="--act"):
        api.history_show(db, provider="cpu")
    with pytest.raises(UsageError, match="one of: celu"):
        api.history_show(db, activation="nope")
    with pytest.raises(UsageError, match="cpu fp32 64"):
        api.history_show(db, activation="elu", provider="openvino")
    with pytest.raises(ModelFileError, match="no history"):
        api.history_show(tmp_path / "none.sqlite")


def test_the_command_line_adds_shows_and_plots(tmp_path, two_reports):
    db, plot = tmp_path / "history.sqlite", tmp_path / "elu.png"
    first, second = two_reports
    added = run_cli("history", "add", str(first), "--db", str(db), "--label", "main")
    assert added.returncode == 0, added.stderr
    assert "added run 1" in added.stderr and "ORT 1.31.1" in added.stderr
    again = run_cli("history", "add", str(first), "--db", str(db))
    assert again.returncode == 0 and "nothing added" in again.stderr
    assert run_cli("history", "add", str(second), "--db", str(db)).returncode == 0
    runs = run_cli("history", "show", "--db", str(db))
    assert runs.returncode == 0 and "main" in runs.stderr and "1.99.0" in runs.stderr
    shown = run_cli("history", "show", "--db", str(db), "--act", "elu", "--batch", "64", "--plot", str(plot))
    assert shown.returncode == 0, shown.stderr
    assert "elu over time" in shown.stderr and "cpu fp32 b64" in shown.stderr and "cpu fp32 b1 " not in shown.stderr
    assert plot.read_bytes().startswith(b"\x89PNG")


def newer_history(path: Path) -> None:
    history.add(path, load_report(EXAMPLE), source=EXAMPLE, git_commit=None)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE actprof_history SET value = '99' WHERE key = 'schema_version'")
    db.close()


def another_application(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.write_text("a shopping list\n"), "not an SQLite file"),
        (another_application, "SQLite file of another application"),
        (newer_history, "history schema 99, newer than this actprof"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["text-file", "another-apps-sqlite", "newer-schema", "directory"],
)
def test_a_file_that_is_not_an_actprof_history_is_refused_in_one_line(tmp_path, make, says):
    db = tmp_path / "history.sqlite"
    make(db)
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in (["add", str(EXAMPLE)], ["show"]):
        result = run_cli("history", *command, "--db", str(db))
        assert_user_error(result, code=2, contains=says)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside it either


def test_missing_results_are_refused_in_one_line(tmp_path):
    result = run_cli("history", "add", str(tmp_path / "no-such-results"), "--db", str(tmp_path / "h.sqlite"))
    assert_user_error(result, code=2, contains="no report at")
    assert not (tmp_path / "h.sqlite").exists()


def test_a_bad_option_value_points_at_the_subcommands_help():
    result = run_cli("history", "show", "--batch", "x")
    assert_user_error(result, code=2, contains="see: actprof history show --help")

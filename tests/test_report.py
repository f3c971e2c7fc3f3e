from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from actprof.analysis import gate, verdict, words
from actprof.report import files, profile_tables
from actprof.report.html import html_page
from actprof.report.markdown import markdown
from actprof.report.terminal import print_profile
from actprof.schema.profiling import Interval, ProfileRecord
from actprof.schema.reports import ReportRecord, Verdict
from actprof.schema.storage import read_json, write_json
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def built(trained_models):
    _, records = trained_models
    chosen = [records["relu"], records["elu"], records["gelu"]]
    evil = '<script>alert("x")</script> | **bold** [link](http://x)'
    evil_env = dataclasses.replace(records["relu"].environment, cpu_model=evil)
    chosen = [dataclasses.replace(r, environment=evil_env) for r in chosen]
    return chosen, verdict.build(chosen, None, baseline="relu")


def test_strings_from_files_are_escaped_in_html_and_markdown(built):
    models, rep = built
    rep = dataclasses.replace(rep, environment=models[0].environment)
    page = html_page(rep, models, None)
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    text = markdown(rep, None)
    assert "<script>" not in text
    assert "\\*\\*bold\\*\\*" in text and "\\[link\\]" in text
    assert "\\|" in text  # a pipe cannot break a table


def test_every_format_is_written_and_loads_back(tmp_path, built, monkeypatch):
    models, rep = built
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    written = files.write_reports(tmp_path, files.FORMATS, rep, models, None)
    assert sorted(p.name for p in written) == ["report.csv", "report.html", "report.json", "report.md"]
    assert read_json(tmp_path / "report.json", ReportRecord) == rep
    assert summary.read_text().startswith("# actprof")
    assert len((tmp_path / "report.csv").read_text().splitlines()) == 1 + len(models)
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 2


def test_csv_neutralises_formulas():
    assert files._csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert files._csv_cell(-1.5) == -1.5


def make_verdict(lost_b1, lost_batch, break_even_b1, break_even_batch, within_noise):
    return Verdict(
        activation="elu",
        baseline="relu",
        provider="cpu",
        target_accuracy=0.97,
        train_seconds=8.0,
        baseline_train_seconds=10.0,
        train_seconds_saved=2.0,
        ms_lost_per_image_batch1=lost_b1,
        largest_batch=64,
        ms_lost_per_batch=lost_batch,
        break_even_batch1=break_even_b1,
        break_even_largest=break_even_batch,
        latency_within_noise=within_noise,
        summary="",
    )


def test_break_even_is_stated_with_its_inputs():
    v = make_verdict(Interval(0.05, 0.04, 0.06, 20), Interval(2.0, 1.5, 2.5, 20), 40_000.0, 64_000.0, False)
    text = words.sentence(v)
    assert "40,000 single-image inferences" in text
    assert "2.0 s saved" in text and "0.0500 ms lost each" in text
    assert "after that relu is cheaper" in text


def test_within_noise_is_said_plainly():
    v = make_verdict(Interval(0.001, -0.002, 0.003, 20), Interval(0.01, -0.02, 0.03, 20), None, None, True)
    assert "within noise" in words.sentence(v)


def test_diff_flags_a_planted_regression(tmp_path, built):
    models, rep = built
    slower = dataclasses.replace(
        rep,
        activations=[
            dataclasses.replace(s, test_accuracy=s.test_accuracy * 0.9) if s.name == "elu" else s
            for s in rep.activations
        ],
    )
    assert {s.test_images for s in rep.activations} == {models[0].dataset.n_test}  # what the interval needs
    same = gate.diff(rep, rep, threshold=0.05)
    assert same.identical and not same.regressions
    changed = gate.diff(rep, slower, threshold=0.05)
    assert [c.what for c in changed.regressions] == ["elu test accuracy"]


def test_diff_command_is_a_ci_gate(tmp_path, built):
    _, rep = built
    worse = dataclasses.replace(
        rep, activations=[dataclasses.replace(s, test_accuracy=s.test_accuracy * 0.5) for s in rep.activations]
    )
    write_json(tmp_path / "base" / "report.json", rep)
    write_json(tmp_path / "new" / "report.json", worse)
    same = run_cli("diff", str(tmp_path / "base"), str(tmp_path / "base"))
    assert same.returncode == 0, same.stderr
    regressed = run_cli("diff", str(tmp_path / "base"), str(tmp_path / "new"), "--threshold", "5%")
    assert regressed.returncode == 4  # a regression, not a failure of actprof (1)
    assert "regression" in regressed.stderr.splitlines()[-1]


# --- the committed H100 run (reports/gpu/): real CUDA provider data, read back and rendered ----------

GPU_RUN = Path(__file__).resolve().parent.parent / "reports" / "gpu" / "nvidia-h100-80gb-hbm3"


@pytest.fixture(scope="module")
def gpu_profile() -> ProfileRecord:
    return read_json(GPU_RUN / "profile.json", ProfileRecord)


def test_the_gpu_run_loads_and_holds_both_providers(gpu_profile):
    assert gpu_profile.gpu is not None and "H100" in gpu_profile.gpu.name
    assert {p.name for p in gpu_profile.providers if p.binds} == {"cpu", "cuda"}
    modes = {r.mode for r in gpu_profile.latency if r.provider == "cuda"}
    assert modes == {"compute", "end-to-end"}


def test_cuda_per_op_rows_say_they_time_the_launch(gpu_profile):
    rows = profile_tables.op_rows(gpu_profile)
    assert {r["timed"] for r in rows if r["provider"] == "cuda"} == {"host launch"}
    assert {r["timed"] for r in rows if r["provider"] == "cpu"} == {"kernel"}
    assert "host-side launch" in profile_tables.op_notes(gpu_profile)


def test_nodes_that_ran_off_the_gpu_are_named_once(gpu_profile):
    """Celu has no CUDA kernel: ORT ran it on the CPU; the note names each node once, not per batch."""
    notes = profile_tables.op_notes(gpu_profile)
    assert notes.count("celu on cuda:") == 1
    assert "node_celu_1 (CPUExecutionProvider)" in notes
    assert "elu on cuda" not in notes.replace("celu on cuda", "")


def test_gpu_markdown_escapes_the_note(gpu_profile, built):
    _models, rep = built
    text = markdown(rep, gpu_profile)
    assert "node\\_celu\\_1" in text and "CUDA rows time the host-side launch" in text


def test_node_names_are_not_rich_markup(gpu_profile):
    """Node names come from the model file; one that looks like rich markup must print as text."""
    import io

    from rich.console import Console

    [first, *rest] = gpu_profile.op_profiles
    hostile = dataclasses.replace(first, foreign_nodes=["[/bold] node (CPUExecutionProvider)"])
    record = dataclasses.replace(gpu_profile, op_profiles=[hostile, *rest])
    out = io.StringIO()
    print_profile(record, console=Console(file=out, width=300))
    assert "[/bold] node" in out.getvalue()

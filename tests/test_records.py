from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actprof.errors import ModelFileError, OutputError
from actprof.schema import SCHEMA_VERSION, storage
from actprof.schema.storage import atomic_path, read_json, write_bytes_atomic, write_json, write_text_atomic


@dataclass(frozen=True)
class Inner:
    name: str
    values: list[float]
    flag: bool = False


@dataclass(frozen=True)
class Sample:
    schema_version: int
    kind: str
    score: float
    best: int | None
    inner: Inner
    inners: list[Inner]
    counts: dict[str, int]
    note: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


def make_sample(**changes) -> Sample:
    fields = {
        "schema_version": SCHEMA_VERSION,
        "kind": "sample",
        "score": 0.875,
        "best": 3,
        "inner": Inner("a", [1.0, 2.5]),
        "inners": [Inner("b", [], True), Inner("c", [-0.5])],
        "counts": {"Relu": 3, "MaxPool": 2},
        "note": "über ✓",
        "extra": {"x": 1.5},
    }
    return Sample(**{**fields, **changes})


def valid_dict(**changes) -> dict:
    return {**json.loads(storage.dumps(make_sample())), **changes}


def write_raw(path: Path, data: bytes | str | object) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, bytes):
        data = json.dumps(data).encode("utf-8")
    path.write_bytes(data)
    return path


def assert_one_line_model_file_error(path: Path, contains: str | None = None) -> str:
    with pytest.raises(ModelFileError) as info:
        read_json(path, Sample)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    if contains:
        assert contains in message
    return message


def can_write_into(directory: Path) -> bool:
    probe = directory / "probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


# --- round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample",
    [
        make_sample(),
        make_sample(best=None, note=None, extra={}),
        make_sample(inners=[], counts={}),
        make_sample(score=-1e300, inner=Inner("", [0.0, -0.0, 5e-324])),
    ],
)
def test_round_trip(tmp_path, sample):
    path = tmp_path / "record.json"
    write_json(path, sample)
    assert read_json(path, Sample) == sample


def test_written_json_is_plain_and_indented(tmp_path):
    path = tmp_path / "record.json"
    write_json(path, make_sample())
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert '\n  "kind": "sample"' in text
    assert json.loads(text)["inner"] == {"name": "a", "values": [1.0, 2.5], "flag": False}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_float_becomes_null_then_nan(tmp_path, value):
    path = tmp_path / "record.json"
    write_json(path, make_sample(score=value, inner=Inner("a", [1.0, value]), extra={"x": value}))
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["score"] is None
    assert on_disk["inner"]["values"] == [1.0, None]
    assert on_disk["extra"] == {"x": None}
    loaded = read_json(path, Sample)
    assert math.isnan(loaded.score)
    assert loaded.inner.values[0] == 1.0
    assert math.isnan(loaded.inner.values[1])
    assert math.isnan(loaded.extra["x"])


def test_missing_defaulted_fields_take_defaults(tmp_path):
    data = valid_dict()
    del data["note"], data["extra"]
    loaded = read_json(write_raw(tmp_path / "r.json", data), Sample)
    assert loaded.note is None
    assert loaded.extra == {}


def test_unknown_fields_are_ignored(tmp_path):
    loaded = read_json(write_raw(tmp_path / "r.json", valid_dict(future_field=[1, 2])), Sample)
    assert loaded == make_sample()


def test_older_schema_is_read(tmp_path):
    assert read_json(write_raw(tmp_path / "r.json", valid_dict(schema_version=0)), Sample).schema_version == 0


def test_write_json_creates_parent_directories(tmp_path):
    path = tmp_path / "a" / "b" / "record.json"
    write_json(path, make_sample())
    assert read_json(path, Sample) == make_sample()


# --- read_json refuses bad files ---------------------------------------------------------------


def test_missing_file(tmp_path):
    assert_one_line_model_file_error(tmp_path / "absent.json", "does not exist")


def test_directory(tmp_path):
    assert_one_line_model_file_error(tmp_path, "is a directory")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage\x80\x81",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"\xc3\x28",
        b'{"schema_version": 1, "kind": "\xff"}',
        b"{not json}",
        b'{"schema_version": 1',
        b"[" * 100_000,
    ],
)
def test_not_json(tmp_path, raw):
    assert_one_line_model_file_error(write_raw(tmp_path / "r.json", raw), "not valid JSON")


@pytest.mark.parametrize("data", [[1, 2], [], 3, 2.5, "text", None, True])
def test_json_that_is_not_an_object(tmp_path, data):
    path = write_raw(tmp_path / "r.json", json.dumps(data))
    assert_one_line_model_file_error(path, "expected a JSON object")


@pytest.mark.parametrize("version", ["missing", None, "1", 1.0, True, [1]])
def test_missing_or_bad_schema_version(tmp_path, version):
    data = valid_dict()
    if version == "missing":
        del data["schema_version"]
    else:
        data["schema_version"] = version
    assert_one_line_model_file_error(write_raw(tmp_path / "r.json", data), "no schema_version")


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 99, 10**30])
def test_newer_schema(tmp_path, version):
    path = write_raw(tmp_path / "r.json", valid_dict(schema_version=version))
    message = assert_one_line_model_file_error(path, "upgrade")
    assert str(version) in message


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": 3},
        {"score": "high"},
        {"score": True},
        {"score": [1.0]},
        {"best": "3"},
        {"best": 3.0},
        {"best": False},
        {"inner": [1, 2]},
        {"inner": {"name": "a"}},
        {"inner": {"name": "a", "values": "1,2"}},
        {"inner": {"name": "a", "values": [1, "2"]}},
        {"inner": {"name": "a", "values": [], "flag": 1}},
        {"inners": {"name": "a", "values": []}},
        {"inners": [1]},
        {"counts": {"Relu": "3"}},
        {"counts": [["Relu", 3]]},
        {"note": 5},
        {"extra": {"x": "nan"}},
        {"kind": None},
    ],
    ids=repr,
)
def test_wrong_field_types(tmp_path, changes):
    path = write_raw(tmp_path / "r.json", valid_dict(**changes))
    message = assert_one_line_model_file_error(path, "not a valid Sample record")
    assert next(iter(changes)) in message


def test_missing_required_field(tmp_path):
    data = valid_dict()
    del data["inner"]
    assert_one_line_model_file_error(write_raw(tmp_path / "r.json", data), "missing field 'inner'")


def test_integer_beyond_the_digit_limit(tmp_path):
    text = '{"schema_version": 1, "best": ' + "9" * 5000 + "}"
    assert_one_line_model_file_error(write_raw(tmp_path / "r.json", text))


def test_integer_too_large_for_a_float_field(tmp_path):
    path = write_raw(tmp_path / "r.json", valid_dict(score=10**400))
    assert_one_line_model_file_error(path, "not a valid Sample record")


# --- property: read_json returns or raises ModelFileError, nothing else --------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
SAMPLE_SHAPED = st.fixed_dictionaries(
    {"schema_version": st.sampled_from([0, 1, SCHEMA_VERSION]) | JSON},
    optional={
        "kind": JSON,
        "score": JSON,
        "best": JSON,
        "inner": JSON | st.fixed_dictionaries({"name": JSON, "values": JSON}, optional={"flag": JSON}),
        "inners": JSON,
        "counts": JSON,
        "note": JSON,
        "extra": JSON,
    },
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_or_model_file_error(path: Path) -> None:
    try:
        loaded = read_json(path, Sample)
    except ModelFileError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(loaded, Sample)


@PROPERTY
@given(value=JSON | SAMPLE_SHAPED)
def test_any_json_value_reads_or_raises_model_file_error(tmp_path, value):
    read_or_model_file_error(write_raw(tmp_path / "r.json", json.dumps(value)))


@PROPERTY
@given(raw=st.binary(max_size=200) | SAMPLE_SHAPED.map(lambda d: json.dumps(d).encode("utf-16")))
def test_any_bytes_read_or_raise_model_file_error(tmp_path, raw):
    read_or_model_file_error(write_raw(tmp_path / "r.json", raw))


# --- atomic writes -----------------------------------------------------------------------------


def test_write_bytes_atomic_writes_and_replaces(tmp_path):
    target = tmp_path / "out.bin"
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_write_text_atomic_is_utf8(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "ü·x")
    assert target.read_bytes() == "ü·x".encode()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (KeyboardInterrupt(), KeyboardInterrupt),
        (RuntimeError("boom"), RuntimeError),
        (OSError(errno.ENOSPC, "No space left on device"), OutputError),
    ],
)
def test_interrupted_block_leaves_nothing(tmp_path, exc, expected):
    target = tmp_path / "out.bin"
    with pytest.raises(expected), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        tmp.write_bytes(b"partial")
        raise exc
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_block_keeps_existing_target(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"new but partial")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("existing", [False, True])
def test_write_bytes_atomic_interrupted_mid_write(tmp_path, monkeypatch, existing):
    target = tmp_path / "out.bin"
    if existing:
        target.write_bytes(b"old")

    def interrupted_fsync(_fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(target, b"new")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    if existing:
        assert target.read_bytes() == b"old"
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_file_mode_follows_umask(tmp_path, mask, mode):
    previous = os.umask(mask)
    try:
        target = tmp_path / "out.bin"
        write_bytes_atomic(target, b"x")
        assert stat.S_IMODE(target.stat().st_mode) == mode
        write_json(tmp_path / "r.json", make_sample())
        assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode
    finally:
        os.umask(previous)


def test_replacement_gets_0644(tmp_path, umask_022):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_bytes_atomic(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


# --- output errors -----------------------------------------------------------------------------


def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if can_write_into(locked):
            pytest.skip("permissions are not enforced for this user (root)")
        with pytest.raises(OutputError, match="permission denied"):
            write_bytes_atomic(locked / "out.bin", b"x")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("relative", ["file/out.bin", "file/sub/out.bin"])
def test_parent_is_a_regular_file(tmp_path, relative):
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(OutputError) as info:
        write_bytes_atomic(tmp_path / relative, b"x")
    assert "\n" not in str(info.value)
    assert "cannot write" in str(info.value)
    assert (tmp_path / "file").read_bytes() == b"not a directory"


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.EROFS, "permission denied"),
        (errno.ENOSPC, "disk is full"),
    ],
)
def test_os_errors_map_to_output_error_hints(tmp_path, monkeypatch, code, hint):
    def failing_mkstemp(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(storage.tempfile, "mkstemp", failing_mkstemp)
    with pytest.raises(OutputError, match=hint):
        write_bytes_atomic(tmp_path / "out.bin", b"x")


def test_disk_full_during_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"

    def full_fsync(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "fsync", full_fsync)
    with pytest.raises(OutputError, match="disk is full"):
        write_bytes_atomic(target, b"x")
    assert list(tmp_path.iterdir()) == []


def test_target_is_a_directory(tmp_path):
    (tmp_path / "out.bin").mkdir()
    with pytest.raises(OutputError):
        write_bytes_atomic(tmp_path / "out.bin", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_records_name_the_commit_actprof_ran_from():
    """From a checkout, every record's environment carries the source's commit (what made it, for the history);
    an installed package, or no git, records none."""
    import subprocess

    from actprof.schema import environment

    root = Path(environment.__file__).resolve().parents[2]
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True
    )
    lines = done.stdout.split()
    if done.returncode != 0 or Path(lines[0]).resolve() != root:
        pytest.skip("actprof does not run from a git checkout here")
    assert environment.capture().actprof_commit == lines[1]

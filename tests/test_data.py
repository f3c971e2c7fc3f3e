from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from actprof.data.idx import read_idx, write_idx
from actprof.data.mnist import (
    FULL_MNIST_SHA256,
    MIRRORS,
    SAMPLE_DIR,
    STEMS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    cache_dir,
    load_mnist,
    to_tensor,
    validation_split,
)
from actprof.errors import DataError, UsageError

# Read before the autouse fixture clears it: the one test that uses real full MNIST needs it.
FULL_MNIST_DIR = os.environ.get("ACTPROF_DATA_DIR")
OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NO_FIXTURE_CHECK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never download, never read the user's cache or data dir."""
    monkeypatch.setenv("ACTPROF_OFFLINE", "1")
    monkeypatch.delenv("ACTPROF_DATA_DIR", raising=False)
    monkeypatch.setenv("ACTPROF_CACHE_DIR", str(tmp_path / "cache"))


def needs_full_mnist() -> Path:
    if not FULL_MNIST_DIR:
        pytest.skip("ACTPROF_DATA_DIR not set: full-MNIST test skipped")
    return Path(FULL_MNIST_DIR)


def make_mnist_dir(
    directory: Path,
    *,
    n_train: int = 50,
    n_test: int = 20,
    suffix: str = ".gz",
    train_labels: np.ndarray | None = None,
) -> Path:
    """A small, structurally valid MNIST-format folder."""
    rng = np.random.default_rng(0)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: (np.arange(n_train) % 10).astype(np.uint8) if train_labels is None else train_labels,
        TEST_IMAGES: rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: (np.arange(n_test) % 10).astype(np.uint8),
    }
    for stem, array in arrays.items():
        write_idx(directory / f"{stem}{suffix}", array)
    return directory


def raw_idx(shape: tuple[int, ...], payload: bytes, *, dtype_code: int = 0x08) -> bytes:
    header = bytes([0, 0, dtype_code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + payload


class LogRecorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def fake_retrieve(serve: Callable[[str], Path]) -> Callable[..., str]:
    """A stand-in for pooch.retrieve that copies the file ``serve(url)`` names (or lets it raise)."""

    def retrieve(url: str, *, known_hash: None, fname: str, path: Path, downloader: object) -> str:
        assert known_hash is None
        source = serve(url)
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, Path(path) / fname)
        return str(Path(path) / fname)

    return retrieve


# --- read_idx / write_idx --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images.gz", "images"])
def test_read_idx_round_trips_write_idx(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / name, images)
    write_idx(tmp_path / f"labels-{name}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"labels-{name}"), labels)
    assert read_idx(tmp_path / name).flags.writeable


def test_write_idx_gzip_is_reproducible(tmp_path: Path) -> None:
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_read_idx_decides_compression_by_content_not_name(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "raw.gz").write_bytes(raw_idx((10,), labels.tobytes()))
    (tmp_path / "compressed").write_bytes(gzip.compress(raw_idx((10,), labels.tobytes())))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed"), labels)


def _corrupt_gzip() -> bytes:
    blob = bytearray(gzip.compress(raw_idx((2, 28, 28), bytes(range(256)) * 6 + bytes(32))))
    blob[12:20] = b"\xff" * 8
    return bytes(blob)


BAD_FILES = {
    "empty": b"",
    "wrong magic": b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc",
    "header cut short": b"\x00\x00\x08\x03\x00\x00",
    "truncated payload": raw_idx((3, 28, 28), bytes(3 * 784 - 1)),
    "trailing bytes": raw_idx((3,), b"\x01\x02\x03\x04"),
    "wrong dtype code": raw_idx((3,), b"\x01\x02\x03", dtype_code=0x0D),
    "ndim 2": raw_idx((3, 28), bytes(3 * 28)),
    "corrupt gzip": _corrupt_gzip(),
    "truncated gzip": gzip.compress(raw_idx((100,), bytes(100)))[:-12],
    "gzip of a truncated payload": gzip.compress(raw_idx((100,), bytes(99))),
    "gzip magic only": b"\x1f\x8b",
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_read_idx_rejects_bad_files_with_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad-file"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_idx(path)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message


def test_read_idx_missing_file_or_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)


SOME_BYTES = st.binary(max_size=300)
IDX_LIKE_BYTES = st.one_of(
    SOME_BYTES,
    st.tuples(st.sampled_from([b"\x00\x00\x08\x01", b"\x00\x00\x08\x03"]), SOME_BYTES).map(b"".join),
    SOME_BYTES.map(gzip.compress),
    st.tuples(st.just(b"\x00\x00\x08\x01"), st.binary(min_size=4, max_size=4), SOME_BYTES)
    .map(b"".join)
    .map(gzip.compress),
    st.tuples(SOME_BYTES.map(gzip.compress), st.integers(0, 400)).map(lambda blob_cut: blob_cut[0][: blob_cut[1]]),
    SOME_BYTES.map(lambda rest: b"\x1f\x8b" + rest),
)


@NO_FIXTURE_CHECK
@given(content=IDX_LIKE_BYTES)
def test_read_idx_on_arbitrary_bytes_returns_array_or_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzzed"
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert array.dtype == np.uint8 and array.ndim in (1, 3)


VALID_ARRAYS = st.sampled_from([1, 3]).flatmap(
    lambda ndim: hnp.arrays(np.uint8, hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=0, max_side=6))
)


@NO_FIXTURE_CHECK
@given(array=VALID_ARRAYS, compressed=st.booleans())
def test_valid_arrays_round_trip(tmp_path: Path, array: np.ndarray, compressed: bool) -> None:
    path = tmp_path / ("valid.gz" if compressed else "valid")
    write_idx(path, array)
    read_back = read_idx(path)
    assert read_back.shape == array.shape
    np.testing.assert_array_equal(read_back, array)


def test_write_idx_refuses_arrays_it_cannot_represent(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.float32))


# --- the bundled sample ----------------------------------------------------------------------


def test_bundled_sample_is_stratified_and_small() -> None:
    log = LogRecorder()
    mnist = load_mnist(dataset="sample", log=log)
    ident = mnist.identity
    assert (ident.kind, ident.source) == ("sample", "sample")
    assert (ident.n_train, ident.n_test) == (8000, 2000)
    assert ident.train_label_counts == [800] * 10
    assert ident.test_label_counts == [200] * 10
    assert mnist.train_images.shape == (8000, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.test_images.shape == (2000, 28, 28)
    assert "bundled sample" in log.text
    assert sum((SAMPLE_DIR / f"{stem}.gz").stat().st_size for stem in STEMS) <= 2_500_000


def test_unknown_dataset_is_a_usage_error_listing_the_choices() -> None:
    with pytest.raises(UsageError, match="auto, full, sample"):
        load_mnist(dataset="fashion")


# --- explicit directories --------------------------------------------------------------------


def test_data_dir_with_valid_files(tmp_path: Path) -> None:
    directory = make_mnist_dir(tmp_path / "mnist")
    log = LogRecorder()
    mnist = load_mnist(data_dir=directory, dataset="full", log=log)
    ident = mnist.identity
    assert (ident.kind, ident.source, ident.location) == ("full", "data-dir", str(directory))
    assert (ident.n_train, ident.n_test) == (50, 20)
    assert ident.train_label_counts == [5] * 10
    assert str(directory) in log.text and "(data-dir)" in log.text
    file_hashes = [hashlib.sha256(gzip.decompress((directory / f"{s}.gz").read_bytes())).hexdigest() for s in STEMS]
    assert ident.sha256 == hashlib.sha256("\n".join(file_hashes).encode()).hexdigest()


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_data_dir_accepts_raw_and_dotted_names(tmp_path: Path, suffix: str) -> None:
    directory = make_mnist_dir(tmp_path / "mnist", suffix=suffix)
    for stem in STEMS:
        (directory / f"{stem}{suffix}").rename(directory / f"{stem.replace('-idx', '.idx')}{suffix}")
    assert load_mnist(data_dir=directory, log=LogRecorder()).identity.n_train == 50


def test_env_data_dir_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = make_mnist_dir(tmp_path / "from-env", suffix="")
    monkeypatch.setenv("ACTPROF_DATA_DIR", str(directory))
    ident = load_mnist(log=LogRecorder()).identity
    assert (ident.source, ident.location, ident.n_test) == ("env", str(directory), 20)


def test_explicit_data_dir_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTPROF_DATA_DIR", str(tmp_path / "missing"))
    directory = make_mnist_dir(tmp_path / "given")
    assert load_mnist(data_dir=directory, log=LogRecorder()).identity.source == "data-dir"


def _truncate_train_images(directory: Path) -> None:
    path = directory / f"{TRAIN_IMAGES}.gz"
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content[:-100]))


def _drop_one_train_label(directory: Path) -> None:
    write_idx(directory / f"{TRAIN_LABELS}.gz", read_idx(directory / f"{TRAIN_LABELS}.gz")[:-1])


def _label_out_of_range(directory: Path) -> None:
    labels = read_idx(directory / f"{TEST_LABELS}.gz")
    labels[3] = 10
    write_idx(directory / f"{TEST_LABELS}.gz", labels)


def _images_not_28x28(directory: Path) -> None:
    write_idx(directory / f"{TEST_IMAGES}.gz", np.zeros((20, 32, 32), dtype=np.uint8))


def _remove_test_labels(directory: Path) -> None:
    (directory / f"{TEST_LABELS}.gz").unlink()


BROKEN_DIRS = {
    "truncated image file": (_truncate_train_images, "truncated"),
    "image and label counts disagree": (_drop_one_train_label, "50 images but"),
    "label out of range": (_label_out_of_range, "label 10"),
    "images not 28x28": (_images_not_28x28, "expected \\(N, 28, 28\\)"),
    "a file missing": (_remove_test_labels, f"missing {TEST_LABELS}"),
}


@pytest.mark.parametrize(("breakage", "expected"), BROKEN_DIRS.values(), ids=BROKEN_DIRS.keys())
def test_broken_data_dir_is_an_error_without_fallback(
    tmp_path: Path, breakage: Callable[[Path], None], expected: str
) -> None:
    directory = make_mnist_dir(tmp_path / "mnist")
    breakage(directory)
    log = LogRecorder()
    with pytest.raises(DataError, match=expected) as caught:
        load_mnist(data_dir=directory, log=log)
    assert str(directory) in str(caught.value)
    assert "sample" not in log.text


def test_missing_or_empty_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(data_dir=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds none of the MNIST files"):
        load_mnist(data_dir=tmp_path / "empty")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_mnist(data_dir=tmp_path / "a-file")


def test_bad_env_data_dir_is_an_error_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTPROF_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="ACTPROF_DATA_DIR"):
        load_mnist(log=LogRecorder())


# --- cache, download, fallback ---------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACTPROF_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("ACTPROF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "actprof" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "actprof" / "mnist"


def test_cache_with_wrong_hashes_is_discarded_and_sample_used(tmp_path: Path) -> None:
    make_mnist_dir(cache_dir())
    log = LogRecorder()
    mnist = load_mnist(allow_download=False, log=log)
    assert mnist.identity.source == "sample"
    assert not any((cache_dir() / f"{stem}.gz").exists() for stem in STEMS)
    assert "sha256 mismatch" in log.text and "deleting" in log.text


def test_corrupt_cache_file_is_discarded(tmp_path: Path) -> None:
    cache_dir().mkdir(parents=True)
    (cache_dir() / f"{TRAIN_IMAGES}.gz").write_bytes(b"\x1f\x8bnot really gzip")
    assert load_mnist(log=LogRecorder()).identity.source == "sample"
    assert not (cache_dir() / f"{TRAIN_IMAGES}.gz").exists()


def test_offline_auto_uses_sample_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    pooch = pytest.importorskip("pooch")
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("tried to download while offline"))
    log = LogRecorder()
    assert load_mnist(allow_download=True, log=log).identity.source == "sample"
    assert "offline" in log.text


def test_full_without_any_source_is_an_error() -> None:
    with pytest.raises(DataError, match="--data-dir"):
        load_mnist(dataset="full", allow_download=False, log=LogRecorder())


def test_failed_download_falls_back_in_auto_and_fails_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    pooch = pytest.importorskip("pooch")
    monkeypatch.delenv("ACTPROF_OFFLINE")

    def no_network(url: str) -> Path:
        raise ConnectionError(f"no route to host for {url}")

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(no_network))
    log = LogRecorder()
    assert load_mnist(log=log).identity.source == "sample"
    assert "could not download MNIST (" in log.text and "using the bundled sample" in log.text
    with pytest.raises(DataError, match="could not download MNIST"):
        load_mnist(dataset="full", log=LogRecorder())


def test_download_with_wrong_content_is_rejected_and_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pooch = pytest.importorskip("pooch")
    monkeypatch.delenv("ACTPROF_OFFLINE")
    impostor = make_mnist_dir(tmp_path / "impostor")
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(lambda url: impostor / url.rsplit("/", 1)[1]))
    log = LogRecorder()
    assert load_mnist(log=log).identity.source == "sample"
    assert "sha256 mismatch" in log.text
    assert not cache_dir().exists() or not any(cache_dir().iterdir())


# --- helpers for training --------------------------------------------------------------------


def test_validation_split_is_fixed_sorted_and_complete() -> None:
    train, val = validation_split(1000)
    again_train, again_val = validation_split(1000)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(val, again_val)
    assert len(val) == 100 and len(train) == 900
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    assert not np.array_equal(validation_split(1000, seed=1)[1], val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_validation_split_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(UsageError):
        validation_split(100, fraction=fraction)


def test_to_tensor_scales_to_unit_range() -> None:
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    tensor = to_tensor(images)
    assert tuple(tensor.shape) == (1, 1, 2, 2)
    assert str(tensor.dtype) == "torch.float32" and tensor.is_contiguous()
    np.testing.assert_allclose(tensor.numpy().ravel(), [0.0, 1.0, 0.2, 0.4], rtol=1e-6)


# --- real full MNIST (only with ACTPROF_DATA_DIR) --------------------------------------------


def test_full_mnist_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = needs_full_mnist()
    monkeypatch.setenv("ACTPROF_DATA_DIR", str(directory))
    mnist = load_mnist(dataset="full", log=LogRecorder())
    ident = mnist.identity
    assert (ident.kind, ident.source) == ("full", "env")
    assert (ident.n_train, ident.n_test) == (60_000, 10_000)
    assert ident.train_label_counts == OFFICIAL_TRAIN_COUNTS
    assert ident.test_label_counts == OFFICIAL_TEST_COUNTS
    assert ident.sha256 == FULL_MNIST_SHA256


def test_full_mnist_download_is_verified_cached_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = needs_full_mnist()
    pooch = pytest.importorskip("pooch")
    monkeypatch.delenv("ACTPROF_OFFLINE")

    def first_mirror_down(url: str) -> Path:
        if url.startswith(MIRRORS[0]):
            raise TimeoutError("mirror timed out")
        return directory / url.rsplit("/", 1)[1]

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(first_mirror_down))
    downloaded = load_mnist(dataset="full", log=LogRecorder())
    assert downloaded.identity.source == "download"
    assert downloaded.identity.sha256 == FULL_MNIST_SHA256

    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("downloaded although cached"))
    cached = load_mnist(dataset="full", log=LogRecorder())
    assert (cached.identity.source, cached.identity.n_train) == ("cache", 60_000)


def test_bundled_sample_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    directory = needs_full_mnist()
    script = Path(__file__).resolve().parent.parent / "scripts" / "build_sample.py"
    spec = importlib.util.spec_from_file_location("build_sample", script)
    assert spec is not None and spec.loader is not None
    build_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_sample)
    build_sample.build_sample(directory, tmp_path / "rebuilt")
    for stem in STEMS:
        assert (tmp_path / "rebuilt" / f"{stem}.gz").read_bytes() == (SAMPLE_DIR / f"{stem}.gz").read_bytes()

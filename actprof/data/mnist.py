"""MNIST from a directory, the environment, the user cache, a verified download, or the bundled sample.

``load_mnist`` resolves the source in that order and says which one it used. Full MNIST from the cache or
a download is checked against the official sha256 of the decompressed files (gzip bytes differ between
mirrors); a directory the user names is only checked for structure, so other MNIST-format data works too.
A directory named explicitly never falls back to anything else: a problem with it is a ``DataError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actprof.data.config import DATASETS, DataSource
from actprof.data.idx import FIX_DIR, FIX_FILE, idx_sha256, one_line, read_idx
from actprof.errors import DataError, OutputError, UsageError
from actprof.schema.storage import user_cache, write_bytes_atomic
from actprof.schema.training import DatasetIdentity

if TYPE_CHECKING:
    import torch

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
STEMS = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# sha256 of the four *decompressed* official files (gzip bytes differ between mirrors).
OFFICIAL_SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
SAMPLE_DIR = Path(__file__).resolve().parent / "_data" / "mnist_sample"
SAMPLE_LOCATION = "actprof/_data/mnist_sample (bundled)"  # as records have always named it
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10


def combined_sha256(file_hashes: list[str]) -> str:
    """The dataset hash: sha256 over the four files' hex digests joined by newlines, in ``STEMS`` order."""
    return hashlib.sha256("\n".join(file_hashes).encode("ascii")).hexdigest()


FULL_MNIST_SHA256 = combined_sha256([OFFICIAL_SHA256[stem] for stem in STEMS])


@dataclass(frozen=True)
class MNIST:
    train_images: np.ndarray  # uint8 (N, 28, 28)
    train_labels: np.ndarray  # uint8 (N,), values 0..9
    test_images: np.ndarray
    test_labels: np.ndarray
    identity: DatasetIdentity


# --- locating the data -----------------------------------------------------------------------


def cache_dir() -> Path:
    """$ACTPROF_CACHE_DIR, else $XDG_CACHE_HOME/actprof/mnist, else ~/.cache/actprof/mnist."""
    return user_cache("mnist", override="ACTPROF_CACHE_DIR")


def _candidate_names(stem: str) -> list[str]:
    dotted = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte, as some mirrors name them
    return [f"{stem}.gz", stem, f"{dotted}.gz", dotted]


def _find_idx_file(directory: Path, stem: str) -> Path | None:
    for name in _candidate_names(stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _user_data_dir(data_dir: Path | None) -> tuple[Path, str, str] | None:
    """(directory, source, how the user named it) for an explicit directory, or None."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data-dir", "MNIST directory"
    if env_dir := os.environ.get("ACTPROF_DATA_DIR"):
        return Path(env_dir).expanduser(), "env", "ACTPROF_DATA_DIR directory"
    return None


# --- building the dataset --------------------------------------------------------------------


def _check_split(images: np.ndarray, labels: np.ndarray, split: str, where: str) -> None:
    image_name, label_name = (TRAIN_IMAGES, TRAIN_LABELS) if split == "train" else (TEST_IMAGES, TEST_LABELS)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SIZE:
        raise DataError(f"{where}: {image_name} has shape {images.shape}, expected (N, 28, 28); {FIX_DIR}")
    if labels.ndim != 1:
        raise DataError(f"{where}: {label_name} has shape {labels.shape}, expected (N,); {FIX_DIR}")
    if len(images) != len(labels):
        raise DataError(
            f"{where}: {image_name} holds {len(images):,} images but {label_name} holds "
            f"{len(labels):,} labels; the files do not belong together"
        )
    if len(images) == 0:
        raise DataError(f"{where}: {image_name} holds no images; {FIX_DIR}")
    if labels.max() >= NUM_CLASSES:
        raise DataError(f"{where}: {label_name} holds label {labels.max()}, expected 0..9; {FIX_DIR}")


def _assemble(arrays: dict[str, np.ndarray], *, kind: str, source: str, location: str) -> MNIST:
    _check_split(arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS], "train", location)
    _check_split(arrays[TEST_IMAGES], arrays[TEST_LABELS], "test", location)
    identity = DatasetIdentity(
        kind=kind,
        source=source,
        location=location,
        n_train=len(arrays[TRAIN_LABELS]),
        n_test=len(arrays[TEST_LABELS]),
        train_label_counts=np.bincount(arrays[TRAIN_LABELS], minlength=NUM_CLASSES).tolist(),
        test_label_counts=np.bincount(arrays[TEST_LABELS], minlength=NUM_CLASSES).tolist(),
        sha256=combined_sha256([idx_sha256(arrays[stem]) for stem in STEMS]),
    )
    return MNIST(
        train_images=arrays[TRAIN_IMAGES],
        train_labels=arrays[TRAIN_LABELS],
        test_images=arrays[TEST_IMAGES],
        test_labels=arrays[TEST_LABELS],
        identity=identity,
    )


def _load_directory(directory: Path, *, source: str, described_as: str) -> MNIST:
    where = f"{described_as} {directory}"
    if not directory.exists():
        raise DataError(f"{where} does not exist; {FIX_DIR}")
    if not directory.is_dir():
        raise DataError(f"{where} is not a directory; {FIX_DIR}")
    found = {stem: _find_idx_file(directory, stem) for stem in STEMS}
    missing = [f"{stem}.gz" for stem, path in found.items() if path is None]
    if len(missing) == len(STEMS):
        raise DataError(f"{where} holds none of the MNIST files ({', '.join(missing)}); {FIX_DIR}")
    if missing:
        raise DataError(f"{where} is missing {', '.join(missing)} (gzip or raw); {FIX_DIR}")
    arrays = {stem: read_idx(path) for stem, path in found.items() if path is not None}
    kind = "sample" if directory.resolve() == SAMPLE_DIR else "full"
    return _assemble(arrays, kind=kind, source=source, location=str(directory))


def _load_sample() -> MNIST:
    try:
        arrays = {stem: read_idx(SAMPLE_DIR / f"{stem}.gz") for stem in STEMS}
        return _assemble(arrays, kind="sample", source="sample", location=SAMPLE_LOCATION)
    except DataError as exc:
        raise DataError(f"the bundled MNIST sample is damaged ({exc}); reinstall actprof") from None


def _read_official(path: Path, stem: str) -> np.ndarray:
    array = read_idx(path)
    if idx_sha256(array) != OFFICIAL_SHA256[stem]:
        raise DataError(f"{path} is not the official {stem} (sha256 mismatch); {FIX_FILE}")
    return array


def _load_verified_cache(directory: Path, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """The cached files that verify; a corrupt one is deleted so that it is fetched again."""
    arrays: dict[str, np.ndarray] = {}
    for stem in STEMS:
        path = directory / f"{stem}.gz"
        if not path.is_file():
            continue
        try:
            arrays[stem] = _read_official(path, stem)
        except DataError as exc:
            log(f"MNIST cache: {exc}; deleting it")
            with contextlib.suppress(OSError):
                path.unlink()
    return arrays


# --- downloading -----------------------------------------------------------------------------


class _FullUnavailable(Exception):
    """Full MNIST is neither cached nor downloadable; ``note`` is the short form for the sample's log line."""

    def __init__(self, reason: str, *, note: str, download_failed: bool = False) -> None:
        super().__init__(reason)
        self.note = note
        self.download_failed = download_failed


def _downloads_disabled_reason(allow_download: bool) -> str | None:
    if not allow_download:
        return "downloads disabled"
    if os.environ.get("ACTPROF_OFFLINE") == "1":
        return "ACTPROF_OFFLINE=1"
    return None


def _download_verified(stems: list[str], log: Callable[[str], None]) -> dict[str, tuple[np.ndarray, bytes]]:
    """Download and verify each file, trying the mirrors in order; (array, gzip bytes) per stem."""
    import pooch

    show_progress = sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None
    downloader = pooch.HTTPDownloader(timeout=30, progressbar=show_progress)
    logger = pooch.get_logger()
    previous_level = logger.level
    logger.setLevel("WARNING")  # pooch logs each URL and a known_hash hint; we verify the content ourselves
    try:
        with tempfile.TemporaryDirectory(prefix="actprof-mnist-") as tmp:
            return {stem: _download_one(stem, Path(tmp), pooch.retrieve, downloader, log) for stem in stems}
    finally:
        logger.setLevel(previous_level)


def _download_one(
    stem: str, tmp: Path, retrieve: Callable[..., str], downloader: object, log: Callable[[str], None]
) -> tuple[np.ndarray, bytes]:
    failures = []
    for number, mirror in enumerate(MIRRORS):
        url = f"{mirror}{stem}.gz"
        log(f"MNIST: downloading {url}")
        try:
            # One folder per mirror: with known_hash=None pooch would reuse a rejected file of the same name.
            fetched = Path(
                retrieve(
                    url,
                    known_hash=None,
                    fname=f"{stem}.gz",
                    path=tmp / f"mirror{number}",
                    downloader=downloader,
                )
            )
            return _read_official(fetched, stem), fetched.read_bytes()
        # The network boundary: requests, urllib3 and pooch raise many types; each one means "try the next".
        except Exception as exc:
            failures.append(f"{url}: {one_line(exc)}")
    raise _FullUnavailable(
        f"could not download MNIST ({'; '.join(failures)})", note="download failed", download_failed=True
    )


def _store_in_cache(
    directory: Path, downloaded: dict[str, tuple[np.ndarray, bytes]], log: Callable[[str], None]
) -> None:
    try:
        for stem, (_, compressed) in downloaded.items():
            write_bytes_atomic(directory / f"{stem}.gz", compressed)
    except OutputError as exc:
        log(f"MNIST: could not cache the download ({exc}); it will be downloaded again next time")


def _full_from_cache_or_download(allow_download: bool, log: Callable[[str], None]) -> MNIST:
    directory = cache_dir()
    arrays = _load_verified_cache(directory, log)
    missing = [stem for stem in STEMS if stem not in arrays]
    if not missing:
        return _assemble(arrays, kind="full", source="cache", location=str(directory))
    if (disabled := _downloads_disabled_reason(allow_download)) is not None:
        raise _FullUnavailable(f"not in the cache {directory} and offline ({disabled})", note="offline")
    downloaded = _download_verified(missing, log)
    _store_in_cache(directory, downloaded, log)
    arrays.update({stem: array for stem, (array, _) in downloaded.items()})
    return _assemble(arrays, kind="full", source="download", location=str(directory))


# --- the entry point -------------------------------------------------------------------------


def load_mnist(
    *,
    data_dir: Path | None = None,
    dataset: str = "auto",
    allow_download: bool = True,
    log: Callable[[str], None] = print,
) -> MNIST:
    """MNIST from data_dir / ACTPROF_DATA_DIR / the cache / a verified download / the bundled sample."""
    if dataset not in DATASETS:
        raise UsageError(f"unknown --dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if dataset == "sample":
        return _announce(_load_sample(), log, note="as requested")
    if (user := _user_data_dir(data_dir)) is not None:
        directory, source, described_as = user
        return _announce(_load_directory(directory, source=source, described_as=described_as), log)
    try:
        return _announce(_full_from_cache_or_download(allow_download, log), log)
    except _FullUnavailable as unavailable:
        if dataset == "full":
            raise DataError(f"full MNIST is not available: {unavailable}; {FIX_DIR}") from None
        if unavailable.download_failed:
            log(f"{unavailable}; using the bundled sample")
        return _announce(_load_sample(), log, note=f"{unavailable.note}; pass --data-dir for full MNIST")


def _announce(mnist: MNIST, log: Callable[[str], None], *, note: str = "") -> MNIST:
    ident = mnist.identity
    sizes = f"{ident.n_train:,} train / {ident.n_test:,} test"
    if ident.source == "sample":
        log(f"MNIST: bundled sample ({sizes}) — {note}")
    else:
        log(f"MNIST: {ident.kind}, {sizes}, from {ident.location} ({ident.source})")
    return mnist


# --- helpers for training --------------------------------------------------------------------


def validation_split(n: int, *, fraction: float = 0.1, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Fixed, sorted (train_idx, val_idx); depends only on n, fraction and seed, not on the training seed."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    if n < 2:
        raise UsageError(f"cannot split {n} example(s) into training and validation sets; need at least 2")
    n_val = min(n - 1, max(1, round(n * fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> contiguous float32 (N, 1, H, W) in [0, 1]."""
    import torch

    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    scaled = images.astype(np.float32)
    scaled /= 255.0
    return torch.from_numpy(scaled.reshape(len(images), 1, *images.shape[1:]))


def load(source: DataSource, log: Callable[[str], None] = print) -> MNIST:
    """MNIST from where ``source`` says (``load_mnist``)."""
    return load_mnist(data_dir=source.data_dir, dataset=source.dataset, log=log)

"""Rebuild the bundled MNIST sample: a reproducible, stratified 8,000 / 2,000 subset of official MNIST.

    python scripts/build_sample.py [--source DIR] [--out DIR]

The source must be the official MNIST (checked against its sha256). Within each class the chosen indices
keep their original order, and the gzip files carry mtime=0, so the same source gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing actprof

from actprof.data.idx import write_idx  # noqa: E402
from actprof.data.mnist import (  # noqa: E402
    FULL_MNIST_SHA256,
    NUM_CLASSES,
    SAMPLE_DIR,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    load_mnist,
)
from actprof.errors import ActprofError, DataError  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "mnist"
SEED = 20_240_601
TRAIN_PER_CLASS = 800
TEST_PER_CLASS = 200
MAX_TOTAL_BYTES = 2_500_000


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each class, returned in their original (ascending) order."""
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(NUM_CLASSES)]
    if any(len(indices) < per_class for indices in chosen):
        raise DataError(f"the source has fewer than {per_class} examples of some class; use full MNIST")
    return np.sort(np.concatenate(chosen))


def build_sample(source: Path, out: Path) -> int:
    """Write the four sample files into ``out``; returns their total size in bytes."""
    mnist = load_mnist(data_dir=source, dataset="full", allow_download=False)
    if mnist.identity.sha256 != FULL_MNIST_SHA256:
        raise DataError(f"{source} is not the official MNIST (sha256 mismatch); point --source at it")
    rng = np.random.default_rng(SEED)
    train = stratified_indices(mnist.train_labels, TRAIN_PER_CLASS, rng)
    test = stratified_indices(mnist.test_labels, TEST_PER_CLASS, rng)
    files = {
        TRAIN_IMAGES: mnist.train_images[train],
        TRAIN_LABELS: mnist.train_labels[train],
        TEST_IMAGES: mnist.test_images[test],
        TEST_LABELS: mnist.test_labels[test],
    }
    for stem, array in files.items():
        write_idx(out / f"{stem}.gz", array)
    return sum((out / f"{stem}.gz").stat().st_size for stem in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with official MNIST")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="where to write the sample")
    args = parser.parse_args(argv)
    try:
        total = build_sample(args.source, args.out)
    except ActprofError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {args.out}: {total:,} bytes")
    if total > MAX_TOTAL_BYTES:
        print(f"error: the sample exceeds {MAX_TOTAL_BYTES:,} bytes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check what is computed, never how fast: a per-example deadline fails them on a busy machine.
settings.register_profile("actprof", deadline=None)
settings.load_profile("actprof")

# Tests never download (the bundled sample or ACTPROF_DATA_DIR only), and never touch the user's cache: the
# kernels, the graph store and MNIST's cache live in a directory of this session (subprocesses inherit it).
os.environ["ACTPROF_OFFLINE"] = "1"
CACHE = Path(tempfile.mkdtemp(prefix="actprof-tests-cache-"))
os.environ["XDG_CACHE_HOME"] = str(CACHE)
for variable, name in (
    ("ACTPROF_KERNEL_DIR", "kernels"),
    ("ACTPROF_GRAPH_DIR", "graphs"),
    ("ACTPROF_CACHE_DIR", "mnist"),
):
    os.environ[variable] = str(CACHE / "actprof" / name)

from actprof import activations  # noqa: E402  (after the cache is moved)
from actprof.data import mnist as data  # noqa: E402
from tests.helpers import FAST, train_and_export  # noqa: E402


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def sample() -> data.MNIST:
    return data.load_mnist(dataset="sample", log=lambda _m: None)


@pytest.fixture(scope="session")
def full_mnist_dir() -> Path:
    value = os.environ.get("ACTPROF_DATA_DIR")
    if not value:
        pytest.skip("ACTPROF_DATA_DIR not set: full-MNIST test skipped (.ci/run sets it)")
    return Path(value)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory, sample):
    """Every activation trained briefly on the bundled sample and exported: {name: record}, and the dir."""

    out = tmp_path_factory.mktemp("models")
    records = {act.name: train_and_export(act, FAST, sample, out) for act in activations.ACTIVATIONS.values()}
    return out, records

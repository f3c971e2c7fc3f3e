from __future__ import annotations

import os
from pathlib import Path

import pytest

from actprof import activations, data, pipeline
from actprof.model import config_for
from tests.helpers import FAST

# Tests never download: the bundled sample or ACTPROF_DATA_DIR only.
os.environ["ACTPROF_OFFLINE"] = "1"


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
    records = {
        act.name: pipeline.train_and_export(act, config_for(act), FAST, sample, out_dir=out)
        for act in activations.ACTIVATIONS.values()
    }
    return out, records

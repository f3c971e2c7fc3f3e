"""``--inputs FILE.npz``: real values for a model's inputs, read without pickle and checked against what the
model declares (names, element kinds, ranks, fixed dimensions) and against each other (as many samples each,
one size per named dimension) before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actprof.errors import ModelFileError, UsageError
from actprof.measure.declared import Declared, check_named_sizes

KINDS = {"f": "float", "c": "float", "i": "integer", "u": "integer", "b": "boolean"}


def load_arrays(path: Path, declared: list[Declared]) -> dict[str, np.ndarray]:
    """{input name: array} from the archive. A one-input model takes its only array whatever its name; with
    several inputs each array is named like the input it feeds, and inputs without one get other values."""
    archive = _read(path)
    names = [d.name for d in declared]
    if len(declared) == 1 and len(archive) == 1:
        archive = {names[0]: next(iter(archive.values()))}
    stray = sorted(set(archive) - set(names))
    if stray:
        raise UsageError(
            f"{path}: array {stray[0]!r} is named like no input of the model (its inputs: {', '.join(names)})"
        )
    given = [spec for spec in declared if spec.name in archive]
    for spec in given:
        _check(path, spec, archive[spec.name])
    _check_samples(path, given, archive)
    check_named_sizes([(spec.name, spec, archive[spec.name].shape) for spec in given], prefix=f"{path}: ")
    return archive


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise UsageError(f"{path} holds a single array; --inputs takes an .npz archive (np.savez)")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, TypeError) as exc:
        raise ModelFileError(f"{path} is not a readable .npz of arrays ({str(exc).splitlines()[0][:80]})") from None


def _check(path: Path, spec: Declared, array: np.ndarray) -> None:
    wanted, got = KINDS.get(spec.dtype.kind, spec.dtype.kind), KINDS.get(array.dtype.kind, array.dtype.kind)
    if wanted != got and not (wanted == "boolean" and got == "integer"):
        raise UsageError(f"{path}: {spec.name} holds {array.dtype} values, the model's input is {spec.dtype}")
    if array.ndim != len(spec.dims):
        raise UsageError(
            f"{path}: {spec.name} has {array.ndim} dimensions {tuple(array.shape)}, the model's input has "
            f"{len(spec.dims)} {spec.shown}"
        )
    for axis, (size, dim) in enumerate(zip(array.shape, spec.dims, strict=True)):
        if axis == spec.batch_axis:
            if size == 0:
                raise UsageError(f"{path}: {spec.name} holds no sample")
        elif isinstance(dim, int) and size != dim:
            raise UsageError(f"{path}: {spec.name} has shape {tuple(array.shape)}, the model's input is {spec.shown}")


def _check_samples(path: Path, given: list[Declared], archive: dict[str, np.ndarray]) -> None:
    """Every array holds as many samples: sample i of one input goes with sample i of the others."""
    counts = [(spec.name, archive[spec.name].shape[spec.batch_axis]) for spec in given if spec.batch_axis is not None]
    for name, count in counts[1:]:
        if count != counts[0][1]:
            raise UsageError(
                f"{path}: {counts[0][0]} holds {counts[0][1]} samples and {name} {count}; give every input as many"
            )

"""The inputs ``swap`` feeds any network: every input's shape per batch size and the values it gets.

A model may read several inputs: an image, token ids with an attention mask, an audio frame with a recurrent
state and a sample rate. Each input gets a shape (declared, or ``--input-shape name=…`` for free dimensions;
the batch dimension follows ``--batch-sizes``) and values, first rule that applies:

1. ``--inputs FILE.npz``: the array named like the input (a one-input model takes the only array);
2. ``--input-value name=V``: every element V (a sample rate, a flag, a zero initial state);
3. a float input: random normal with the seed (a recurrent state too);
4. an integer input that indexes an embedding table (a Gather of an initializer): token ids below the table's
   rows, or below ``--vocab-size name=N`` where given;
5. an integer or boolean input named like a mask: ones.

An input no rule covers is refused in one line naming it. Sizes are checked before anything is allocated.
``inputs_files`` reads and checks the .npz; ``declared`` declares the model at each batch's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from actprof.errors import UsageError
from actprof.measure.declared import Declared, check_named_sizes, declared_inputs, embedding_rows
from actprof.measure.inputs_files import load_arrays

MAX_INPUT_BYTES = 1 << 30  # a batch of inputs larger than this is refused before it is allocated
MASK_WORDS = ("mask",)


@dataclass(frozen=True)
class Feed:
    """One input, resolved: its shape at each batch size and where its values come from."""

    name: str
    shapes: dict[int, tuple[int, ...]]  # batch size -> shape
    dtype: np.dtype
    source: str  # in words: "random normal, seed 0", "token ids < 30522 (rows of emb.weight)", "ones (a mask)"…
    batch_axis: int | None  # None: the input has no batch dimension (a scalar, a fixed-size state)
    high: int | None = None  # token ids: exclusive upper bound
    value: float | None = None  # every element this
    given: np.ndarray | None = None  # from --inputs, samples along batch_axis

    def values(self, batch: int, seed: int, draw: int = 0) -> np.ndarray:
        shape = self.shapes[batch]
        if self.given is not None:
            return self._from_given(shape, draw)
        if self.value is not None:
            return np.full(shape, self.value, dtype=self.dtype)
        rng = np.random.default_rng(seed)
        if self.high is not None:
            return rng.integers(0, self.high, size=shape).astype(self.dtype)
        if self.dtype.kind in "iub":
            return np.ones(shape, dtype=self.dtype)
        return rng.standard_normal(shape).astype(self.dtype)

    def _from_given(self, shape: tuple[int, ...], draw: int) -> np.ndarray:
        """``size`` samples of the given ones, from sample ``draw · size`` on, wrapping around."""
        given = self.given
        assert given is not None
        if self.batch_axis is None:
            return np.require(given.astype(self.dtype), requirements="C")  # a scalar stays 0-d
        size, count = shape[self.batch_axis], given.shape[self.batch_axis]
        picked = [(draw * size + i) % count for i in range(size)]
        return np.ascontiguousarray(np.take(given, picked, axis=self.batch_axis).astype(self.dtype))


@dataclass(frozen=True)
class Inputs:
    """Every input the model reads, resolved; ``output``: the output compared and timed (the first)."""

    feeds: tuple[Feed, ...]
    output: str
    seed: int
    fixed_batch: int | None = None  # the batch the model declares, where it declares one
    reshaped: bool = False  # --input-shape overrode a declared shape

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.feeds]

    @property
    def given_samples(self) -> int:
        """How many samples ``--inputs`` gave (the most of any input; 0 where none was given)."""
        counts = [f.given.shape[f.batch_axis] for f in self.feeds if f.given is not None and f.batch_axis is not None]
        return max(counts, default=0)

    def batch(self, size: int, draw: int = 0) -> dict[str, np.ndarray]:
        """One feed per input at batch ``size``; ``draw`` picks other random values (same shapes)."""
        return {f.name: f.values(size, self.seed + 1000 * draw + k, draw) for k, f in enumerate(self.feeds)}


def parse_input_shape(spec: str | None) -> dict[str, tuple[int, ...]]:
    """``name=1x3x224x224`` (comma-separated, or the option repeated, for several inputs) → {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in (s.strip() for s in (spec or "").split(",") if s.strip()):
        name, _, dims = item.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not name or not shape or any(d < 1 for d in shape):
            raise UsageError(f"--input-shape must look like name=1x3x224x224, got {item!r}")
        _put(shapes, name, shape, "--input-shape", lambda dims: "x".join(map(str, dims)))
    return shapes


def parse_named_numbers(spec: str | None, option: str, *, integer: bool = False) -> dict[str, float]:
    """``name=16000,other=0`` → {name: value} (``--input-value``, ``--vocab-size``)."""
    values: dict[str, float] = {}
    for item in (s.strip() for s in (spec or "").split(",") if s.strip()):
        name, _, number = item.rpartition("=")
        try:
            value = int(number) if integer else float(number)
        except ValueError:
            value = None
        if not name or value is None or (integer and value < 1) or not np.isfinite(value):
            kind = "a positive integer" if integer else "a number"
            raise UsageError(f"{option} must look like name=VALUE with {kind}, got {item!r}")
        _put(values, name, value, option, lambda number: f"{number:g}")
    return values


def _put(parsed: dict, name: str, value, option: str, show: Callable[[Any], str]) -> None:
    """One value per name: the option may be repeated (or comma-separated), but never disagree with itself."""
    if name in parsed and parsed[name] != value:
        raise UsageError(f"{option} gives {name} twice, {show(parsed[name])} and {show(value)}; give it once")
    parsed[name] = value


@dataclass(frozen=True)
class Choices:
    """What the user said about the inputs (``--input-shape``, ``--input-value``, ``--vocab-size``, ``--inputs``)."""

    shapes: dict[str, tuple[int, ...]]
    values: dict[str, float]
    vocab: dict[str, float]
    inputs_file: Path | None
    seed: int


def resolve_inputs(model: onnx.ModelProto, batch_sizes: list[int], choices: Choices) -> Inputs:
    """Every input the model reads with a shape per batch size and a source of values (refusing what cannot
    be fed, in one line naming the input)."""
    declared = declared_inputs(model)
    names = [d.name for d in declared]
    named_options = {"--input-shape": choices.shapes, "--input-value": choices.values, "--vocab-size": choices.vocab}
    for option, given in named_options.items():
        _check_names(option, given, names)
    fixed = _fixed_batch(declared)
    if fixed is not None and any(b != fixed for b in batch_sizes) and not choices.shapes:
        raise UsageError(
            f"input {declared[0].name!r} has a fixed batch of {fixed}; use --batch-sizes {fixed}, or "
            f"--input-shape {declared[0].name}=Bx… to run it at other batch sizes if the model allows"
        )
    arrays = load_arrays(choices.inputs_file, declared) if choices.inputs_file else {}
    named = _named_sizes(declared, choices.shapes, arrays)
    feeds = tuple(_feed(model, d, batch_sizes, choices, arrays.get(d.name), named) for d in declared)
    _check_shared_sizes(declared, feeds, batch_sizes[0], choices)
    largest = max(sum(int(np.prod(f.shapes[b])) * f.dtype.itemsize for f in feeds) for b in batch_sizes)
    if largest > MAX_INPUT_BYTES:
        raise UsageError(f"the largest input batch would take {largest / 2**30:.1f} GiB; use smaller --batch-sizes")
    reshaped = any(d.name in choices.shapes for d in declared)
    return Inputs(feeds, model.graph.output[0].name, choices.seed, fixed, reshaped)


def _check_names(option: str, given: dict, names: list[str]) -> None:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UsageError(f"{option} names {', '.join(unknown)}, but the model's inputs are {', '.join(names)}")


def _check_shared_sizes(declared: list[Declared], feeds: tuple[Feed, ...], batch: int, choices: Choices) -> None:
    """A named dimension (``sequence`` in the token ids and their mask) has one size in every input shaped by
    ``--input-shape`` or given in the .npz, and an input given both ways gets one shape: what the runtime
    would refuse later. The other inputs take their sizes from these."""
    shaped = []
    for spec, feed in zip(declared, feeds, strict=True):
        if spec.name not in choices.shapes and feed.given is None:
            continue
        where = "--input-shape" if spec.name in choices.shapes else Path(str(choices.inputs_file)).name
        shape = feed.shapes[batch]
        if feed.given is not None and spec.name in choices.shapes:
            _check_given_shape(spec.name, shape, feed, choices.inputs_file)
        shaped.append((f"{spec.name} ({where})", spec, shape))
    check_named_sizes(shaped)


def _check_given_shape(name: str, shape: tuple[int, ...], feed: Feed, inputs_file: Path | None) -> None:
    assert feed.given is not None
    axis = feed.batch_axis
    if [d for i, d in enumerate(feed.given.shape) if i != axis] != [d for i, d in enumerate(shape) if i != axis]:
        raise UsageError(
            f"--input-shape {name}={'x'.join(map(str, shape))} does not match its array in {inputs_file}, shaped "
            f"{'x'.join(map(str, feed.given.shape))}; leave one of them out"
        )


def _fixed_batch(declared: list[Declared]) -> int | None:
    first = declared[0].dims
    return first[0] if first and isinstance(first[0], int) else None


def _named_sizes(
    declared: list[Declared], shapes: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray]
) -> dict[str, int]:
    """Sizes of named free dimensions, read off the shapes given: ``--input-shape input_ids=1x128`` sets
    ``sequence`` = 128 for the attention mask and the token types too."""
    sizes: dict[str, int] = {}
    for spec in declared:
        shape = shapes.get(spec.name) or (arrays[spec.name].shape if spec.name in arrays else None)
        if shape is not None and len(shape) == len(spec.dims):
            for axis, (dim, size) in enumerate(zip(spec.dims, shape, strict=True)):
                if isinstance(dim, str) and axis != spec.batch_axis:
                    sizes.setdefault(dim, int(size))
    return sizes


def _feed(
    model: onnx.ModelProto,
    spec: Declared,
    batch_sizes: list[int],
    choices: Choices,
    given: np.ndarray | None,
    named: dict[str, int],
) -> Feed:
    shapes, axis = _shapes(spec, batch_sizes, choices.shapes.get(spec.name), given, named)
    common = {"name": spec.name, "shapes": shapes, "dtype": spec.dtype, "batch_axis": axis}
    if given is not None:
        _check_token_ids(model, spec, given, choices)
        return Feed(**common, source=f"{Path(str(choices.inputs_file)).name} (given)", given=given)
    if spec.name in choices.values:
        value = choices.values[spec.name]
        if spec.dtype.kind in "iub" and value != int(value):
            raise UsageError(f"--input-value {spec.name}={value:g}: the input is {spec.dtype}, give an integer")
        return Feed(**common, source=f"{value:g} (--input-value)", value=value)
    if spec.dtype.kind in "fc":
        return Feed(**common, source=f"random normal, seed {choices.seed}")
    bound = _token_bound(model, spec, choices.vocab.get(spec.name))
    if bound is not None:
        return Feed(**common, source=f"token ids < {bound[0]} ({bound[1]})", high=bound[0])
    if any(word in spec.name.lower() for word in MASK_WORDS):
        return Feed(**common, source="ones (a mask)")
    raise UsageError(
        f"input {spec.name!r} ({spec.dtype}, shape {spec.shown}) needs values: give --input-value {spec.name}=…, "
        f"--vocab-size {spec.name}=N for token ids, or --inputs FILE.npz"
    )


def _token_bound(model: onnx.ModelProto, spec: Declared, vocab: float | None) -> tuple[int, str] | None:
    """The exclusive bound of an input's token ids and where it comes from: ``--vocab-size`` where given (no
    larger than the rows of the table the input indexes), else those rows. None: no bound is known."""
    rows = embedding_rows(model, spec.name)
    if vocab is not None and rows is not None and vocab > rows[0]:
        raise UsageError(
            f"--vocab-size {spec.name}={vocab:g} is larger than the {rows[0]} rows of {rows[1]} it indexes"
        )
    if vocab is not None:
        return int(vocab), "--vocab-size"
    return (rows[0], f"rows of {rows[1]}") if rows is not None else None


def _check_token_ids(model: onnx.ModelProto, spec: Declared, given: np.ndarray, choices: Choices) -> None:
    """Token ids from ``--inputs`` stay below the table's rows and ``--vocab-size``, and are not negative."""
    bound = _token_bound(model, spec, choices.vocab.get(spec.name))
    if bound is None or not given.size:
        return
    high, where = bound
    if given.min() < 0 or given.max() >= high:
        bad = int(given.max() if given.max() >= high else given.min())
        raise UsageError(
            f"{choices.inputs_file}: {spec.name} holds token id {bad}, outside the vocabulary of {high} ({where})"
        )


def _shapes(
    spec: Declared,
    batch_sizes: list[int],
    shape: tuple[int, ...] | None,
    given: np.ndarray | None,
    named: dict[str, int],
) -> tuple[dict[int, tuple[int, ...]], int | None]:
    """The input's shape at each batch size (from --input-shape, the declared dimensions, or the arrays
    given for it), and which axis is the batch."""
    axis = spec.batch_axis
    base = shape
    if base is None and given is not None:
        base = tuple(batch_sizes[0] if i == axis else d for i, d in enumerate(given.shape))
    if base is None:
        dims = [named.get(d, d) if isinstance(d, str) else d for d in spec.dims]
        free = [i for i, d in enumerate(dims) if not isinstance(d, int) and i != axis]
        if free:
            raise UsageError(f"input {spec.name!r} has free dimensions {spec.shown}; give --input-shape {spec.name}=…")
        base = tuple(batch_sizes[0] if i == axis else d for i, d in enumerate(dims))  # type: ignore[misc]
    if len(base) != len(spec.dims):
        raise UsageError(
            f"--input-shape {spec.name} has {len(base)} dimensions, the model's input has {len(spec.dims)}"
        )
    if axis is None:
        return {b: tuple(base) for b in batch_sizes}, None
    return {b: tuple(b if i == axis else d for i, d in enumerate(base)) for b in batch_sizes}, axis

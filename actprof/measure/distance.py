"""How far each swapped variant's output moves from the original's, on the inputs swap feeds.

Every variant and the original run on ONNX Runtime's CPU provider at fp32 (the reference every other runtime is
checked against) over the same inputs (``SAMPLES`` draws, or every real input ``--inputs`` gave): max and mean
|Δ|, the relative size of Δ, and, where the output is class scores (batch × classes), how often the top class
stays the same. Not retrained: this is what the swap costs in outputs before any fine-tuning would win it back.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from actprof import runtimes
from actprof.errors import ActprofError, ModelFileError
from actprof.measure.inputs import Inputs
from actprof.runtimes.base import first_line
from actprof.schema.swap import OutputDistance

SAMPLES = 32  # inputs compared per variant: enough for argmax agreement in steps of ~3%
MAX_GIVEN = 1024  # real inputs (--inputs) compared, at most
RUNTIME, PRECISION = "cpu", "fp32"


def output_distances(
    variants: dict[str, bytes], inputs: Inputs, batch: int, *, say: Callable[[str], None] = lambda _m: None
) -> dict[str, OutputDistance]:
    """{variant: its distance from "original"} for every variant but the original; ``variants`` are declared
    at ``batch``'s shapes."""
    samples = max(SAMPLES, min(inputs.given_samples, MAX_GIVEN))  # every real input given, up to a bound
    draws = max(1, -(-samples // batch))
    feeds = [inputs.batch(batch, draw=k) for k in range(draws)]
    say(f"comparing outputs: {len(variants) - 1} variant(s) on {draws * batch} inputs")
    reference = _outputs("original", variants["original"], feeds, inputs.output)
    return {
        name: distance(reference, _outputs(name, data, feeds, inputs.output), output=inputs.output)
        for name, data in variants.items()
        if name != "original"
    }


def site_sizes(model: onnx.ModelProto, names: list[str], feed: dict[str, np.ndarray]) -> dict[str, int]:
    """Elements of each named tensor in one run at ``feed``'s shapes (each made a graph output): exact where
    shape inference stops at a computed Reshape, as in every exported transformer. Empty where it fails."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in present)
    backend = runtimes.backend(RUNTIME)
    try:
        session = backend.load(probe.SerializeToString(), opt_level="disabled", precision=PRECISION)
        values = session.run(names, feed)
    except Exception:  # sizes are a courtesy: the tables say "unknown"
        return {}
    return {name: int(np.size(value)) for name, value in zip(names, values, strict=True)}


def _outputs(name: str, model: bytes, feeds: list[dict[str, np.ndarray]], output: str) -> np.ndarray:
    backend = runtimes.backend(RUNTIME)
    outputs = []
    try:
        loaded = backend.load(model, opt_level="all", precision=PRECISION)
        for feed in feeds:
            target = backend.compute_target(loaded, feed, output_name=output)
            outputs.append(np.asarray(target.output(), dtype=np.float64))
    except ActprofError:
        raise
    except Exception as exc:  # ORT raises its own types, with the cause in the first line
        raise ModelFileError(
            f"{name}: ONNX Runtime cannot run it to compare outputs ({first_line(exc)[:160]})"
        ) from None
    return np.concatenate(outputs) if outputs[0].ndim else np.stack(outputs)


def distance(reference: np.ndarray, variant: np.ndarray, *, output: str) -> OutputDistance:
    """The distance of ``variant`` from ``reference`` (same shape, samples first). An output that is not finite
    (a swap that overflows) counts as infinitely far: the record holds the largest float, JSON has no inf."""
    with np.errstate(all="ignore"):
        delta = np.nan_to_num(np.abs(variant - reference), nan=np.inf)
        norm = float(np.linalg.norm(reference))
        relative = float(np.linalg.norm(delta)) / norm if norm else float(np.linalg.norm(delta))
    scores = _class_scores(reference)
    agreement = float(np.mean(scores.argmax(1) == _class_scores(variant).argmax(1))) if scores is not None else None
    return OutputDistance(
        output=output,
        samples=len(reference) if reference.ndim else 1,
        runtime=f"{RUNTIME} {PRECISION}",
        max_abs=_finite(delta.max()) if delta.size else 0.0,
        mean_abs=_finite(delta.mean()) if delta.size else 0.0,
        relative=_finite(relative),
        argmax_agreement=agreement,
    )


def _class_scores(output: np.ndarray) -> np.ndarray | None:
    """The output as samples × classes where it is one score per class (N×C, or N×C×1×1 from a convolutional
    classifier); None otherwise (a detector's grid, a sequence of hidden states)."""
    if output.ndim < 2 or sum(d > 1 for d in output.shape[1:]) != 1:
        return None
    return output.reshape(len(output), -1)


def _finite(value: float) -> float:
    return float(min(value, np.finfo(np.float64).max))

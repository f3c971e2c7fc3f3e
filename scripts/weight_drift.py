"""How far apart are the models of two captures (``scripts/same_records.py capture``)? For a change meant to move
only the last bits of trained weights (an order of summation, say).

    python scripts/weight_drift.py A B

Per trained model (``models*/<name>.onnx``): the largest weight difference against the largest weight, and
the test accuracy (PyTorch's, and the ONNX model's in ONNX Runtime) on each side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


def weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    print(f"{'model':<34} {'max |Δw| / max |w|':>20} {'test acc A → B':>18} {'ONNX acc A → B':>18}")
    worst = 0.0
    for path in sorted(args.a.glob("models*/*.onnx")):
        other = args.b / path.relative_to(args.a)
        if not other.exists():
            continue
        wa, wb = weights(path), weights(other)
        scale = max(float(np.abs(w).max()) for w in wa.values())
        drift = max(float(np.abs(wa[name] - wb[name]).max()) for name in wa) / scale
        worst = max(worst, drift)
        ra, rb = (json.loads(p.with_suffix(".json").read_text()) for p in (path, other))
        test = f"{100 * ra['train']['test_accuracy']:.2f} → {100 * rb['train']['test_accuracy']:.2f}"
        exported = f"{100 * ra['export']['onnx_test_accuracy']:.2f} → {100 * rb['export']['onnx_test_accuracy']:.2f}"
        print(f"{path.relative_to(args.a)!s:<34} {drift:>20.2e} {test:>18} {exported:>18}")
    print(f"largest relative weight difference: {worst:.2e}")


if __name__ == "__main__":
    main()

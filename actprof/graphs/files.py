"""ONNX files that may come from anywhere, loaded safely: external data must stay inside the model's directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from actprof.errors import ModelFileError

if TYPE_CHECKING:
    import onnx


def load_model_file(path: Path) -> onnx.ModelProto:
    """Load an ONNX file that may come from anywhere: external data must stay inside its directory."""
    import onnx
    from onnx import external_data_helper

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file; pass the path of an .onnx model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf raises several unrelated types for garbage input
        raise ModelFileError(f"{path} is not a valid ONNX model; re-export it with actprof train-export") from None
    base = path.parent.resolve()
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise ModelFileError(
                f"{path} points its weights at {location!r}, outside its directory or missing; refusing to load it"
            )
    if any(external_data_helper.uses_external_data(t) for t in external_data_helper._get_all_tensors(proto)):
        external_data_helper.load_external_data_for_model(proto, str(base))
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelFileError(f"{path} fails the ONNX checker ({str(exc).splitlines()[0]}); re-export it") from None
    return proto

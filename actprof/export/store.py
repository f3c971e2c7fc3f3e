"""The graph store: each exported graph kept, without its weights, so that later runs write weights into it
instead of exporting again (``reuse_or_export``; ``ACTPROF_GRAPH_DIR`` moves it, deleting it is always safe)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.errors import OutputError
from actprof.export.exporter import to_onnx
from actprof.schema.environment import package_version
from actprof.schema.storage import user_cache, write_bytes_atomic
from actprof.settings.training import ModelConfig

if TYPE_CHECKING:
    import onnx
    import torch


# The last graph exported per (network config, opset, exporter), in this process (and so per Ray worker).
_TEMPLATES: dict[tuple, onnx.ModelProto] = {}


def reuse_or_export(model: torch.nn.Module, *, opset: int, exporter: str) -> onnx.ModelProto:
    """``to_onnx``, paid once per network: the seeds and learning rates of one (activation, network)
    share a graph and differ only in weights, so later runs copy the first run's graph and write their
    own parameters into it (0.4-1.2 s → ~5 ms). The graph is kept in this process and, without its
    weights, in the user's cache for later processes (`template_path`). Used only where the graph holds
    every parameter as an initializer of the same name and shape, which makes the result the bytes a
    fresh export gives (tested); the parity check that follows guards every run either way.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):  # not one of actprof's networks (a user's own): export it afresh
        return to_onnx(model, opset=opset, exporter=exporter)
    key = (config, getattr(model, "lean", False), getattr(model, "pool_first", False), opset, exporter)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _stored_template(key, model)
    if template is not None:
        _remember(key, template)
        return with_parameters(template, model)
    proto = to_onnx(model, opset=opset, exporter=exporter)
    if holds_every_parameter(proto, model):
        _remember(key, proto)
        _store_template(key, proto, model)
    return proto


def _remember(key: tuple, proto: onnx.ModelProto) -> None:
    import onnx

    if key not in _TEMPLATES:
        _TEMPLATES.clear()  # one network at a time: a sweep runs an activation's trainings back to back
        _TEMPLATES[key] = onnx.ModelProto()
        _TEMPLATES[key].CopyFrom(proto)  # the caller's copy may be changed; the template must not be


def template_path(key: tuple) -> Path:
    """Where the graph exported for ``key`` is kept between processes, named by everything that decides
    it: the network and export settings, the versions of torch, onnx and onnxscript, and actprof's own
    source (an edit to the model code makes a new name, never a stale graph)."""
    digest = hashlib.sha256(repr(key).encode())
    for package in ("torch", "onnx", "onnxscript"):
        digest.update(f"{package}={package_version(package)};".encode())
    digest.update(_source_digest())
    return _graphs_dir() / f"{key[0].activation}-{digest.hexdigest()[:20]}.onnx"


def _graphs_dir() -> Path:
    """$ACTPROF_GRAPH_DIR (an empty one times a first run), else the user's cache."""
    return user_cache("onnx-graphs", override="ACTPROF_GRAPH_DIR")


@functools.cache
def _source_digest() -> bytes:
    """Every Python source of actprof, by its path inside the package: an edit anywhere names new graphs."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for source in sorted(root.rglob("*.py")):
        digest.update(str(source.relative_to(root)).encode() + source.read_bytes())
    return digest.digest()


def _stored_template(key: tuple, model: torch.nn.Module) -> onnx.ModelProto | None:
    """The graph a process before this one exported for ``key``, or None (none kept, or unreadable)."""
    import onnx

    try:
        template = onnx.load_model_from_string(template_path(key).read_bytes())
    except Exception:  # OSError, or protobuf's DecodeError (protobuf is onnx's dependency, not actprof's)
        return None
    return template if holds_every_parameter(template, model) else None


def _store_template(key: tuple, proto: onnx.ModelProto, model: torch.nn.Module) -> None:
    """Keep the graph for later processes, its parameters' values cleared (they are written anew on
    every use): a few kB a graph. Best effort: a cache that cannot be written costs only the saving."""
    import onnx

    stored = onnx.ModelProto()
    stored.CopyFrom(proto)
    parameters = set(model.state_dict())
    for init in stored.graph.initializer:
        if init.name in parameters:
            init.ClearField("raw_data")
            del init.float_data[:]
    path = template_path(key)
    with contextlib.suppress(OSError, OutputError):
        write_bytes_atomic(path, stored.SerializeToString())
        _keep_newest(path.parent, KEPT_GRAPHS)


KEPT_GRAPHS = 256  # every edit of actprof's source names new graphs: the store keeps the newest (~3 MB)


def _keep_newest(directory: Path, count: int) -> None:
    """Delete all but the ``count`` most recently written graphs (a reader that loses one exports again)."""
    graphs = sorted(directory.glob("*.onnx"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in graphs[count:]:
        old.unlink(missing_ok=True)


def holds_every_parameter(proto: onnx.ModelProto, model: torch.nn.Module) -> bool:
    """Whether each of the model's parameters and buffers is an initializer of its own name and shape
    (the exporter folds a parameter away when, say, a bias is all zeros: then the graph depends on the
    values and is not reused)."""
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    return all(shapes.get(name) == tuple(value.shape) for name, value in model.state_dict().items())


def with_parameters(template: onnx.ModelProto, model: torch.nn.Module) -> onnx.ModelProto:
    """A copy of ``template`` with the model's parameter values in place of the initializers they name."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto()
    proto.CopyFrom(template)
    values = {name: value.detach().float().cpu().numpy() for name, value in model.state_dict().items()}
    for init in proto.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return proto

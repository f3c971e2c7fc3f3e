"""One module per inference runtime behind one interface (``base.Backend``); ``backend(name)`` is the registry.

``onnxruntime``: ONNX Runtime's CPU and CUDA providers; ``openvino``: OpenVINO's CPU plugin, an optional extra
imported only when asked for; ``pytorch``: the model rebuilt as ``torch.nn`` layers (``torch_graph``), run
eager or compiled by TorchInductor (``inductor_code`` reads what it generated; ``torch_ops`` holds the ONNX ops
rebuilt as torch calls); ``executorch``: ExecuTorch with the XNNPACK delegate, an optional extra.
``attribution`` reads what a runtime wrote (profiles, optimized graphs);
``reference`` computes the fp32 CPU logits every deployment is compared with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actprof.settings.parse import parse_choices
from actprof.settings.profile import PROVIDERS

if TYPE_CHECKING:
    from actprof.runtimes.base import Backend


def parse_providers(spec: str) -> list[str]:
    return parse_choices(spec, PROVIDERS, "--provider", allow_all=True)


def backend(name: str) -> Backend:
    """The backend behind a --provider name."""
    if name == "openvino":
        from actprof.runtimes.openvino import OpenVinoBackend

        return OpenVinoBackend()
    if name == "executorch":
        from actprof.runtimes.executorch import ExecuTorchBackend

        return ExecuTorchBackend()
    if name in ("torch", "inductor"):
        from actprof.runtimes.pytorch import TorchBackend

        return TorchBackend(name)
    from actprof.runtimes.onnxruntime import EXECUTION_PROVIDERS, OrtBackend

    if name not in EXECUTION_PROVIDERS:
        parse_providers(name)  # raises the usual one-line refusal
    return OrtBackend(name)

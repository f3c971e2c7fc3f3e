"""Networks shaped like the ones people ship, built offline with PyTorch (random weights from a seed), exported
to ONNX: what ``actprof swap`` is tried on beyond the ``onnx`` package's test models. No download, no zoo.

- ``mobilenet_v3``: inverted residuals with HardSwish and ReLU, squeeze-excitation gated by HardSigmoid;
- ``efficientnet``: MBConv blocks with SiLU, squeeze-excitation gated by Sigmoid;
- ``yolo``: a Conv-BN-SiLU backbone and a detection head whose class scores pass a Sigmoid before the boxes
  are concatenated to them (an output head, not a hidden activation);
- ``bert``: a BERT-style encoder (token, position and segment embeddings, masked self-attention, GELU
  feed-forward, a Tanh pooler, a classifier) reading ``input_ids``, ``attention_mask``, ``token_type_ids``;
  ``bert_mini`` is the same at BERT-Mini's size (4 layers of 256, BERT's vocabulary of 30522);
  ``bert_mini_trained`` is BERT-Mini trained for a few minutes on a synthetic token task (``signal_task``),
  written with 512 held-out inputs beside it (``OUT.npz``, for ``swap --inputs``);
- ``vad``: a voice-activity model with three inputs (audio, a GRU state, an integer sample rate) and two
  outputs (speech probability, the next state);
- ``paddle_mobilenet``: written with ONNX's helper as Paddle exports it: HardSwish as ``x·Clip(x+3, 0, 6)/6``
  and a HardSigmoid gate;
- ``keras_mobilenet``: written as tf2onnx exports Keras' MobileNetV3 blocks: HardSwish as
  ``x·(relu6(x+3)·(1/6))``, a squeeze-excitation gate as Keras' ``hard_sigmoid`` written out (no HardSigmoid
  op), and a Dense-layer squeeze-excitation whose Sigmoid is reshaped before it scales.

    python -m examples.networks bert_mini bert_mini.onnx
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

# --- image networks -------------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, gate: nn.Module, inner: nn.Module) -> None:
        super().__init__()
        squeezed = max(8, channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce, self.inner = nn.Conv2d(channels, squeezed, 1), inner
        self.expand, self.gate = nn.Conv2d(squeezed, channels, 1), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.inner(self.reduce(self.pool(x)))))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class InvertedResidual(nn.Module):
    """MobileNetV3's block (and EfficientNet's MBConv): expand, depthwise, squeeze-excite, project."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int, act, se: SqueezeExcite | None) -> None:
        super().__init__()
        layers = [*_conv_bn(cin, hidden, 1), act(), *_conv_bn(hidden, hidden, 3, stride, hidden), act()]
        self.body = nn.Sequential(*layers, *([se] if se else []), *_conv_bn(hidden, cout, 1))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def mobilenet_v3(classes: int = 100) -> nn.Module:
    def se(c: int) -> SqueezeExcite:
        return SqueezeExcite(c, nn.Hardsigmoid(), nn.ReLU())

    return nn.Sequential(
        *_conv_bn(3, 16, 3, 2),
        nn.Hardswish(),
        InvertedResidual(16, 16, 16, 2, nn.ReLU, se(16)),
        InvertedResidual(16, 64, 24, 2, nn.ReLU, None),
        InvertedResidual(24, 96, 40, 2, nn.Hardswish, se(96)),
        InvertedResidual(40, 240, 40, 1, nn.Hardswish, se(240)),
        *_conv_bn(40, 240, 1),
        nn.Hardswish(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(240, 256),
        nn.Hardswish(),
        nn.Dropout(0.2),
        nn.Linear(256, classes),
    )


def efficientnet(classes: int = 100) -> nn.Module:
    def se(c: int) -> SqueezeExcite:
        return SqueezeExcite(c, nn.Sigmoid(), nn.SiLU())

    return nn.Sequential(
        *_conv_bn(3, 32, 3, 2),
        nn.SiLU(),
        InvertedResidual(32, 32, 16, 1, nn.SiLU, se(32)),
        InvertedResidual(16, 96, 24, 2, nn.SiLU, se(96)),
        InvertedResidual(24, 144, 24, 1, nn.SiLU, se(144)),
        *_conv_bn(24, 128, 1),
        nn.SiLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, classes),
    )


class Yolo(nn.Module):
    """Conv-BN-SiLU backbone; a head per cell with 4 box coordinates and ``classes`` scores through a Sigmoid."""

    def __init__(self, classes: int = 20) -> None:
        super().__init__()
        widths = [3, 16, 32, 64, 64]
        blocks = [m for a, b in itertools.pairwise(widths) for m in (*_conv_bn(a, b, 3, 2), nn.SiLU())]
        self.backbone = nn.Sequential(*blocks)
        self.box, self.cls = nn.Conv2d(64, 4, 1), nn.Conv2d(64, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        boxes = self.box(features).flatten(2)
        scores = torch.sigmoid(self.cls(features)).flatten(2)
        return torch.cat([boxes, scores], dim=1)


# --- a transformer ----------------------------------------------------------------------------------------


class Bert(nn.Module):
    """A BERT-style encoder for sequence classification, written out as the BERT code does it."""

    def __init__(self, vocab: int = 1000, hidden: int = 128, layers: int = 2, heads: int = 4, positions: int = 128):
        super().__init__()
        self.word, self.position = nn.Embedding(vocab, hidden), nn.Embedding(positions, hidden)
        self.segment, self.norm = nn.Embedding(2, hidden), nn.LayerNorm(hidden)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads) for _ in range(layers))
        self.pooler, self.classifier = nn.Linear(hidden, hidden), nn.Linear(hidden, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.norm(self.word(input_ids) + self.position(positions) + self.segment(token_type_ids))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


class EncoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.out, self.norm1 = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden), nn.LayerNorm(hidden)
        self.up, self.down, self.norm2 = (
            nn.Linear(hidden, 4 * hidden),
            nn.Linear(4 * hidden, hidden),
            nn.LayerNorm(hidden),
        )
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (h // self.heads) ** 0.5 + bias
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = self.norm1(x + self.out(attended))
        return self.norm2(x + self.down(self.act(self.up(x))))


def signal_task(count: int, *, length: int = 32, vocab: int = 30522, seed: int = 0):
    """A task a small encoder learns in minutes: random tokens with 1–7 "signal" tokens from one of two families
    (ids 110–159: class 1, 210–259: class 0) at random positions after [CLS]. (inputs, labels)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(300, vocab, size=(count, length))
    ids[:, 0] = 101  # [CLS], read by the pooler
    labels = rng.integers(0, 2, size=count)
    for row, label in enumerate(labels):
        slots = rng.permutation(length - 1)[: rng.integers(1, 8)] + 1
        ids[row, slots] = rng.integers(110 if label else 210, (110 if label else 210) + 50, size=len(slots))
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return inputs, labels


def trained_bert_mini(steps: int = 400, seed: int = 0) -> tuple[Bert, float]:
    """BERT-Mini's shape trained on ``signal_task`` (AdamW, 5e-4 after 50 warm-up steps, batch 32); and its
    accuracy on 1024 held-out sequences."""
    torch.manual_seed(seed)
    model = Bert(vocab=30522, hidden=256, layers=4, heads=4, positions=512)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    warm_up = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 50))
    for step in range(steps):
        inputs, labels = signal_task(32, seed=seed + 1 + step)
        logits = model(*(torch.from_numpy(v) for v in inputs.values()))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        warm_up.step()
    inputs, labels = signal_task(1024, seed=10**6)
    with torch.no_grad():
        predicted = model.eval()(*(torch.from_numpy(v) for v in inputs.values())).argmax(1).numpy()
    return model, float((predicted == labels).mean())


# --- several inputs, a recurrent state ---------------------------------------------------------------------


class Vad(nn.Module):
    """A voice-activity detector in the shape of the popular ones: a frame of audio, the GRU's state, the
    sample rate (an int64 scalar that scales the features) in; speech probability and the next state out."""

    def __init__(self, frame: int = 256, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(frame, 128), nn.ReLU(), nn.Linear(128, hidden), nn.ReLU())
        self.gru, self.decoder = nn.GRU(hidden, hidden, num_layers=2), nn.Linear(hidden, 1)

    def forward(self, audio: torch.Tensor, state: torch.Tensor, sr: torch.Tensor):
        features = self.encoder(audio * (sr.to(audio.dtype) / 16000.0))
        out, next_state = self.gru(features.unsqueeze(0), state)
        return torch.sigmoid(self.decoder(out[0])), next_state


# --- export -----------------------------------------------------------------------------------------------


def export(
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    outputs: list[str],
    *,
    opset: int = 17,
    dynamic: dict[str, dict[int, str]] | None = None,
) -> onnx.ModelProto:
    """The TorchScript exporter, as most shipped ONNX files were made (GELU in its Erf form below opset 20)."""
    import io

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            buffer,
            input_names=list(inputs),
            output_names=outputs,
            opset_version=opset,
            dynamic_axes=dynamic or {},
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def build(name: str, *, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """One of the networks above, exported (random weights from ``seed``)."""
    torch.manual_seed(seed)
    image = {"image": torch.randn(1, 3, 64, 64)}
    batch = {"image": {0: "batch"}, "scores": {0: "batch"}}
    if name == "mobilenet_v3":
        return export(mobilenet_v3(), image, ["scores"], opset=opset, dynamic=batch)
    if name == "efficientnet":
        return export(efficientnet(), image, ["scores"], opset=opset, dynamic=batch)
    if name == "yolo":
        return export(Yolo(), image, ["scores"], opset=opset, dynamic=batch)
    if name in ("bert", "bert_mini"):
        # bert_mini: Google's BERT-Mini shape (L=4, H=256, A=4) with BERT's 30522-token vocabulary
        config = (
            {"vocab": 30522, "hidden": 256, "layers": 4, "heads": 4, "positions": 512} if name == "bert_mini" else {}
        )
        ids = torch.randint(0, 1000, (1, 32))
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
        dynamic = {n: {0: "batch", 1: "sequence"} for n in inputs} | {"logits": {0: "batch"}}
        return export(Bert(**config), inputs, ["logits"], opset=opset, dynamic=dynamic)
    if name == "vad":
        inputs = {"audio": torch.randn(1, 256), "state": torch.zeros(2, 1, 64), "sr": torch.tensor(16000)}
        dynamic = {"audio": {0: "batch"}, "state": {1: "batch"}, "speech": {0: "batch"}, "next_state": {1: "batch"}}
        return export(Vad(), inputs, ["speech", "next_state"], opset=opset, dynamic=dynamic)
    if name == "paddle_mobilenet":
        return paddle_mobilenet(seed=seed)
    if name == "keras_mobilenet":
        return keras_mobilenet(seed=seed)
    raise SystemExit(f"unknown network {name!r}; choose from: {', '.join(NETWORKS)}")


NETWORKS = ("mobilenet_v3", "efficientnet", "yolo", "bert", "bert_mini", "vad", "paddle_mobilenet", "keras_mobilenet")


# --- as Paddle writes it ------------------------------------------------------------------------------------


class _Initializers:
    """Random weights and scalar constants for a graph written node by node."""

    def __init__(self, seed: int) -> None:
        self.rng, self.tensors = np.random.default_rng(seed), []

    def weight(self, name: str, *shape: int, scale: float = 0.2) -> str:
        values = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.tensors.append(numpy_helper.from_array(values, name))
        return name

    def const(self, name: str, value: float | list[int]) -> str:
        dtype = np.int64 if isinstance(value, list) else np.float32
        self.tensors.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name


def _image_classifier(name: str, nodes: list, init: _Initializers, producer: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["batch", 10])],
        init.tensors,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name=producer, ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def paddle_mobilenet(seed: int = 0) -> onnx.ModelProto:
    """Conv → HardSwish → a squeeze-excitation gate → Conv → HardSwish (the other Mul/Div order) → pool → Gemm,
    with HardSwish written out as Paddle2ONNX does and the gate as a HardSigmoid (Paddle's slope 1/6)."""
    init = _Initializers(seed)
    weight, const = init.weight, init.const
    three, zero, six = const("three", 3.0), const("zero", 0.0), const("six", 6.0)
    nodes = [
        helper.make_node("Conv", ["image", weight("w1", 16, 3, 3, 3)], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        # hardswish: (x · clip(x + 3, 0, 6)) / 6
        helper.make_node("Add", ["c1", three], ["a1"]),
        helper.make_node("Clip", ["a1", zero, six], ["k1"]),
        helper.make_node("Mul", ["c1", "k1"], ["m1"]),
        helper.make_node("Div", ["m1", six], ["h1"]),
        # squeeze-excitation: h1 · hardsigmoid(conv(relu(conv(pool(h1)))))
        helper.make_node("GlobalAveragePool", ["h1"], ["p1"]),
        helper.make_node("Conv", ["p1", weight("w2", 8, 16, 1, 1)], ["s1"]),
        helper.make_node("Relu", ["s1"], ["r1"]),
        helper.make_node("Conv", ["r1", weight("w3", 16, 8, 1, 1)], ["s2"]),
        helper.make_node("HardSigmoid", ["s2"], ["g1"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["h1", "g1"], ["e1"]),
        helper.make_node("Conv", ["e1", weight("w4", 32, 16, 1, 1)], ["c2"]),
        # hardswish, the other order: x · (clip(x + 3, 0, 6) · (1/6))
        helper.make_node("Add", ["c2", three], ["a2"]),
        helper.make_node("Clip", ["a2", zero, six], ["k2"]),
        helper.make_node("Mul", ["k2", const("sixth", 1 / 6)], ["q2"]),
        helper.make_node("Mul", ["c2", "q2"], ["h2"]),
        helper.make_node("GlobalAveragePool", ["h2"], ["p2"]),
        helper.make_node("Flatten", ["p2"], ["f2"]),
        helper.make_node("Gemm", ["f2", weight("w5", 10, 32), weight("b5", 10)], ["scores"], transB=1),
    ]
    return _image_classifier("paddle_mobilenet", nodes, init, "paddle-style")


def keras_mobilenet(seed: int = 0) -> onnx.ModelProto:
    """Keras' MobileNetV3 blocks as tf2onnx writes them: HardSwish as ``x·(relu6(x + 3)·(1/6))`` and the
    squeeze-excitation gate as Keras' ``hard_sigmoid``, ``relu6(x + 3)·(1/6)``, with no HardSigmoid op; then a
    squeeze-excitation built from Dense layers, whose Sigmoid is reshaped to N×C×1×1 before it scales."""
    init = _Initializers(seed)
    weight, const = init.weight, init.const
    three, zero, six, sixth = const("three", 3.0), const("zero", 0.0), const("six", 6.0), const("sixth", 1 / 6)
    nodes = [
        helper.make_node("Conv", ["image", weight("w1", 16, 3, 3, 3)], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        # hard_swish: x · (relu6(x + 3) · (1/6))
        helper.make_node("Add", ["c1", three], ["a1"]),
        helper.make_node("Clip", ["a1", zero, six], ["k1"]),
        helper.make_node("Mul", ["k1", sixth], ["q1"]),
        helper.make_node("Mul", ["c1", "q1"], ["h1"]),
        # squeeze-excitation: h1 · hard_sigmoid(conv(relu(conv(pool(h1)))))
        helper.make_node("GlobalAveragePool", ["h1"], ["p1"]),
        helper.make_node("Conv", ["p1", weight("w2", 8, 16, 1, 1)], ["s1"]),
        helper.make_node("Relu", ["s1"], ["r1"]),
        helper.make_node("Conv", ["r1", weight("w3", 16, 8, 1, 1)], ["s2"]),
        helper.make_node("Add", ["s2", three], ["a2"]),
        helper.make_node("Clip", ["a2", zero, six], ["k2"]),
        helper.make_node("Mul", ["k2", sixth], ["g1"]),
        helper.make_node("Mul", ["h1", "g1"], ["e1"]),
        # squeeze-excitation from Dense layers: e1 · reshape(sigmoid(gemm(relu(gemm(flatten(pool(e1)))))))
        helper.make_node("GlobalAveragePool", ["e1"], ["p2"]),
        helper.make_node("Flatten", ["p2"], ["f2"]),
        helper.make_node("Gemm", ["f2", weight("w4", 8, 16), weight("b4", 8)], ["d1"], transB=1),
        helper.make_node("Relu", ["d1"], ["r2"]),
        helper.make_node("Gemm", ["r2", weight("w5", 16, 8), weight("b5", 16)], ["d2"], transB=1),
        helper.make_node("Sigmoid", ["d2"], ["g2"]),
        helper.make_node("Reshape", ["g2", const("nc11", [0, -1, 1, 1])], ["g3"]),
        helper.make_node("Mul", ["e1", "g3"], ["e2"]),
        helper.make_node("GlobalAveragePool", ["e2"], ["p3"]),
        helper.make_node("Flatten", ["p3"], ["f3"]),
        helper.make_node("Gemm", ["f3", weight("w6", 10, 16), weight("b6", 10)], ["scores"], transB=1),
    ]
    return _image_classifier("keras_mobilenet", nodes, init, "tf2onnx-style")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m examples.networks {{{','.join(NETWORKS)},bert_mini_trained}} OUT.onnx")
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    if argv[0] == "bert_mini_trained":  # also writes OUT.npz: 512 held-out task inputs for swap --inputs
        model, accuracy = trained_bert_mini()
        inputs, _ = signal_task(512, seed=2 * 10**6)
        example = {name: torch.from_numpy(value[:1]) for name, value in inputs.items()}
        dynamic = {n: {0: "batch", 1: "sequence"} for n in inputs} | {"logits": {0: "batch"}}
        onnx.save(export(model, example, ["logits"], dynamic=dynamic), str(out))
        np.savez(out.with_suffix(".npz"), **inputs)
        print(f"trained: {100 * accuracy:.1f}% on 1024 held-out sequences; wrote {out}, {out.with_suffix('.npz')}")
        return
    onnx.save(build(argv[0]), str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Your own network in actprof: ``actprof run --model examples/my_network.py:small_cnn``.

actprof calls ``small_cnn(act, input_shape=(1, 28, 28), num_classes=10)`` once per activation it compares: ``act()``
returns a fresh activation module (ReLU, ELU, GELU…), so every place you call it is an activation site actprof
swaps, counts and profiles. Everything else is ordinary PyTorch. Keyword arguments you do not need can be left
out of the signature (or absorbed with ``**kwargs``).
"""

from torch import nn


def small_cnn(act, input_shape=(1, 28, 28), num_classes=10):
    """Two convolutions with batch norm, global average pooling and a linear head."""
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        act(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def wide_mlp(act, **kwargs):
    """A two-layer MLP that takes whatever keywords actprof offers."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), act(), nn.Linear(256, kwargs["num_classes"]))

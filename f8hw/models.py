"""Model architectures built from f8hw.nn layers.

Bundled (trained on scikit-learn digits, 1x8x8): ``cnn``, ``resnet``, ``mobilenet``, and ``outlier``
(the cnn with outlier channels, add_outlier_channels: where the choice of 8-bit format matters).
Benchmark zoo (random weights, calibrated on random images): ``resnet20``
(3x32x32), ``resnet18``, ``resnet50`` and ``mobilenetv2`` (3x224x224).

Conventions: a block's output is the pre-activation sum; the reading layer's
unsigned input quantization is the ReLU, a signed reader (MobileNetV2's
linear bottleneck) keeps it linear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from f8hw.errors import F8Error
from f8hw.nn import QAdd, QConv2d, QGlobalAvgPool2d, QLinear


class BasicBlock(nn.Module):
    """ResNet basic block; identity shortcut, or a strided 1x1 conv when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = QConv2d(cin, cout, 3, stride, 1)
        self.conv2 = QConv2d(cout, cout, 3, 1, 1)
        self.shortcut = QConv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.add = QAdd()

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return self.add(y, x if self.shortcut is None else self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck (1x1, 3x3 with the stride, 1x1 x4)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        mid = cout // 4
        self.conv1 = QConv2d(cin, mid, 1)
        self.conv2 = QConv2d(mid, mid, 3, stride, 1)
        self.conv3 = QConv2d(mid, cout, 1)
        self.shortcut = QConv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.add = QAdd()

    def forward(self, x):
        y = self.conv3(self.conv2(self.conv1(x)))
        return self.add(y, x if self.shortcut is None else self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (signed output)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, signed_input: bool = True):
        super().__init__()
        mid = cin * expand
        self.expand = QConv2d(cin, mid, 1, signed_input=signed_input) if expand != 1 else None
        self.depthwise = QConv2d(mid, mid, 3, stride, 1, groups=mid, signed_input=signed_input and expand == 1)
        self.project = QConv2d(mid, cout, 1)
        self.add = QAdd() if stride == 1 and cin == cout else None

    def forward(self, x):
        h = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(h))
        return self.add(y, x) if self.add is not None else y


class Classifier(nn.Module):
    """Global average pool, flatten, linear: int32 logits."""

    def __init__(self, channels: int, classes: int, signed_input: bool = False):
        super().__init__()
        self.pool = QGlobalAvgPool2d(signed_input)
        self.flatten = nn.Flatten()
        self.fc = QLinear(channels, classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(x)))


class PlainCNN(nn.Module):
    """conv-conv-maxpool-conv-maxpool-GAP-linear, for 1x8x8 digits."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            QConv2d(1, 16, 3, 1, 1),
            QConv2d(16, 32, 3, 1, 1),
            nn.MaxPool2d(2),
            QConv2d(32, 32, 3, 1, 1),
            nn.MaxPool2d(2),
        )
        self.head = Classifier(32, classes)

    def forward(self, x):
        return self.head(self.features(x))


class ResNet(nn.Module):
    """Stem conv (+ optional maxpool), stages of blocks, classifier."""

    def __init__(self, block, stem: nn.Module, stem_channels: int, stages, classes: int):
        super().__init__()
        self.stem = stem
        layers, cin = [], stem_channels
        for cout, blocks, stride in stages:
            for i in range(blocks):
                layers.append(block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = Classifier(cin, classes)

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


class MobileNetV2(nn.Module):
    """Stem conv, inverted residual blocks (t, c, n, s), 1x1 conv, classifier."""

    def __init__(self, in_channels, stem_channels, stem_stride, settings, last_channels, classes):
        super().__init__()
        self.stem = QConv2d(in_channels, stem_channels, 3, stem_stride, 1)
        blocks, cin, signed = [], stem_channels, False
        for t, c, n, s in settings:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t, signed_input=signed))
                cin, signed = c, True
        self.blocks = nn.Sequential(*blocks)
        self.last = QConv2d(cin, last_channels, 1, signed_input=True)
        self.head = Classifier(last_channels, classes)

    def forward(self, x):
        return self.head(self.last(self.blocks(self.stem(x))))


OUTLIER_GAIN = 64.0
"""Gain of the outlier channels of the ``outlier`` model (2**6; 2**5 barely hurt INT8, 2**7 also hurt the FP8 formats: docs/qat.md)."""
OUTLIER_EVERY = 8
"""Every 8th channel is an outlier channel (4 of the 32 channels that feed the cnn's third conv)."""


@torch.no_grad()
def add_outlier_channels(model: "PlainCNN", gain: float = OUTLIER_GAIN, every: int = OUTLIER_EVERY) -> None:
    """Give a float-trained PlainCNN outlier channels, without changing its function.

    Channel c of the second conv's output (c % every == 0) is multiplied by gain
    (its BN scale and shift) and the third conv's weights reading it are divided
    by gain; the ReLU and the max pool between them commute with a positive
    per-channel scale, so the float model computes the same logits (up to float
    rounding).  The third conv's input then has a few channels `gain` times
    larger than the rest, and its weights the inverse spread: the per-tensor
    outliers (as in networks without normalization before a signed stream, or
    the outlier features of large models) that one 8-bit grid per tensor handles
    badly and a floating-point format handles well.
    """
    producer, reader = model.features[1], model.features[3]
    g = torch.ones(producer.bn.num_features)
    g[::every] = gain
    producer.bn.weight.mul_(g)
    producer.bn.bias.mul_(g)
    reader.conv.weight.div_(g[None, :, None, None])


@dataclass(frozen=True)
class Arch:
    """A named architecture and the input it expects."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    bundled: bool


def _stem(cin, cout, k, stride, pool):
    conv = QConv2d(cin, cout, k, stride, k // 2)
    return nn.Sequential(conv, nn.MaxPool2d(3, 2, 1)) if pool else conv


ARCHS: dict[str, Arch] = {
    "cnn": Arch(PlainCNN, (1, 8, 8), True),
    "outlier": Arch(PlainCNN, (1, 8, 8), True),
    "resnet": Arch(
        lambda: ResNet(BasicBlock, _stem(1, 16, 3, 1, False), 16, [(16, 1, 1), (32, 2, 2)], 10), (1, 8, 8), True
    ),
    "mobilenet": Arch(
        lambda: MobileNetV2(1, 16, 1, [(1, 8, 1, 1), (3, 16, 2, 1), (3, 24, 2, 2)], 64, 10), (1, 8, 8), True
    ),
    "resnet20": Arch(
        lambda: ResNet(BasicBlock, _stem(3, 16, 3, 1, False), 16, [(16, 3, 1), (32, 3, 2), (64, 3, 2)], 10),
        (3, 32, 32),
        False,
    ),
    "resnet18": Arch(
        lambda: ResNet(BasicBlock, _stem(3, 64, 7, 2, True), 64, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], 1000),
        (3, 224, 224),
        False,
    ),
    "resnet50": Arch(
        lambda: ResNet(Bottleneck, _stem(3, 64, 7, 2, True), 64, [(256, 3, 1), (512, 4, 2), (1024, 6, 2), (2048, 3, 2)], 1000),
        (3, 224, 224),
        False,
    ),
    "mobilenetv2": Arch(
        lambda: MobileNetV2(
            3,
            32,
            2,
            [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)],
            1280,
            1000,
        ),
        (3, 224, 224),
        False,
    ),
}
BUNDLED = [n for n, a in ARCHS.items() if a.bundled]
ZOO = [n for n, a in ARCHS.items() if not a.bundled]


def build(name: str) -> nn.Module:
    """A fresh (float-mode, unprepared) model of the named architecture."""
    if name not in ARCHS:
        raise F8Error(f"unknown architecture {name!r} (known: {', '.join(ARCHS)})")
    return ARCHS[name].build()


def random_calibrated(name: str, batches: int = 2, batch_size: int = 2, seed: int = 0) -> nn.Module:
    """The named architecture with random weights, BN statistics and FLs calibrated on random uint8 images.

    Valid for cycles, utilization and bit-exactness, not for accuracy.
    """
    import torch

    from f8hw.nn import calibrate, prepare

    arch = ARCHS.get(name)
    if arch is None:
        raise F8Error(f"unknown architecture {name!r} (known: {', '.join(ARCHS)})")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (batch_size, *arch.input_shape), dtype=torch.uint8, generator=gen) for _ in range(batches)]
    model = arch.build()
    prepare(model, images[0])
    calibrate(model, images, method="grid", bn=True)
    return model.eval()


def export_random(name: str, path: str, batches: int = 2, batch_size: int = 2, seed: int = 0):
    """Export random_calibrated(name) to path; returns the graph."""
    import torch

    from f8hw.exporter import export

    model = random_calibrated(name, batches, batch_size, seed)
    example = torch.zeros((1, *ARCHS[name].input_shape), dtype=torch.uint8)
    meta = {"arch": name, "weights": "random", "calibration": f"{batches}x{batch_size} random images", "seed": seed}
    return export(model, example, path, meta=meta)

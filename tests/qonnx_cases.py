"""Brevitas test networks (random weights, activation scales calibrated on digits) exported to QONNX.

Each network exercises a set of ops and quantizer formats; ``export(build, path)`` calibrates the
activation quantizers on a few digits batches and writes the QONNX file (dynamo=False, fast).
"""

from __future__ import annotations

import brevitas.nn as qnn
import numpy as np
import torch
from brevitas.export import export_qonnx
from brevitas.quant import Int8ActPerTensorFixedPoint as SAct
from brevitas.quant import Int8WeightPerTensorFixedPoint as W8
from brevitas.quant import Int16Bias, Int32Bias
from brevitas.quant import Uint8ActPerTensorFixedPoint as UAct
from torch import nn

from f8hw import digits

BATCH = 4


def uact(**kw):
    return qnn.QuantReLU(act_quant=UAct, return_quant_tensor=True, **kw)


def sact(**kw):
    return qnn.QuantIdentity(act_quant=SAct, narrow_range=True, return_quant_tensor=True, **kw)


def image_quant():
    return qnn.QuantIdentity(act_quant=UAct, max_val=1.0, return_quant_tensor=True)


def conv(cin, cout, k, stride=1, padding=0, groups=1, bias=Int32Bias, **kw):
    return qnn.QuantConv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, weight_quant=W8,
                           bias_quant=bias, return_quant_tensor=True, **kw)


def linear(fin, fout, bias=Int32Bias, **kw):
    return qnn.QuantLinear(fin, fout, weight_quant=W8, bias_quant=bias, return_quant_tensor=False, **kw)


class ConvNet(nn.Module):
    """Dense padded, strided, grouped and depthwise convs; ReLU; maxpool; global average pool; linear."""

    def __init__(self):
        super().__init__()
        self.inp = image_quant()
        self.c1, self.r1 = conv(1, 8, 3, padding=1), uact()
        self.c2, self.r2 = conv(8, 8, 3, stride=2, padding=1, groups=2), uact()
        self.pool = nn.MaxPool2d(2, 2)
        self.c3, self.r3 = conv(8, 8, 3, padding=1, groups=8, bias=Int16Bias), uact()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.q = uact()
        self.fc = linear(8, 10)

    def forward(self, x):
        x = self.inp(x)
        x = self.pool(self.r2(self.c2(self.r1(self.c1(x)))))
        x = self.q(self.gap(self.r3(self.c3(x))))
        return self.fc(torch.flatten(x, 1))


class ResNet(nn.Module):
    """Residuals: a fused skip (conv accumulator + quantized skip) and an add of two quantized tensors."""

    def __init__(self):
        super().__init__()
        self.inp = image_quant()
        self.c0, self.r0 = conv(1, 8, 3, padding=1), uact()
        self.c1, self.r1 = conv(8, 8, 3, padding=1), uact()
        self.c2 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_quant=W8, bias_quant=Int32Bias, return_quant_tensor=False)
        self.r2 = uact()
        self.c3, self.s3 = conv(8, 8, 1), sact()
        self.r3 = uact()
        self.fc = linear(8 * 64, 10)
        with torch.no_grad():      # weights at FL 7: an identity skip around two layers needs w_fl1 + w_fl2 <= 14
            for c in (self.c1, self.c2):
                c.weight.uniform_(-0.95, 0.95)

    def forward(self, x):
        x = self.r0(self.c0(self.inp(x)))
        y = self.r2(self.c2(self.r1(self.c1(x))) + x)          # Conv -> Add(skip) -> Relu -> Quant
        z = self.r3(self.s3(self.c3(y)) + y)                   # Quant + Quant -> identity layer
        return self.fc(torch.flatten(z, 1))


class SignedNet(nn.Module):
    """Signed activations (narrow range), a ReLU of a signed tensor, a requantizing Quant, Reshape, MLP, Int16 bias."""

    def __init__(self):
        super().__init__()
        self.inp = image_quant()
        self.c1, self.s1 = conv(1, 4, 3, padding=1), sact()
        self.c2, self.s2 = conv(4, 4, 3, padding=1), sact()
        self.relu = nn.ReLU()
        self.s3 = qnn.QuantIdentity(act_quant=UAct, return_quant_tensor=True)   # signed -> unsigned
        self.fc1, self.s4 = linear(4 * 64, 16, bias=Int16Bias), sact()
        self.fc2 = linear(16, 10)

    def forward(self, x):
        x = self.s1(self.c1(self.inp(x)))
        x = self.s3(self.s2(self.c2(self.relu(x))))           # Relu of signed -> conv; a Quant of a Quant
        return self.fc2(self.s4(self.fc1(x.view(x.shape[0], -1))))    # exports Reshape


def digits_images(n: int, seed: int = 0) -> np.ndarray:
    imgs = digits.load()["train"][0]
    return imgs[np.random.default_rng(seed).permutation(len(imgs))[:n]]


def float_input(images: np.ndarray) -> torch.Tensor:
    """What a Brevitas user feeds: the image in [0, 1) (the input quantizer's scale is 2^-8)."""
    return torch.from_numpy(images.astype(np.float32) / 256)


def export(model: nn.Module, path, seed: int = 0) -> nn.Module:
    """Calibrate the activation quantizers (train-mode statistics) on digits, then write QONNX."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        for k in range(4):
            model(float_input(digits_images(32, seed + k)))
    model.eval()
    export_qonnx(model, float_input(digits_images(BATCH)), str(path), dynamo=False)
    return model


class Tiny(nn.Module):
    """One conv and a linear, with the activation quantizer and extra module given (for the refusals)."""

    def __init__(self, act=None, extra=None, input_quant=None):
        super().__init__()
        self.inp = input_quant or image_quant()
        self.c1 = conv(1, 4, 3, padding=1)
        self.act = act if act is not None else uact()
        self.extra = extra or nn.Identity()
        self.fc = linear(4 * 64, 10)

    def forward(self, x):
        x = self.extra(self.act(self.c1(self.inp(x))))
        return self.fc(torch.flatten(x, 1))


class MixedNet(nn.Module):
    """BatchNorm folded exactly (gain 1/2, offsets on the grid), padded maxpool, ReduceMean, non-narrow weights."""

    def __init__(self, exact_bn: bool = True):
        super().__init__()
        self.inp = image_quant()
        self.c1 = qnn.QuantConv2d(1, 8, 3, padding=1, bias=False, weight_quant=W8, weight_narrow_range=False,
                                  return_quant_tensor=True)
        self.bn = nn.BatchNorm2d(8, eps=2.0**-10, momentum=0.0)
        with torch.no_grad():
            if exact_bn:
                self.bn.running_var.fill_(4.0 - 2.0**-10)      # var + eps = 4 exactly: a = 1/2
                self.bn.running_mean.copy_(torch.arange(8) * 0.5 - 2)
                self.bn.bias.copy_(torch.arange(8) * 0.25)
            else:
                self.bn.running_var.uniform_(0.5, 2.0)
                self.bn.weight.uniform_(0.5, 1.5)
                self.bn.bias.uniform_(-0.5, 0.5)
        self.r1 = uact()
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.q = sact()
        self.fc = linear(8, 10)

    def forward(self, x):
        x = self.pool(self.r1(self.bn(self.c1(self.inp(x)))))
        x = self.q(torch.mean(x, dim=(2, 3), keepdim=True))
        return self.fc(torch.flatten(x, 1))

"""f8hw.nn.quantize: plain torch ResNet-18-style and MobileNetV2-style networks become f8hw.nn models that
compute the same float function, train (PTQ + QAT on digits) to the accuracy of the same network written in
f8hw.nn, and export to an integer model the golden model runs bit-exactly; unsupported code is refused."""

from __future__ import annotations

import operator

import numpy as np
import plain_models as pm
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import f8hw.nn as f8nn
from f8hw import digits, golden, models
from f8hw.nn import UnsupportedOpError
from f8hw.train import _epochs, integer_accuracy

PAIRS = {"resnet": pm.ResNet, "mobilenet": pm.MobileNetV2}


@pytest.fixture(scope="module")
def data():
    d = digits.load()
    return tuple(torch.from_numpy(a) for a in (*d["train"], *d["test"]))


@pytest.mark.parametrize("arch", PAIRS)
def test_same_float_function_and_wiring(arch, data):
    x = data[0][:32]
    torch.manual_seed(0)
    plain = PAIRS[arch]().eval()
    with torch.no_grad():           # non-trivial BN statistics
        for m in plain.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    q = f8nn.quantize(plain, x[:2]).eval()
    with torch.no_grad():
        assert torch.allclose(q(x), plain(x.float() / 256), atol=1e-5)
    ref = models.build(arch)
    f8nn.prepare(ref, x[:2])
    kinds = lambda m: [(n.kind, getattr(getattr(n.module, "act", None), "signed", None)) for n in m.f8_plan.nodes]
    assert kinds(q) == kinds(ref)        # same layers, adds, pools and signed/unsigned readers in the same order


def _float_train(plain, x, y, epochs, seed=0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(plain.parameters(), 3e-3)
    plain.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(plain(x[idx].float() / 256), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return plain.eval()


def _ptq_qat(model, x, y, xt, yt, qat_epochs, seed=0):
    torch.manual_seed(seed)
    f8nn.calibrate(model, [x[i * 128:(i + 1) * 128] for i in range(4)], method="sigma")
    ptq = integer_accuracy(model, xt, yt)
    _epochs(model, x, y, qat_epochs, 1e-4, 64, torch.Generator().manual_seed(seed), None, "qat")
    return ptq, integer_accuracy(model, xt, yt)


def _compare(arch, data, fp32_epochs, qat_epochs):
    x, y, xt, yt = data
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plain = _float_train(PAIRS[arch](), x, y, fp32_epochs)
        q = f8nn.quantize(plain, x[:8])
        ref = models.build(arch)
        f8nn.prepare(ref, x[:8])
        for lq, lr in zip(q.f8_plan.layers(), ref.f8_plan.layers()):
            lr.module.load_state_dict(lq.module.state_dict())     # the same network written in f8hw.nn
        ours, theirs = _ptq_qat(q, x, y, xt, yt, qat_epochs), _ptq_qat(ref, x, y, xt, yt, qat_epochs)
    finally:
        torch.set_num_threads(threads)
    assert abs(ours[0] - theirs[0]) <= 0.005 and abs(ours[1] - theirs[1]) <= 0.005, (ours, theirs)
    return q, ours


@pytest.mark.parametrize("arch", PAIRS)
def test_ptq_qat_matches_f8hw_nn_fast(arch, data, tmp_path):
    q, (_, qat) = _compare(arch, data, fp32_epochs=2, qat_epochs=1)
    assert qat > 0.5                      # it learned something in 2 + 1 epochs
    import f8hw

    graph = f8hw.export(q.eval(), data[0][:1], tmp_path / "m.pt")
    images = data[2][:16].numpy()
    logits, _ = f8nn.integer_forward(q, data[2][:16])
    assert np.array_equal(golden.classify(graph, images)[0], logits.numpy())


@pytest.mark.heavy     # ~2 minutes per network: the full recipe (40 fp32 + 15 QAT epochs); run with -m heavy
@pytest.mark.parametrize("arch", PAIRS)
def test_ptq_qat_matches_f8hw_nn_full(arch, data):
    _, (_, qat) = _compare(arch, data, fp32_epochs=40, qat_epochs=15)
    assert qat > 0.95


class _Sig(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sigmoid()
        self.fc = nn.Linear(4 * 36, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.bn(self.conv(x))), 1))


class _NoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.fc = nn.Linear(4 * 36, 10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class _Mul(_NoBN):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))

    def forward(self, x):
        return self.fc(torch.flatten(operator.mul(self.features(x), 2), 1))


@pytest.mark.parametrize("model, match", [
    (_Sig(), r"^'act': unsupported module Sigmoid"),
    (_NoBN(), r"^'features\.0': a Conv2d must be followed by its BatchNorm2d"),
    (_Mul(), r"^node 'mul': unsupported function mul"),
])
def test_refusals_name_the_place(model, match):
    with pytest.raises(UnsupportedOpError, match=match) as info:
        f8nn.quantize(model, torch.zeros((1, 1, 8, 8), dtype=torch.uint8))
    assert "\n" not in str(info.value)

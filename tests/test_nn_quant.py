"""f8hw.nn quantization primitives on hand-checked cases: FL buffers, STE, BN fusion, GAP fold."""

import math

import pytest
import torch
from torch import nn

import f8hw.nn as f8nn
from f8hw.nn.quant import ActQuant, fix_quant


def test_fix_quant_rounds_half_to_even_and_saturates():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, 300.0, -3.0])
    assert fix_quant(x, 0, False).tolist() == [0.0, 2.0, 2.0, 0.0, 255.0, 0.0]
    assert fix_quant(x, 0, True).tolist() == [0.0, 2.0, 2.0, -0.0, 127.0, -3.0]
    # FL 2: grid of 0.25
    assert fix_quant(torch.tensor([0.375, 0.625]), 2, False).tolist() == [0.5, 0.5]


def test_straight_through_gradient_is_masked_on_the_rounded_value():
    x = torch.tensor([-1.0, 3.4, 254.4, 254.6, 300.0], requires_grad=True)
    fix_quant(x, 0, False).sum().backward()
    # rounded: -1, 3, 254, 255, 300 -> passes only strictly inside (0, 255)
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    y = torch.tensor([-127.4, -126.4, 126.6, 0.2], requires_grad=True)  # rounded -127, -126, 127, 0
    fix_quant(y, 0, True).sum().backward()
    assert y.grad.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_fl_buffer_tracks_batch_fl_with_momentum_and_eval_rounds_it():
    q = ActQuant(signed=False, learn_alpha=True)
    assert q.fl_buffer.item() == 6.0 and q.alpha.item() == 8.0
    t = torch.tensor([-2.0, 2.0])  # sigma (unbiased) = 2*sqrt(2): floor(log2(70 / 2.83)) = 4
    q.train()
    out, fl = q(t)
    assert fl == 4
    assert out.tolist() == [0.0, 2.0]  # the batch is quantized at its own FL, unsigned (ReLU)
    assert q.fl_buffer.item() == pytest.approx(0.9 * 6 + 0.1 * 4)
    q(t)
    assert q.fl_buffer.item() == pytest.approx(0.9 * 5.8 + 0.1 * 4)
    q.eval()
    assert q.eval_fl() == 6  # round(5.62)
    _, fl = q(t)
    assert fl == 6
    q.fl_buffer.fill_(4.5)
    assert q.eval_fl() == 4  # half to even
    q.fl_buffer.fill_(12.0)
    assert q.eval_fl() == 8  # clamped to the unsigned range


def test_signed_fl_and_eta():
    q = ActQuant(signed=True, learn_alpha=True).train()
    _, fl = q(torch.tensor([-1.0, 1.0]))  # floor(log2(40 / sqrt(2))) = 4
    assert fl == 4
    q.fl_buffer.fill_(5.0)
    q.alpha.data.fill_(-2.0)  # |alpha|
    assert q.eta().item() == pytest.approx(2**5 * 2.0 / 127)
    u = ActQuant(signed=False, learn_alpha=True)
    u.fl_buffer.fill_(3.0)
    assert u.eta().item() == pytest.approx(8 * 8.0 / 255)


class _ConvThenFC(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = f8nn.QConv2d(1, 2, 1)
        self.pool = f8nn.QGlobalAvgPool2d()
        self.fc = f8nn.QLinear(2, 1)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def _hand_model(size=4):
    model = _ConvThenFC()
    f8nn.prepare(model, torch.zeros(1, 1, size, size, dtype=torch.uint8))
    with torch.no_grad():
        model.conv.conv.weight.copy_(torch.tensor([0.5, -0.5]).view(2, 1, 1, 1))
        model.conv.bn.weight.fill_(2.0)
        model.conv.bn.bias.fill_(0.25)
        model.conv.bn.running_mean.fill_(0.1)
        model.conv.bn.running_var.fill_(4.0 - model.conv.bn.eps)
    return model


def test_bn_fusion_effective_weight_and_bias_by_hand():
    model = _hand_model()
    # GAP input quantizer and the classifier: eta_next of conv is the classifier's (through the pool)
    assert model.conv.links["next"] is model.fc.act
    model.fc.act.fl_buffer.fill_(2.0)
    model.fc.act.alpha.data.fill_(2.55)  # eta_next = 2**2 * 2.55 / 255 = 0.04
    model.pool.act.fl_buffer.fill_(3.0)
    f8nn.set_quantized(model, True)
    model.eval()
    w, w_fl, b, fl_x = model.conv.integer_params()
    # first layer: image at FL 8, eta_self = 1; gamma/sigma_bn = 2/2 = 1; 4x4 pool: fold factor 16/16 = 1
    # W_eff = 1 * [0.5, -0.5] / 0.04 = [12.5, -12.5]: sigma 17.7 -> FL floor(log2(40/17.7)) = 1
    assert (fl_x, w_fl) == (8, 1)
    assert w.flatten().tolist() == [25, -25]
    # b_eff = (0.25 - 1 * 0.1) / 0.04 = 3.75 at fl_a = 9
    assert b.tolist() == [1920, 1920]


def test_double_forward_updates_bn_statistics_from_the_quantized_input():
    model = _hand_model()
    f8nn.set_quantized(model, True)
    model.train()
    bn = model.conv.bn
    bn.reset_running_stats()
    images = torch.tensor([64, 192], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 1, 4, 4).contiguous()
    model(images)
    # y0 = W * x_q * eta_self, x_q = p / 256: channel 0 sees 0.125 and 0.375
    assert bn.running_mean.tolist() == pytest.approx([0.1 * 0.25, -0.1 * 0.25])
    var = torch.tensor([0.125] * 16 + [0.375] * 16).var().item()  # running stats use the unbiased variance
    assert bn.running_var.tolist() == pytest.approx([0.9 + 0.1 * var] * 2)


def test_global_average_pool_factor_is_folded_into_the_previous_layer():
    model = _hand_model(size=3)  # 9 positions: shift round(log2 9) = 3, factor 8 / 9
    assert model.f8_plan.nodes[2].attrs["shift"] == 3
    assert model.conv.links["pool_scale"] == pytest.approx(8 / 9)
    model.fc.act.fl_buffer.fill_(2.0)
    model.fc.act.alpha.data.fill_(2.55)
    f8nn.set_quantized(model, True)
    model.eval()
    w_eff, b_eff = model.conv._fused_float(None)
    assert w_eff.flatten().tolist() == pytest.approx([12.5 * 8 / 9, -12.5 * 8 / 9])
    assert b_eff.tolist() == pytest.approx([3.75 * 8 / 9] * 2)
    assert math.log2(model.conv.links["pool_scale"] * 9) == 3

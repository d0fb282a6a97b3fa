"""F8Net QAT layers: use them in any PyTorch model, then f8hw.nn.prepare(model, example).

Every module has two modes (f8hw.nn.set_quantized):

* float (pre-training): an ordinary conv+BN / linear; a layer applies ReLU to
  its input when the input is unsigned, so the float model is a normal CNN;
* F8: the brief's section 2 arithmetic.  A layer quantizes its own input
  (ReLU = unsigned saturation), fuses BN by double forward, scales its
  effective weight and bias by eta_self / eta_next (eta_next comes from the
  master reader of its output, wired by prepare), quantizes the weight with FL
  from sigma and the bias on the accumulator grid.  Its output is the
  "t-tensor" of its readers, v / 2**fl_a exactly.

In eval the F8 forward computes, in float, the same integers the exported
graph computes (see integer_params and f8hw.nn.integer_forward).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from f8hw.errors import F8Error
from f8hw.nn.fp8quant import format_kind, format_name
from f8hw.nn.quant import ActQuant, fake_quant, quantize_bias, weight_fl
from f8hw.numerics import encode, unit_exponent


class F8Module(nn.Module):
    """Base of every f8hw.nn module: the float/F8 mode flag and the wiring made by prepare()."""

    def __init__(self):
        super().__init__()
        self.quantized = False
        self.links: dict = {}  # filled by prepare(): "next" (ActQuant | None), "pool_scale", "skip_quant"

    def _require_wiring(self) -> None:
        if "next" not in self.links:
            raise F8Error(
                f"{type(self).__name__} runs in F8 mode before f8hw.nn.prepare(model, example_input) wired it"
            )

    def next_eta(self) -> torch.Tensor | float:
        """eta of the master reader of this layer's output (1 when the output is the model's output)."""
        reader = self.links["next"]
        return 1.0 if reader is None else reader.eta()


class _QLayer(F8Module):
    """Shared F8 path of QConv2d and QLinear: input format (act.kind) and weight format (w_kind)."""

    def _bad_input(self, x: torch.Tensor, wanted: str, got: str):
        """An F8Error naming the layer instead of torch's RuntimeError from deep inside the conv/matmul."""
        name = f"layer {self.links['name']!r}" if "name" in self.links else type(self).__name__
        raise F8Error(f"{name}: expects {wanted}, got {got} (input shape {tuple(x.shape)})")

    def set_format(self, format: str | None = None, w_format: str | None = None) -> None:
        """Set the input activation format and/or the weight format by name ("int8", "e4m3", ...)."""
        layer = f"layer {self.links['name']!r} " if "name" in self.links else ""
        if format is not None:
            self.act.kind = format_kind(format, f"{layer}input format")
        if w_format is not None:
            self.w_kind = format_kind(w_format, f"{layer}weight format")

    @property
    def formats(self) -> tuple[str, str]:
        """(input format name, weight format name); the image input reads as int8."""
        return format_name(self.act.read_kind), format_name(self.w_kind)

    def _fused_float(self, x_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def quantized_params(self, x_q: torch.Tensor, fl_x: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        """(fake-quantized weight, w_fl, bias on the accumulator grid 2**-(x.unit + w.unit)), straight-through."""
        self._require_wiring()
        w_eff, b_eff = self._fused_float(x_q)
        w_fl = weight_fl(w_eff, self.w_kind)
        unit = fl_x + unit_exponent(self.act.read_kind) + w_fl + unit_exponent(self.w_kind)
        return fake_quant(w_eff, w_fl, True, self.w_kind), w_fl, quantize_bias(b_eff, unit)

    @torch.no_grad()
    def integer_params(self) -> tuple[torch.Tensor, int, torch.Tensor, int]:
        """Eval-mode (stored weight: int8 values or FP8 codes, w_fl, bias at the accumulator unit, input fl)
        as int64 tensors: what export writes."""
        if self.training:
            raise F8Error(f"{type(self).__name__}.integer_params needs eval mode (model.eval())")
        fl_x = self.act.eval_fl()
        w_q, w_fl, b_q = self.quantized_params(None, fl_x)
        if self.w_kind == "int":
            w_int = torch.round(w_q * 2.0**w_fl).to(torch.int64)
        else:
            w_int = torch.from_numpy(encode(w_q.double().numpy(), self.w_kind, w_fl).astype(np.int64))
        b = b_q.double() * 2.0 ** (fl_x + unit_exponent(self.act.read_kind) + w_fl + unit_exponent(self.w_kind))
        if b.numel() and b.abs().max().item() >= 2.0**63:
            name = self.links.get("name", type(self).__name__)
            raise F8Error(f"layer {name!r}: bias does not fit int64 with formats {'/'.join(self.formats)}")
        return w_int, w_fl, torch.round(b).to(torch.int64), fl_x


class QConv2d(_QLayer):
    """Conv2d + BatchNorm2d with F8Net quantization (groups/depthwise, stride, padding).

    signed_input: the input is a signed 8-bit tensor (e.g. MobileNetV2's
    linear bottleneck); otherwise unsigned, i.e. the layer applies ReLU.
    format: the input's 8-bit format ("int8" or an FP8 name); w_format the
    weight's (default: format).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, signed_input=False,
                 format="int8", w_format=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = ActQuant(signed_input, learn_alpha=True, format=format)
        self.w_kind = format_kind(format if w_format is None else w_format, "weight format")
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def _conv(self, x, w, b=None):
        c = self.conv
        return F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups)

    def _fused_float(self, x_q):
        """W_eff = gamma/sigma_bn * W * eta_self/eta_next, b_eff = (beta - gamma mu/sigma_bn)/eta_next.

        In training the BN statistics come from a first forward with float
        weights on the quantized input (no backprop through it), which also
        updates the running statistics; in eval the running statistics.
        Both are further multiplied by the folded global-average-pool factor.
        """
        eta_self = self.act.eta()
        if self.training:
            with torch.no_grad():
                y0 = self._conv(x_q * eta_self, self.conv.weight)
                self.bn(y0)  # running statistics
                mean, var = y0.mean((0, 2, 3)), y0.var((0, 2, 3), unbiased=False)
        else:
            mean, var = self.bn.running_mean, self.bn.running_var
        scale = self.bn.weight / torch.sqrt(var + self.bn.eps)
        out_scale = self.links.get("pool_scale", 1.0) / self.next_eta()
        w_eff = scale[:, None, None, None] * self.conv.weight * eta_self * out_scale
        b_eff = (self.bn.bias - scale * mean) * out_scale
        return w_eff, b_eff

    def forward(self, x):
        cin = self.conv.in_channels
        if x.dim() != 4 or x.shape[1] != cin:
            self._bad_input(x, f"{cin} input channels", f"{x.shape[1]} channels" if x.dim() == 4 else
                            f"a {x.dim()}-d tensor, not an (N, C, H, W) batch")
        if not self.quantized:
            return self.bn(self.conv(self.act.float_view(x)))
        x_q, fl_x = self.act(x)
        w_q, _, b_q = self.quantized_params(x_q, fl_x)
        return self._conv(x_q, w_q, b_q)


class QLinear(_QLayer):
    """Linear layer with F8Net quantization; as the classifier its output is the int32 logits at fl_in + w_fl."""

    def __init__(self, in_features, out_features, signed_input=False, format="int8", w_format=None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = ActQuant(signed_input, learn_alpha=True, format=format)
        self.w_kind = format_kind(format if w_format is None else w_format, "weight format")

    def _fused_float(self, x_q):
        out_scale = 1.0 / self.next_eta()
        return self.linear.weight * self.act.eta() * out_scale, self.linear.bias * out_scale

    def forward(self, x):
        fin = self.linear.in_features
        if x.dim() == 0 or x.shape[-1] != fin:
            self._bad_input(x, f"{fin} input features", f"{x.shape[-1]} features" if x.dim() else "a scalar")
        if not self.quantized:
            return self.linear(self.act.float_view(x))
        x_q, fl_x = self.act(x)
        w_q, _, b_q = self.quantized_params(x_q, fl_x)
        return F.linear(x_q, w_q, b_q)


class QAdd(F8Module):
    """Residual join: main + skip, main being the output of a QConv2d/QLinear (the add is fused into it).

    The skip is quantized exactly as the graph's accelerator sees it: when
    the skip tensor is also read by a layer (identity shortcut), it is that
    layer's int8 input; otherwise (e.g. a downsample conv's output) this
    module's own signed quantizer.  In F8 mode the sum is exact: both
    operands are on power-of-two grids.
    """

    def __init__(self):
        super().__init__()
        self.skip_act = ActQuant(signed=True, learn_alpha=False)

    def skip_quant(self) -> ActQuant:
        return self.links.get("skip_quant", self.skip_act)

    def forward(self, main, skip):
        if main.shape != skip.shape:
            name = f"add {self.links['name']!r}" if "name" in self.links else "QAdd"
            raise F8Error(f"{name}: main operand of shape {tuple(main.shape)} and skip of shape "
                          f"{tuple(skip.shape)} differ")
        if not self.quantized:
            return main + self.skip_quant().float_view(skip)
        self._require_wiring()
        skip_q, _ = self.skip_quant()(skip, update_buffer=self.skip_quant() is self.skip_act)
        return main + skip_q


class QGlobalAvgPool2d(F8Module):
    """Global average pool: integer sum of the quantized input, divided by 2**round(log2 n).

    The factor 2**round(log2 n) / n is folded into the producing layer by
    prepare(); output (N, C, 1, 1) like nn.AdaptiveAvgPool2d(1).
    """

    def __init__(self, signed_input=False):
        super().__init__()
        self.act = ActQuant(signed_input, learn_alpha=False)

    @staticmethod
    def shift_for(positions: int) -> int:
        return int(round(math.log2(positions)))

    def forward(self, x):
        if not self.quantized:
            return self.act.float_view(x).mean((2, 3), keepdim=True)
        x_q, _ = self.act(x)
        return x_q.sum((2, 3), keepdim=True) / 2.0 ** self.shift_for(x.shape[2] * x.shape[3])

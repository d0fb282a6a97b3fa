"""Fake-quantization primitives of F8Net QAT (brief section 2).

The forward values come from f8hw.numerics.quantize_torch (torch.round is
round-half-to-even, the one rounding rule); gradients are straight-through,
masked on the *rounded* value as in the paper's reference code: a signed
value passes gradient when |r| < 127, an unsigned one when 0 < r < 255.
"""

from __future__ import annotations

import torch
from torch import nn

from f8hw.nn.fp8quant import format_kind, fp8_quant, sigma_fl
from f8hw.numerics import fl_range, qrange, quantize_torch

FL_MOMENTUM = 0.1
"""Weight of a batch's FL in the activation FL buffer (buf = 0.9 buf + 0.1 FL_batch)."""
FL_BUFFER_INIT = 6.0
ALPHA_INIT = 8.0
IMAGE_FL = 8
"""The uint8 image pixel p is the unsigned fixed-point value p / 2**8."""


class _FixQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fl: int, signed: bool):
        scaled = x * 2.0**fl
        rounded = torch.round(scaled)
        lo, hi = qrange(signed)
        ctx.save_for_backward((rounded > lo) & (rounded < hi))
        return quantize_torch(x, fl, signed) / 2.0**fl

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def fix_quant(x: torch.Tensor, fl: int, signed: bool) -> torch.Tensor:
    """8-bit fixed-point fake quantization: clamp(round(x * 2**fl)) / 2**fl, masked STE."""
    return _FixQuant.apply(x, fl, signed)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def quantize_bias(b: torch.Tensor, fl_a: int) -> torch.Tensor:
    """Bias on the int32 grid of the accumulator (fl_a), identity gradient."""
    return _RoundSTE.apply(b * 2.0**fl_a) / 2.0**fl_a


def weight_fl(w_eff: torch.Tensor, kind: str = "int") -> int:
    """Signed FL (scale) of an effective weight from its whole-tensor sigma (paper eq. 1 or its FP8 analogue)."""
    return sigma_fl(w_eff, True, kind)


def fake_quant(x: torch.Tensor, fl: int, signed: bool, kind: str = "int") -> torch.Tensor:
    """fix_quant for INT8, fp8_quant (after the ReLU when unsigned) for an FP8 kind."""
    if kind == "int":
        return fix_quant(x, fl, signed)
    return fp8_quant(x if signed else torch.relu(x), kind, fl)


class ActQuant(nn.Module):
    """Quantizer of one layer input: FL buffer (momentum 0.1, init 6) and, for layers, a PACT alpha.

    The tensor t it receives is already divided by the eta of the tensor's
    master reader (the producer did it), so quantizing is only
    clamp(round(t * 2**FL)).  In training the FL of the batch comes from the
    batch's sigma and the buffer tracks it; in eval FL = round(buffer).
    Sibling readers delegate alpha to their master (prepare() wires it).
    With an FP8 kind (``format``) there is no clipping level: eta is 1 and
    the tensor is rounded onto the format's grid at scale FL.  The image input
    is always read as u8 fl 8.
    """

    def __init__(self, signed: bool, learn_alpha: bool, format: str = "int8"):
        super().__init__()
        self.signed = bool(signed)
        self.kind = format_kind(format)
        self.register_buffer("fl_buffer", torch.tensor(FL_BUFFER_INIT))
        self.alpha = nn.Parameter(torch.tensor(ALPHA_INIT)) if learn_alpha else None
        self.image_input = False
        self.links: dict = {}  # "alpha_owner": ActQuant (not registered: shared, owned elsewhere)

    def extra_repr(self) -> str:
        kind = "" if self.kind == "int" else f", format={self.kind}"
        return f"signed={self.signed}, image_input={self.image_input}{kind}"

    @property
    def read_kind(self) -> str:
        """The kind this quantizer reads its tensor in: "int" for the image input."""
        return "int" if self.image_input else self.kind


    @property
    def qmax(self) -> int:
        return qrange(self.signed)[1]

    def eval_fl(self) -> int:
        """The FL used in eval and in the exported model: round(buffer), clamped to the range."""
        if self.image_input:
            return IMAGE_FL
        r = fl_range(self.signed, self.kind)
        return int(min(max(int(torch.round(self.fl_buffer).item()), r.start), r.stop - 1))

    def shared_alpha(self) -> torch.Tensor:
        owner = self.links.get("alpha_owner", self)
        return owner.alpha

    def eta(self) -> torch.Tensor | float:
        """eta = 2**FL_buffered * |alpha| / (255 unsigned, 127 signed); 1 for the image input."""
        if self.image_input or self.kind != "int":
            return 1.0
        return 2.0 ** self.eval_fl() * torch.abs(self.shared_alpha()) / self.qmax

    def float_view(self, x: torch.Tensor) -> torch.Tensor:
        """What the float (pre-training) model feeds the layer: image / 256, ReLU if unsigned."""
        if self.image_input or x.dtype == torch.uint8:
            return image_as_float(x)
        return x if self.signed else torch.relu(x)

    def forward(self, t: torch.Tensor, update_buffer: bool = True) -> tuple[torch.Tensor, int]:
        """(t quantized as a float tensor of values q / 2**FL, FL)."""
        if self.image_input:
            return image_as_float(t), IMAGE_FL
        if self.training:
            fl = sigma_fl(t, self.signed, self.kind) if t.numel() > 1 else fl_range(self.signed, self.kind)[-1]
            if update_buffer:
                with torch.no_grad():
                    self.fl_buffer.mul_(1 - FL_MOMENTUM).add_(FL_MOMENTUM * fl)
        else:
            fl = self.eval_fl()
        return fake_quant(t, fl, self.signed, self.kind), fl


def image_as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels p -> p / 256 (float input is taken as already scaled)."""
    return x.to(torch.float32) / 2.0**IMAGE_FL if x.dtype == torch.uint8 else x

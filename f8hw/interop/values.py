"""The values an imported QONNX graph carries between its nodes, and the Quant node's arithmetic.

An ONNX tensor becomes one of:

* ``Const``: an initializer, possibly quantized by a ``Quant`` node (weights, biases);
* ``QT``: an f8hw integer tensor (the output of an activation ``Quant``);
* ``Pending``: an exact value not yet quantized (a layer's accumulator, a residual sum, a ReLU of a
  quantized tensor, a global sum) -- it becomes IR outputs when a ``Quant`` reads it;
* ``RAW``: the float graph input before its quantizer.

FLs here are the true ones (scale = 2**-fl); ``fl_offsets`` later fits them into the IR's ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from f8hw.errors import F8Error
from f8hw.ir import Node
from f8hw.numerics import TensorFormat

__all__ = ["QT", "RAW", "Const", "Pending", "QonnxImportError", "QuantSpec", "activation_format", "quant_spec", "quantize_const"]


class QonnxImportError(F8Error):
        """A QONNX graph f8hw cannot map exactly; the message names the node and the reason."""


@dataclass
class Const:
    """An initializer; ``fl`` is set once a Quant node made it an integer tensor (values are then ints)."""

    values: np.ndarray
    fl: int | None = None
    bits: int | None = None

    @property
    def quantized(self) -> bool:
        return self.fl is not None


@dataclass
class QT:
    """An integer tensor of the IR: reference, true format, per-sample shape."""

    ref: str
    fmt: TensorFormat
    shape: tuple


@dataclass
class Pending:
    """An exact, not yet quantized value computed by an IR node (outputs are added as Quants read it).

    kind: "layer" (conv2d/linear accumulator), "identity" (a 1x1 depthwise / identity linear over
    ``base``: a quantized tensor requantized, added or ReLU'd), "avgpool" (a global sum).
    """

    kind: str
    node: Node
    fl_v: int
    shape: tuple
    onnx: str
    relu: bool = False
    skip: QT | None = None
    flatten: str | None = None          # name of a Flatten/Reshape applied before quantization
    folded: set = field(default_factory=set)   # ops folded in (bias add, batchnorm): each only once


RAW = object()
"""The float graph input (no quantizer yet)."""


@dataclass(frozen=True)
class QuantSpec:
    """The parameters of one QONNX Quant node."""

    node: str
    fl: int
    bits: int
    signed: bool
    narrow: bool
    rounding: str
    rounded_from: float | None = None   # the original scale when --round-scales changed it

    @property
    def range(self) -> tuple[int, int]:
        if self.signed:
            lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
            return (lo + 1 if self.narrow else lo), hi
        return 0, 2**self.bits - 1 - (1 if self.narrow else 0)


def _scalar(node: str, what: str, c) -> float:
    if not isinstance(c, Const) or c.quantized:
        raise QonnxImportError(f"node {node!r}: Quant {what} must be a constant")
    v = np.unique(np.asarray(c.values, np.float64))
    if v.size != 1:
        raise QonnxImportError(f"node {node!r}: Quant {what} is per-channel ({v.size} values); f8hw needs one per tensor")
    return float(v[0])


def quant_spec(node, inputs, attrs, round_scales: bool) -> QuantSpec:
    """Read a Quant node's scale (a power of two, or rounded to one), zero point (0) and bit width."""
    name = node.name
    scale = _scalar(name, "scale", inputs[1])
    zp = _scalar(name, "zero point", inputs[2])
    bits = _scalar(name, "bit width", inputs[3])
    if zp != 0:
        raise QonnxImportError(f"node {name!r}: zero point {zp:g}; f8hw's fixed point needs zero point 0")
    if bits != int(bits) or not 2 <= bits <= 32:
        raise QonnxImportError(f"node {name!r}: bit width {bits:g} is not an integer in 2..32")
    if not scale > 0:
        raise QonnxImportError(f"node {name!r}: scale {scale:g} is not positive")
    exp = math.log2(scale)
    rounded = None
    if exp != round(exp):
        if not round_scales:
            raise QonnxImportError(f"node {name!r}: scale {scale:.6g} is not a power of two "
                                   f"(f8hw is fixed point; --round-scales rounds it to 2^{round(exp)})")
        rounded = scale
    return QuantSpec(name, -round(exp), int(bits), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0)),
                     attrs.get("rounding_mode", "ROUND"), rounded)


_ROUNDING = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil, "ROUND_TO_ZERO": np.trunc}


def quantize_const(spec: QuantSpec, values: np.ndarray) -> Const:
    """Quantize an initializer exactly as QONNX does (scale a power of two, so x / scale is exact)."""
    fn = _ROUNDING.get(spec.rounding)
    if fn is None:
        raise QonnxImportError(f"node {spec.node!r}: rounding_mode {spec.rounding} is not supported "
                               f"(known: {', '.join(_ROUNDING)})")
    lo, hi = spec.range
    q = np.clip(fn(np.asarray(values, np.float64) * 2.0**spec.fl), lo, hi)
    return Const(q.astype(np.int64), spec.fl, spec.bits)


def activation_format(spec: QuantSpec) -> TensorFormat:
    """The IR format of an activation Quant, or a one-line refusal where QONNX and f8hw differ."""
    where = f"node {spec.node!r}"
    if spec.bits != 8:
        raise QonnxImportError(f"{where}: {spec.bits}-bit activation quantizer; f8hw activations are 8-bit")
    if spec.rounding != "ROUND":
        raise QonnxImportError(f"{where}: rounding_mode {spec.rounding}; f8hw rounds activations half to even (ROUND)")
    if spec.signed and not spec.narrow:
        raise QonnxImportError(f"{where}: signed range [-128, 127]; f8hw's signed 8-bit range is [-127, 127] "
                               f"(quantize with narrow_range=True)")
    if not spec.signed and spec.narrow:
        raise QonnxImportError(f"{where}: unsigned narrow range [0, 254]; f8hw's unsigned range is [0, 255]")
    return TensorFormat(spec.fl, spec.signed)

"""The QONNX op handlers of the importer: each maps one ONNX node onto IR nodes exactly, or refuses.

A layer (Conv, Gemm, MatMul) leaves a Pending accumulator; Add folds a bias or a residual into it,
BatchNormalization folds into it, Relu marks it, and the Quant that reads it becomes one of the IR
node's outputs (round half to even + saturation: the IR's requantize).  Operations on quantized
tensors that need a requantization (a Quant of a Quant, an add of two quantized tensors, a ReLU of a
signed tensor read by a layer) become an identity layer: a 1x1 depthwise conv or an identity linear
with weight 1 at FL 0, which requantizes exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from f8hw.interop.values import (
    QT,
    RAW,
    Const,
    Pending,
    QonnxImportError,
    activation_format,
    quant_spec,
    quantize_const,
)
from f8hw.ir import Node, make_ref
from f8hw.numerics import INT32_MAX, INT32_MIN, TensorFormat

__all__ = ["HANDLERS", "State", "final_output"]


@dataclass
class State:
    """The import in progress: IR nodes emitted so far and the value of every ONNX tensor."""

    path: str
    round_scales: bool
    batch: int
    values: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    quantized: dict = field(default_factory=dict)      # ONNX name -> QT of every activation Quant
    notes: list = field(default_factory=list)
    rounded: list = field(default_factory=list)
    inexact: bool = False
    input_qt: QT | None = None
    raw_shape: tuple = ()
    _emitted: set = field(default_factory=set)
    _flat: dict = field(default_factory=dict)
    _forms: dict = field(default_factory=dict)        # id(IR node) -> the one accumulator form its outputs use

    def emit(self, node: Node) -> None:
        if id(node) not in self._emitted:
            self._emitted.add(id(node))
            self.nodes.append(node)

    def before_fold(self, onnx_node, p: Pending) -> None:
        """Folding into p's IR node (bias, BatchNorm, scale) changes it in place: only before it is quantized."""
        if id(p.node) in self._emitted:
            raise QonnxImportError(f"node {onnx_node.name!r}: folds into {p.onnx!r}, whose accumulator is also "
                                   f"quantized without it (f8hw computes one accumulator per layer)")


def _ir_name(name: str) -> str:
    return name.replace(":", "_") or "node"


def _qt(st: State, node, v, what: str = "input") -> QT:
    """The quantized tensor a layer/pool reads; refuses an unquantized activation."""
    if isinstance(v, QT):
        return v
    if isinstance(v, Pending) and v.kind == "identity" and v.relu and v.skip is None and v.flatten is None:
        return materialize(st, v, TensorFormat(v.fl_v, False))   # ReLU of a quantized tensor: exactly unsigned
    if v is RAW or isinstance(v, Pending):
        raise QonnxImportError(f"node {node.name!r}: its {what} has no activation quantizer "
                               f"(f8hw layers read 8-bit tensors: add a Quant, e.g. QuantIdentity/QuantReLU)")
    raise QonnxImportError(f"node {node.name!r}: its {what} is a constant; f8hw layers read activations")


def materialize(st: State, p: Pending, fmt: TensorFormat) -> QT:
    """Make fmt one of p's IR node outputs (emitting the node on first use); the resulting tensor."""
    if p.relu and fmt.signed:
        raise QonnxImportError(f"node {p.onnx!r}: a ReLU output quantized as signed; f8hw realizes ReLU as unsigned "
                               f"saturation (quantize it unsigned, e.g. Uint8ActPerTensorFixedPoint)")
    node = p.node
    form = (p.skip.ref if p.skip is not None else None, p.fl_v, frozenset(p.folded))
    if st._forms.setdefault(id(node), form) != form:
        raise QonnxImportError(f"node {p.onnx!r}: its accumulator is quantized both with and without a residual add "
                               f"or fold (f8hw computes one accumulator per layer)")
    if p.skip is not None and len(node.inputs) == 1:
        node.inputs.append(p.skip.ref)
    st.emit(node)
    if fmt not in node.outputs:
        node.outputs.append(fmt)
    ref = make_ref(node.name, node.outputs.index(fmt))
    shape = tuple(p.shape)
    if p.flatten is not None:
        key = (p.flatten, ref)
        if key not in st._flat:
            k = sum(1 for f in st._flat if f[0] == p.flatten)
            st._flat[key] = name = _ir_name(p.flatten) + (f"_{k}" if k else "")
            st.emit(Node(name, "flatten", [ref], {}, [fmt]))
        ref = st._flat[key]
    return QT(ref, fmt, shape)


def _identity(st: State, node, base: QT, skip: QT | None = None, relu: bool = False) -> Pending:
    """A Pending computed by an identity layer over base (requantize / residual add / ReLU)."""
    name = _ir_name(node.name)
    if len(base.shape) == 3:
        c = base.shape[0]
        ir = Node(name, "conv2d", [base.ref], {"in_channels": c, "out_channels": c, "kernel": [1, 1],
                  "stride": [1, 1], "padding": [0, 0], "groups": c, "w_fl": 0}, [],
                  np.ones((c, 1, 1, 1), np.int8), np.zeros(c, np.int32))
    elif len(base.shape) == 1:
        f = base.shape[0]
        ir = Node(name, "linear", [base.ref], {"in_features": f, "out_features": f, "w_fl": 0}, [],
                  np.eye(f, dtype=np.int8), np.zeros(f, np.int32))
    else:
        raise QonnxImportError(f"node {node.name!r}: cannot requantize a tensor of shape {base.shape}")
    fl_v = base.fmt.fl if skip is None else max(base.fmt.fl, skip.fmt.fl)
    return Pending("identity", ir, fl_v, base.shape, node.name, relu=relu, skip=skip)


# ---------------------------------------------------------------- Quant


def quant(st: State, node, ins, attrs):
    spec = quant_spec(node, ins, attrs, st.round_scales)
    if spec.rounded_from is not None:
        st.rounded.append(f"{node.name}: scale {spec.rounded_from:.6g} -> 2^{-spec.fl}")
        st.inexact = True
    x = ins[0]
    if isinstance(x, Const):
        if x.quantized:
            raise QonnxImportError(f"node {node.name!r}: a Quant of an already quantized constant")
        return quantize_const(spec, x.values)
    fmt = activation_format(spec)
    if x is RAW:
        if fmt.signed:
            raise QonnxImportError(f"node {node.name!r}: the input quantizer is signed; f8hw's input is an unsigned "
                                   f"8-bit image (use Uint8ActPerTensorFixedPoint)")
        if st.input_qt is not None:
            raise QonnxImportError(f"node {node.name!r}: a second quantizer of the graph input")
        ir = Node("input", "input", [], {"shape": list(st.raw_shape)}, [fmt])
        st.emit(ir)
        st.input_qt = QT("input", fmt, st.raw_shape)
        return st.input_qt
    if isinstance(x, QT):
        if x.fmt == fmt:
            return x
        x = _identity(st, node, x)
    if not isinstance(x, Pending):
        raise QonnxImportError(f"node {node.name!r}: cannot quantize this input")
    return materialize(st, x, fmt)


# ---------------------------------------------------------------- layers


def _weight(node, w) -> np.ndarray:
    if not isinstance(w, Const) or not w.quantized:
        raise QonnxImportError(f"node {node.name!r}: the weight has no Quant node (f8hw weights are 8-bit fixed point)")
    if w.values.size and (w.values.min() < -127 or w.values.max() > 127):
        raise QonnxImportError(f"node {node.name!r}: weight integers reach [{w.values.min()}, {w.values.max()}]; "
                               f"f8hw weights lie in [-127, 127] (use a narrow-range 8-bit weight quantizer)")
    return w.values


def _bias(node, b, fl_a: int, n: int) -> np.ndarray:
    """The bias as int32 at the accumulator's FL fl_a (a coarser quantized bias is shifted left exactly)."""
    if b is None:
        return np.zeros(n, np.int32)
    if not isinstance(b, Const):
        raise QonnxImportError(f"node {node.name!r}: the bias is not a constant")
    v = np.asarray(b.values).reshape(-1)
    if v.size != n:
        raise QonnxImportError(f"node {node.name!r}: bias has {v.size} values for {n} outputs")
    if b.quantized:
        if b.fl > fl_a:
            raise QonnxImportError(f"node {node.name!r}: bias scale 2^-{b.fl} is finer than the accumulator's 2^-{fl_a}")
        q = v.astype(np.int64) << (fl_a - b.fl)
    else:
        q = np.asarray(v, np.float64) * 2.0**fl_a
        if not np.array_equal(q, np.round(q)):
            raise QonnxImportError(f"node {node.name!r}: the float bias is not a multiple of the accumulator scale "
                                   f"2^-{fl_a} (quantize it, e.g. bias_quant=Int32Bias)")
        q = q.astype(np.int64)
    if q.size and (q.min() < INT32_MIN or q.max() > INT32_MAX):
        raise QonnxImportError(f"node {node.name!r}: bias does not fit int32 at fl {fl_a}")
    return q.astype(np.int32)


def _pairs(node, attrs, key, default) -> list[int]:
    v = list(attrs.get(key, default))
    if len(v) != 2:
        raise QonnxImportError(f"node {node.name!r}: {key} {v} is not 2-D")
    return [int(i) for i in v]


def _window(node, attrs, kernel) -> tuple[list[int], list[int]]:
    """(stride, symmetric padding) of a Conv/MaxPool; refuses what the IR has not."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise QonnxImportError(f"node {node.name!r}: auto_pad {attrs['auto_pad']} (export with explicit pads)")
    if any(int(v) != 1 for v in attrs.get("dilations", [1, 1])):
        raise QonnxImportError(f"node {node.name!r}: dilations {list(attrs['dilations'])}; f8hw has no dilation")
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise QonnxImportError(f"node {node.name!r}: asymmetric pads {pads}; f8hw pads symmetrically")
    return _pairs(node, attrs, "strides", [1, 1]), pads[:2]


def conv(st: State, node, ins, attrs):
    x = _qt(st, node, ins[0])
    w = _weight(node, ins[1])
    if len(x.shape) != 3 or w.ndim != 4:
        raise QonnxImportError(f"node {node.name!r}: f8hw convolutions are 2-D (input {x.shape}, weight {w.shape})")
    stride, pad = _window(node, attrs, w.shape[2:])
    groups = int(attrs.get("group", 1))
    cout, cg, kh, kw = w.shape
    if cg * groups != x.shape[0] or cout % groups:
        raise QonnxImportError(f"node {node.name!r}: weight {w.shape} with group {groups} does not fit "
                               f"{x.shape[0]} input channels")
    fl_a = x.fmt.fl + ins[1].fl
    ir = Node(_ir_name(node.name), "conv2d", [x.ref],
              {"in_channels": x.shape[0], "out_channels": cout, "kernel": [kh, kw], "stride": stride,
               "padding": pad, "groups": groups, "w_fl": ins[1].fl}, [], w.astype(np.int8),
              _bias(node, ins[2] if len(ins) > 2 else None, fl_a, cout))
    ho = (x.shape[1] + 2 * pad[0] - kh) // stride[0] + 1
    wo = (x.shape[2] + 2 * pad[1] - kw) // stride[1] + 1
    return Pending("layer", ir, fl_a, (cout, ho, wo), node.name)


def _linear(st: State, node, x: QT, wc: Const, w: np.ndarray, b) -> Pending:
    if len(x.shape) != 1 or w.shape[1] != x.shape[0]:
        raise QonnxImportError(f"node {node.name!r}: a linear layer reads (N, {w.shape[1]}), got per-sample {x.shape}")
    fl_a = x.fmt.fl + wc.fl
    ir = Node(_ir_name(node.name), "linear", [x.ref],
              {"in_features": w.shape[1], "out_features": w.shape[0], "w_fl": wc.fl}, [], w.astype(np.int8),
              _bias(node, b, fl_a, w.shape[0]))
    return Pending("layer", ir, fl_a, (w.shape[0],), node.name)


def gemm(st: State, node, ins, attrs):
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
        raise QonnxImportError(f"node {node.name!r}: Gemm with alpha/beta != 1 or transA; f8hw maps x @ W.T + b")
    w = _weight(node, ins[1])
    w = w if attrs.get("transB", 0) else w.T
    return _linear(st, node, _qt(st, node, ins[0]), ins[1], w, ins[2] if len(ins) > 2 else None)


def matmul(st: State, node, ins, attrs):
    w = _weight(node, ins[1])
    if w.ndim != 2:
        raise QonnxImportError(f"node {node.name!r}: MatMul weight must be 2-D, has shape {w.shape}")
    return _linear(st, node, _qt(st, node, ins[0]), ins[1], w.T, None)


def batchnorm(st: State, node, ins, attrs):
    from f8hw.interop.bnfold import fold_batchnorm

    return fold_batchnorm(st, node, ins, attrs)


# ---------------------------------------------------------------- elementwise


def relu(st: State, node, ins, attrs):
    x = ins[0]
    if isinstance(x, Pending):
        return replace(x, relu=True)
    if isinstance(x, QT):
        return x if not x.fmt.signed else _identity(st, node, x, relu=True)
    raise QonnxImportError(f"node {node.name!r}: Relu of an unquantized input")


def add(st: State, node, ins, attrs):
    a, b = ins
    if isinstance(b, Pending) and not isinstance(a, Pending):
        a, b = b, a
    if isinstance(a, Pending) and isinstance(b, Const) and a.kind == "layer" and "bias" not in a.folded:
        st.before_fold(node, a)
        if np.any(a.node.bias):
            raise QonnxImportError(f"node {node.name!r}: a second bias on {a.onnx!r}")
        a.node.bias = _bias(node, b, a.fl_v, len(a.node.bias))
        return replace(a, folded=a.folded | {"bias"})
    if isinstance(a, Pending) and isinstance(b, Pending) and a.kind == "identity" and a.relu:
        a, b = b, a
    if isinstance(b, Pending):
        b = _qt(st, node, b, "second operand")
    if isinstance(a, QT) and isinstance(b, QT):
        return _identity(st, node, a, skip=b)
    if not isinstance(a, Pending) or not isinstance(b, QT):
        raise QonnxImportError(f"node {node.name!r}: Add of these operands is not a residual f8hw can map")
    if a.kind == "avgpool" or a.skip is not None or a.relu or a.flatten is not None:
        raise QonnxImportError(f"node {node.name!r}: a residual add must directly follow a conv/linear (before any "
                               f"ReLU or second add)")
    if tuple(b.shape) != tuple(a.shape):
        raise QonnxImportError(f"node {node.name!r}: residual shapes {a.shape} and {b.shape} differ")
    return replace(a, skip=b, fl_v=max(a.fl_v, b.fmt.fl))


def mul(st: State, node, ins, attrs):
    a, b = ins
    if isinstance(b, Pending):
        a, b = b, a
    if isinstance(a, Pending) and a.kind == "avgpool" and isinstance(b, Const) and not b.quantized:
        v = np.unique(np.asarray(b.values, np.float64))
        k = -math.log2(v[0]) if v.size == 1 and v[0] > 0 else 0.5
        if k == int(k) and k >= 0:
            st.before_fold(node, a)
            a.node.attrs["shift"] += int(k)
            return replace(a, fl_v=a.fl_v + int(k))
    raise QonnxImportError(f"node {node.name!r}: Mul is only mapped as a power-of-two scale of a global sum")


# ---------------------------------------------------------------- pooling and shapes


def maxpool(st: State, node, ins, attrs):
    x = _qt(st, node, ins[0])
    if attrs.get("ceil_mode", 0) or attrs.get("storage_order", 0):
        raise QonnxImportError(f"node {node.name!r}: MaxPool ceil_mode/storage_order are not supported")
    k = _pairs(node, attrs, "kernel_shape", [])
    stride, pad = _window(node, attrs, k)
    if 2 * pad[0] > k[0] or 2 * pad[1] > k[1]:
        raise QonnxImportError(f"node {node.name!r}: MaxPool padding {pad} exceeds half the kernel {k}")
    ir = Node(_ir_name(node.name), "maxpool", [x.ref], {"kernel": k, "stride": stride, "padding": pad}, [x.fmt])
    st.emit(ir)
    shape = (x.shape[0], (x.shape[1] + 2 * pad[0] - k[0]) // stride[0] + 1,
             (x.shape[2] + 2 * pad[1] - k[1]) // stride[1] + 1)
    return QT(ir.name, x.fmt, shape)


def _global(st: State, node, ins, mean: bool) -> Pending:
    x = _qt(st, node, ins[0])
    if len(x.shape) != 3:
        raise QonnxImportError(f"node {node.name!r}: a global pool reads (N, C, H, W)")
    n = x.shape[1] * x.shape[2]
    m = int(math.log2(n)) if mean else 0
    if mean and 2**m != n:
        raise QonnxImportError(f"node {node.name!r}: the mean over {x.shape[1]}x{x.shape[2]} = {n} positions is not a "
                               f"division by a power of two (f8hw divides by 2^shift)")
    ir = Node(_ir_name(node.name), "avgpool_global", [x.ref], {"shift": m}, [])
    return Pending("avgpool", ir, x.fmt.fl + m, (x.shape[0], 1, 1), node.name)


def _spatial_axes(st: State, node, ins, attrs) -> None:
    axes = attrs.get("axes")
    if axes is None and len(ins) > 1 and isinstance(ins[1], Const):
        axes = ins[1].values.tolist()
    if sorted(int(a) for a in (axes or [])) != [2, 3] or not attrs.get("keepdims", 1):
        raise QonnxImportError(f"node {node.name!r}: {node.op_type} is mapped over axes [2, 3] with keepdims only")


def global_avg(st: State, node, ins, attrs):
    return _global(st, node, ins, True)


def reduce_mean(st: State, node, ins, attrs):
    _spatial_axes(st, node, ins, attrs)
    return _global(st, node, ins, True)


def reduce_sum(st: State, node, ins, attrs):
    _spatial_axes(st, node, ins, attrs)
    return _global(st, node, ins, False)


def flatten(st: State, node, ins, attrs):
    x = ins[0]
    if node.op_type == "Flatten" and int(attrs.get("axis", 1)) != 1:
        raise QonnxImportError(f"node {node.name!r}: Flatten axis {attrs['axis']}; f8hw flattens (N, C, H, W) to (N, CHW)")
    shape = x.shape if isinstance(x, (QT, Pending)) else None
    if shape is None:
        raise QonnxImportError(f"node {node.name!r}: cannot flatten this input")
    if node.op_type == "Reshape":
        target = ins[1].values.tolist() if isinstance(ins[1], Const) else None
        if not target or len(target) != 2 or target[1] not in (-1, int(np.prod(shape))):
            raise QonnxImportError(f"node {node.name!r}: Reshape to {target} is not a flatten to (N, {int(np.prod(shape))})")
    flat = (int(np.prod(shape)),)
    if len(shape) == 1:
        return x
    if isinstance(x, Pending):
        if x.flatten is not None:
            raise QonnxImportError(f"node {node.name!r}: a second flatten of an unquantized value")
        return replace(x, flatten=node.name, shape=flat)
    ir = Node(_ir_name(node.name), "flatten", [x.ref], {}, [x.fmt])
    st.emit(ir)
    return QT(ir.name, x.fmt, flat)


def final_output(st: State, name: str) -> QT:
    """The graph output: a quantized tensor, or a layer accumulator as the raw int32 logits."""
    v = st.values[name]
    if isinstance(v, QT):
        return v
    if isinstance(v, Pending) and v.kind == "layer" and v.skip is None and not v.relu and v.flatten is None:
        fmt = TensorFormat(v.fl_v, True, 32)
        return materialize(st, v, fmt)
    raise QonnxImportError(f"node {v.onnx if isinstance(v, Pending) else name!r}: the graph output must be a Quant "
                           f"output or a conv/linear without a ReLU or residual (the int32 logits)")


HANDLERS = {
    "Quant": quant, "Conv": conv, "Gemm": gemm, "MatMul": matmul, "BatchNormalization": batchnorm,
    "Relu": relu, "Add": add, "Mul": mul, "MaxPool": maxpool, "GlobalAveragePool": global_avg,
    "ReduceMean": reduce_mean, "ReduceSum": reduce_sum, "Flatten": flatten, "Reshape": flatten,
}

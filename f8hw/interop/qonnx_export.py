"""f8hw IR -> QONNX: an integer graph as Quant/Conv/Gemm/... nodes that FINN, hls4ml and onnxruntime open.

Every tensor becomes the float value q * 2**-fl behind a Quant node with scale 2**-fl and zero point 0
(weights: signed narrow 8-bit; activations: signed narrow or unsigned 8-bit, ROUND = round half to even,
whose clamp is the IR's saturation).  Biases are float initializers holding b * 2**-fl_a exactly (the
importer reads them back exactly), so qonnx's QuantToQCDQ turns the file into plain ONNX
(QuantizeLinear/Clip/DequantizeLinear) that onnxruntime runs.  The float graph
computes the IR exactly while accumulators stay below 2**24 (float32).  The input is the image
times 2**-8.  ``f8hw.interop.import_qonnx`` reads the file back to the same IR, node names included.
"""

from __future__ import annotations

import os

import numpy as np

import f8hw
from f8hw.errors import F8Error
from f8hw.interop.deps import require_onnx
from f8hw.ir import Graph, canonical_ref, make_ref
from f8hw.numerics import TensorFormat

__all__ = ["INPUT_NAME", "PRODUCER", "export_qonnx"]

PRODUCER = "f8hw"
INPUT_NAME = "image"
QONNX_DOMAIN = "qonnx.custom_op.general"


class _Builder:
    """Accumulates ONNX nodes and initializers."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits = [], []

    def const(self, name: str, value) -> str:
        self.inits.append(self.numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def op(self, op: str, inputs: list[str], output: str, name: str, domain: str | None = None, **attrs) -> str:
        kw = {"domain": domain} if domain else {}
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, **kw, **attrs))
        return output

    def quant(self, x: str, out: str, name: str, fl: int, bits: int, signed: bool, narrow: bool) -> str:
        scale = self.const(f"{name}_scale", np.float32(2.0**-fl))
        zero = self.const(f"{name}_zero", np.float32(0))
        width = self.const(f"{name}_bits", np.float32(bits))
        return self.op("Quant", [x, scale, zero, width], out, name, QONNX_DOMAIN,
                       signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")


def _tensor(ref: str) -> str:
    name, k = ref.partition(":")[0], ref.partition(":")[2]
    return name if not k else f"{name}_out{k}"


def _exact_float32(node_name: str, what: str, q: np.ndarray) -> None:
    if q.size and np.abs(q.astype(np.int64)).max() >= 2**24:
        raise F8Error(f"node {node_name!r}: {what} integers reach {int(np.abs(q).max())}, beyond float32's exact "
                      f"range 2^24: the QONNX file could not hold them exactly")


def _layer(b: _Builder, node, graph: Graph) -> dict[str, str]:
    """Conv/Gemm (+ residual Add) and one Quant per output; returns ref -> ONNX tensor name."""
    a = node.attrs
    fx = graph.format(node.inputs[0])
    fl_a = fx.fl + a["w_fl"]
    _exact_float32(node.name, "bias", node.bias)
    w = b.const(f"{node.name}_weight", node.weight.astype(np.float64) * 2.0**-a["w_fl"])
    wq = b.quant(w, f"{node.name}_weight_q", f"{node.name}_weight_quant", a["w_fl"], 8, True, True)
    bq = b.const(f"{node.name}_bias", node.bias.astype(np.float64) * 2.0**-fl_a)   # exact: |b| < 2^24
    x = _tensor(canonical_ref(node.inputs[0]))
    if node.op == "conv2d":
        (ph, pw) = a["padding"]
        v = b.op("Conv", [x, wq, bq], f"{node.name}_acc", node.name, kernel_shape=list(a["kernel"]),
                 strides=list(a["stride"]), pads=[ph, pw, ph, pw], group=a["groups"], dilations=[1, 1])
    else:
        v = b.op("Gemm", [x, wq, bq], f"{node.name}_acc", node.name, transB=1)
    if len(node.inputs) == 2:
        v = b.op("Add", [v, _tensor(canonical_ref(node.inputs[1]))], f"{node.name}_sum", f"{node.name}_add")
    return _outputs(b, node, v, relu=True)


def _outputs(b: _Builder, node, v: str, relu: bool) -> dict[str, str]:
    refs, relu_out = {}, None
    for k, fmt in enumerate(node.outputs):
        ref = make_ref(node.name, k)
        if fmt.bits == 32:
            refs[ref] = v
            continue
        src = v
        if relu and not fmt.signed:
            relu_out = relu_out or b.op("Relu", [v], f"{node.name}_relu", f"{node.name}_relu")
            src = relu_out
        refs[ref] = b.quant(src, _tensor(ref), f"{node.name}_quant{k}", fmt.fl, 8, fmt.signed, fmt.signed)
    return refs


def export_qonnx(graph: Graph, path: str | os.PathLike, batch: int = 1) -> None:
    """Write graph as a QONNX file (input: (batch, C, H, W) float = image * 2**-8)."""
    require_onnx("exporting to QONNX")
    import onnx
    from onnx import TensorProto, helper

    graph.validate()
    b = _Builder()
    names: dict[str, str] = {}
    shapes = graph.shapes()
    for node in graph.nodes:
        if node.op == "input":
            fmt: TensorFormat = node.outputs[0]
            names[node.name] = b.quant(INPUT_NAME, node.name, "input_quant", fmt.fl, 8, False, False)
        elif node.op in ("conv2d", "linear"):
            names.update(_layer(b, node, graph))
        elif node.op == "maxpool":
            a = node.attrs
            (ph, pw) = a["padding"]
            names[node.name] = b.op("MaxPool", [names[canonical_ref(node.inputs[0])]], node.name, node.name,
                                    kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=[ph, pw, ph, pw])
        elif node.op == "flatten":
            names[node.name] = b.op("Flatten", [names[canonical_ref(node.inputs[0])]], node.name, node.name, axis=1)
        elif node.op == "avgpool_global":
            _, h, w = shapes[canonical_ref(node.inputs[0])]
            x, m = names[canonical_ref(node.inputs[0])], node.attrs["shift"]
            if 2**m == h * w:
                v = b.op("GlobalAveragePool", [x], f"{node.name}_mean", node.name)
            else:
                b.inits.append(onnx.numpy_helper.from_array(np.array([2, 3], np.int64), f"{node.name}_axes"))
                s = b.op("ReduceSum", [x, f"{node.name}_axes"], f"{node.name}_sum", node.name, keepdims=1)
                v = b.op("Mul", [s, b.const(f"{node.name}_scale", 2.0**-m)], f"{node.name}_mean", f"{node.name}_mul")
            names.update(_outputs(b, node, v, relu=False))
        else:
            raise F8Error(f"node {node.name!r}: op {node.op} has no QONNX export")
    c, h, w = graph.input_node.attrs["shape"]
    out_shape = [batch, *shapes[canonical_ref(graph.output)]]
    g = helper.make_graph(
        b.nodes, "f8hw", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, c, h, w])],
        [helper.make_tensor_value_info(names[canonical_ref(graph.output)], TensorProto.FLOAT, out_shape)],
        initializer=b.inits)
    model = helper.make_model(g, producer_name=PRODUCER, producer_version=f8hw.__version__,
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    try:
        onnx.save(model, os.fspath(path))
    except OSError as e:
        raise F8Error(f"{path}: cannot write: {e.strerror or e}") from None

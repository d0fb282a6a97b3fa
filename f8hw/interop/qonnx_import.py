"""QONNX -> f8hw IR: a Brevitas (or any QONNX) model with power-of-two Quant nodes as an integer graph.

The graph is cleaned up with qonnx (constant folding, shape inference), then read node by node
(f8hw.interop.ops maps each op).  The result is an ordinary, validated f8hw graph: the golden model
on it equals qonnx's execute_onnx on every quantized tensor (the image fed to f8hw is the integer
of the input Quant; QONNX sees it times the input scale).  Anything that cannot be mapped exactly is
a one-line QonnxImportError naming the node and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error
from f8hw.interop.deps import require_onnx
from f8hw.interop.values import QT, RAW, Const, QonnxImportError

__all__ = ["ImportResult", "QonnxImportError", "TensorMap", "import_qonnx", "read_qonnx"]


@dataclass(frozen=True)
class TensorMap:
    """Where a quantized ONNX tensor lives in the IR: ref, and the true FL (ONNX value = q * 2**-fl)."""

    ref: str
    fl: int


@dataclass
class ImportResult:
    """An imported model: the IR graph, the ONNX tensor -> IR map, the input scale and notes."""

    graph: object                              # f8hw.ir.Graph (validated)
    tensors: dict[str, TensorMap]
    input_name: str
    input_fl: int                              # the ONNX input is image * 2**-input_fl
    batch: int                                 # the ONNX file's batch size
    notes: list[str] = field(default_factory=list)
    exact: bool = True                         # False when --round-scales or an inexact BN fold changed the model
    rounded_scales: list[str] = field(default_factory=list)
    accuracy: dict | None = None               # --round-scales: accuracy before/after on calibration data

    def meta(self, source: str) -> dict:
        """Primitive metadata for the f8hw model file."""
        m = {"producer": "f8hw.interop.qonnx_import", "source": source, "input_fl": self.input_fl,
             "exact": self.exact, "notes": list(self.notes)}
        if self.accuracy:
            m["round_scales_accuracy"] = dict(self.accuracy)
        return m


def _attrs(node) -> dict:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def read_qonnx(path, shapes: bool = False) -> object:
    """The cleaned-up qonnx ModelWrapper of a file (one-line errors name the file).

    A file written by export_qonnx is already clean and kept as is (node order and names: the IR's);
    ``shapes`` adds shape inference (which reorders nodes), as qonnx's executor needs."""
    require_onnx("importing a QONNX model")
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    p = Path(path)
    if not p.is_file():
        raise F8Error(f"{path}: no such file")
    try:
        model = onnx.load(str(p))
    except Exception as e:
        raise F8Error(f"{path}: not an ONNX file ({type(e).__name__}: {str(e)[:100]})") from None
    try:
        if model.producer_name != "f8hw":
            return cleanup_model(ModelWrapper(model))
        if not shapes:
            return ModelWrapper(model)
        from qonnx.transformation.infer_shapes import InferShapes

        return ModelWrapper(model).transform(InferShapes())
    except Exception as e:
        raise F8Error(f"{path}: qonnx cannot clean up the graph ({type(e).__name__}: {str(e)[:120]})") from None


def import_qonnx(path, round_scales: bool = False, calibration: np.ndarray | None = None) -> ImportResult:
    """Import a QONNX file as an f8hw graph.

    round_scales: round every non-power-of-two scale to the nearest power of two (not exact);
    the accuracy change is then measured on ``calibration`` (uint8 images; default: digits or random).
    """
    require_onnx("importing a QONNX model")
    import onnx

    from f8hw.interop import ops
    from f8hw.interop.fl_offsets import relabel
    from f8hw.ir import Graph

    mw = read_qonnx(path)
    g = mw.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise F8Error(f"{path}: f8hw models have one input and one output, the graph has "
                      f"{len(g.input)} and {len(g.output)}")
    inp = g.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims):
        raise F8Error(f"{path}: input {inp.name!r} must be an image batch (N, C, H, W), has shape {dims}")
    st = ops.State(path=os.fspath(path), round_scales=round_scales, batch=dims[0])
    st.values[inp.name] = RAW
    st.raw_shape = tuple(dims[1:])
    for init in g.initializer:
        st.values[init.name] = Const(onnx.numpy_helper.to_array(init))
    for node in g.node:
        if not node.name:
            node.name = f"{node.op_type}_{len(st.nodes)}"
        handler = ops.HANDLERS.get(node.op_type)
        if handler is None:
            raise QonnxImportError(f"node {node.name!r}: unsupported op {node.op_type} "
                                   f"(f8hw imports: {', '.join(sorted(ops.HANDLERS))})")
        ins = []
        for name in node.input:
            if name and name not in st.values:
                raise QonnxImportError(f"node {node.name!r}: input {name!r} is not produced by an earlier node")
            ins.append(st.values.get(name) if name else None)
        out = handler(st, node, ins, _attrs(node))
        st.values[node.output[0]] = out
        if isinstance(out, QT) and node.op_type == "Quant":
            st.quantized[node.output[0]] = out
    if st.input_qt is None:
        raise QonnxImportError(f"{path}: the graph input {inp.name!r} has no Quant node (f8hw reads an 8-bit image)")
    out = ops.final_output(st, g.output[0].name)
    graph = Graph(st.nodes, out.ref)
    try:
        offsets = relabel(graph)
        graph.validate()
    except F8Error as e:
        raise QonnxImportError(f"{path}: {e}") from None
    tensors = {name: TensorMap(q.ref, q.fmt.fl) for name, q in st.quantized.items()}
    tensors[g.output[0].name] = TensorMap(out.ref, out.fmt.fl)
    for name, tm in tensors.items():
        assert graph.format(tm.ref).fl - offsets[tm.ref] == tm.fl, name
    result = ImportResult(graph, tensors, inp.name, st.input_qt.fmt.fl, st.batch, st.notes,
                          exact=not st.inexact, rounded_scales=st.rounded)
    if st.rounded:
        result.accuracy = _round_scales_accuracy(path, result, calibration)
    return result


def _round_scales_accuracy(path, result: ImportResult, calibration) -> dict:
    """Top-1 of the original QONNX model and of the rounded f8hw graph (labels: digits, else the original's)."""
    from f8hw import golden
    from f8hw.flow.images import default_images
    from f8hw.interop.reference import qonnx_execute

    shape = tuple(result.graph.input_node.attrs["shape"])
    labels = None
    if calibration is None:
        if shape == (1, 8, 8):
            from f8hw import digits

            calibration, labels = digits.load()["test"]
            calibration, labels = calibration[:64], labels[:64]
        else:
            calibration = default_images(shape, 64)[0]
    ref = qonnx_execute(path, calibration, result.input_fl, outputs_only=True)
    before = ref.reshape(len(calibration), -1).argmax(axis=1)
    _, after = golden.classify(result.graph, calibration)
    truth = before if labels is None else np.asarray(labels)
    return {"images": len(calibration), "labels": "digits" if labels is not None else "original predictions",
            "before": float((before == truth).mean()), "after": float((after == truth).mean()),
            "agreement": float((before == after).mean())}

"""Interchange with the QONNX ecosystem (Brevitas, FINN, hls4ml, onnxruntime).

    from f8hw.interop import import_qonnx, export_qonnx
    result = import_qonnx("brevitas_model.onnx")     # -> ImportResult(graph, tensors, notes, ...)
    export_qonnx(f8hw.load("default").graph, "model.onnx")

Needs the optional dependencies (``pip install 'f8hw[onnx]'``); without them
every entry point fails with a one-line F8Error saying so.
"""

from f8hw.interop.deps import require_onnx
from f8hw.interop.qonnx_export import export_qonnx
from f8hw.interop.qonnx_import import ImportResult, TensorMap, import_qonnx
from f8hw.interop.reference import qonnx_execute

__all__ = ["ImportResult", "TensorMap", "export_qonnx", "import_qonnx", "qonnx_execute", "require_onnx"]

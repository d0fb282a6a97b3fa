"""Run a QONNX file with qonnx's own executor on f8hw images: the reference an import is checked against."""

from __future__ import annotations

import numpy as np

from f8hw.interop.deps import require_onnx

__all__ = ["qonnx_execute"]


def qonnx_execute(path, images: np.ndarray, input_fl: int, outputs_only: bool = False):
    """qonnx.core.onnx_exec.execute_onnx on uint8 images fed as images * 2**-input_fl.

    Runs in chunks of the file's batch size (the last one padded).  Returns every tensor of the
    graph by name (float arrays over all images), or just the graph output with ``outputs_only``.
    """
    require_onnx("running a QONNX model")
    from qonnx.core.onnx_exec import execute_onnx

    from f8hw.interop.qonnx_import import read_qonnx

    mw = read_qonnx(path, shapes=True)
    inp, out = mw.graph.input[0].name, mw.graph.output[0].name
    batch = mw.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    x = np.asarray(images, np.float32) * np.float32(2.0**-input_fl)
    parts: dict[str, list] = {}
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), np.float32)])
        ctx = execute_onnx(mw, {inp: chunk}, return_full_exec_context=not outputs_only)
        for name, v in ctx.items():
            if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == batch:
                parts.setdefault(name, []).append(v[:n])
    full = {k: np.concatenate(v) for k, v in parts.items()}
    return full[out] if outputs_only else full

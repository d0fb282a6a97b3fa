"""Models as the flow sees them: a validated integer graph, where it came from, and a content key.

``load`` accepts a model file, a bundled model's name (``"default"``, ``"cnn"``,
``"resnet"``, ``"mobilenet"``: the trained digits models shipped inside the
package), a QONNX file (``*.onnx``, e.g. a Brevitas export: imported exactly, see docs/interop.md)
or an ``ir.Graph`` already in memory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

__all__ = ["Model", "NodeFormats", "load", "bundled_models", "bundled_path", "DEFAULT_MODEL"]

DEFAULT_MODEL = "default"


def bundled_models() -> list[str]:
    """Names of the integer models shipped with f8hw (``*.qat.pt`` training checkpoints excluded)."""
    root = resources.files("f8hw") / "bundled"
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.endswith(".pt") and not p.name.endswith(".qat.pt"))


def bundled_path(name: str) -> Path:
    """The file of bundled model ``name``; a one-line error lists the known names."""
    path = Path(str(resources.files("f8hw") / "bundled" / f"{name}.pt"))
    if not path.is_file():
        raise F8Error(f"no bundled model {name!r} (bundled: {', '.join(bundled_models()) or 'none'})")
    return path


@dataclass(frozen=True)
class NodeFormats:
    """The number formats around one node of a model."""

    name: str
    op: str
    shape: tuple
    inputs: list                  # TensorFormat per input
    w_fl: int | None
    outputs: list                 # TensorFormat per output
    w_kind: str | None = None     # weight format kind ("int" or an FP8 format), None without weights

    @property
    def weight_text(self) -> str:
        """The weight column of inspect: the INT8 w_fl as before, "e4m3 fl4" for FP8 weights."""
        if self.w_fl is None:
            return ""
        return str(self.w_fl) if self.w_kind == "int" else f"{self.w_kind} fl{self.w_fl}"

    def to_dict(self) -> dict:
        """Name, op, shape and formats as plain data."""
        fmt = lambda f: dict(bits=f.bits, signed=f.signed, fl=f.fl, kind=f.kind)
        return dict(name=self.name, op=self.op, shape=list(self.shape), inputs=[fmt(f) for f in self.inputs],
                    w_fl=self.w_fl, w_kind=self.w_kind, outputs=[fmt(f) for f in self.outputs])


@dataclass
class Model:
    """A validated integer graph with its origin (``source``: a file path or a name) and metadata."""

    graph: object                 # f8hw.ir.Graph
    source: str
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    key: str = ""                 # sha256 of the content: what compile caches are keyed by

    @property
    def name(self) -> str:
        """A short display name: the file name, or the source."""
        return self.path.name if self.path is not None else self.source

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        return tuple(int(v) for v in self.graph.input_node.attrs["shape"])

    def layers(self) -> list["NodeFormats"]:
        """One record per node: op, output shape, input formats, weight format, output formats."""
        g = self.graph
        shapes = g.shapes()
        return [NodeFormats(n.name, n.op, tuple(shapes[n.refs()[0]]), [g.format(r) for r in n.inputs],
                            n.attrs.get("w_fl"), list(n.outputs),
                            n.attrs.get("w_kind", "int") if "w_fl" in n.attrs else None) for n in g.nodes]

    def to_dict(self) -> dict:
        """What ``f8hw inspect --json`` prints: the source, metadata and every node's formats."""
        meta = {k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool, type(None)))}
        return dict(model=self.name, source=self.source, key=self.key, meta=meta, output=self.graph.output,
                    input_shape=list(self.input_shape), nodes=[n.to_dict() for n in self.layers()])

    def __repr__(self) -> str:
        kinds = [n.op for n in self.graph.nodes]
        return (f"Model({self.name!r}, {len(kinds)} nodes, input {'x'.join(map(str, self.input_shape))}, "
                f"output {self.graph.output!r})")


def graph_key(graph) -> str:
    """A content hash of a graph (structure, formats, weights, biases)."""
    from f8hw.ir import graph_to_state

    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, dict):
            for k in sorted(v):
                h.update(repr(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                feed(x)
            h.update(b"]")
        elif isinstance(v, np.ndarray):
            h.update(f"{v.dtype}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        else:
            h.update(repr(v).encode())

    feed(graph_to_state(graph, tensors="numpy"))
    return h.hexdigest()


def load(source) -> Model:
    """A Model from a file path (``.pt`` model file or ``.onnx`` QONNX), a bundled model's name, an
    ``ir.Graph`` or a Model (returned as is).

    Files are read with ``torch.load(weights_only=True)`` only and validated; errors name the file."""
    from f8hw.ir import Graph
    from f8hw.modelfile import load_model

    if isinstance(source, Model):
        return source
    if isinstance(source, Graph):
        graph = source.validate()
        return Model(graph, source="<graph>", key=graph_key(graph))
    if not isinstance(source, (str, os.PathLike)):
        raise F8Error(f"cannot load a model from {type(source).__name__} (give a file path, a bundled name "
                      f"or an ir.Graph)")
    text = os.fspath(source)
    path = Path(text)
    if not path.exists() and os.sep not in text and not text.endswith((".pt", ".onnx")):
        path = bundled_path(text)
    if path.suffix.lower() == ".onnx":
        from f8hw.interop.deps import require_onnx

        require_onnx(f"{text}: loading a QONNX model")
        from f8hw.interop.qonnx_import import import_qonnx

        result = import_qonnx(path)
        graph, meta = result.graph, result.meta(text)
    else:
        graph, meta = load_model(path)
    return Model(graph, source=text, meta=meta, path=path, key=hashlib.sha256(path.read_bytes()).hexdigest())

"""The model file schema as data: every key the file may hold, with its exact type and range.

Why a table: the loader (ir.graph_from_state), save_model and Graph.validate all check against
it, so a field is accepted or refused the same way everywhere.  Types are exact -- a bool is
not an int and "no" is not a bool -- because coercing (bool("no") is True) would run a model
the file does not describe.  Semantic rules that need the whole graph (shapes, fl ranges per
kind, accumulator proofs) stay in Graph.validate; the schema only says what may appear where.
Every message is one line naming the node (by name, else its index) and the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from f8hw.errors import GraphError, ModelFileError
from f8hw.numerics import KINDS

MAX_SIZE = 1 << 20
"""Largest channel count, feature count, image dimension, kernel, stride or padding: far above
any layer f8hw runs, low enough that no garbage size reaches an allocation."""

MAX_SHIFT = 63
"""Largest avgpool_global shift: a right shift of 64 or more rounds every int64 to 0."""


def show(v) -> str:
    """A value for a one-line message: arrays by dtype and shape, anything else as a short repr."""
    if isinstance(v, np.ndarray) or hasattr(v, "dtype") and hasattr(v, "shape"):
        return f"a tensor of dtype {dtype_name(v)} and shape {tuple(v.shape)}"
    text = repr(v).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def dtype_name(t) -> str:
    """The dtype of a torch tensor or numpy array as numpy spells it ("int8", "float32", ...)."""
    return str(t.dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Int:
    """An int (never a bool or a float) in lo..hi."""

    lo: int | None = None
    hi: int | None = None

    def problem(self, v) -> str | None:
        if type(v) is not int:
            return f"must be an int, got {show(v)}"
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            return f"must lie in {self.lo}..{self.hi}, got {v}"
        return None


@dataclass(frozen=True)
class Ints:
    """A list (or tuple) of n ints in lo..hi, e.g. a kernel [kh, kw]."""

    n: int
    lo: int
    hi: int = MAX_SIZE

    def problem(self, v) -> str | None:
        if not isinstance(v, (list, tuple)) or len(v) != self.n or any(Int(self.lo, self.hi).problem(i) for i in v):
            return f"must be a list of {self.n} ints in {self.lo}..{self.hi}, got {show(v)}"
        return None


@dataclass(frozen=True)
class Bool:
    """True or False only (not 0/1, not "no")."""

    def problem(self, v) -> str | None:
        return None if type(v) is bool else f"must be a bool, got {show(v)}"


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    names: tuple[str, ...]

    def problem(self, v) -> str | None:
        if type(v) is not str or v not in self.names:
            return f"must be one of {', '.join(self.names)}, got {show(v)}"
        return None


@dataclass(frozen=True)
class Op:
    """What a node of one op may carry: its input count, attrs (key -> (spec, required)) and tensors."""

    inputs: tuple[int, int]
    attrs: dict
    tensors: bool = False


_SIZE, _PAIR, _PAD = Int(1, MAX_SIZE), Ints(2, 1), Ints(2, 0, MAX_SIZE)
_W_FORMAT = {"w_fl": (Int(), True), "w_kind": (Choice(KINDS), False)}

OP_SCHEMA = {
    "input": Op((0, 0), {"shape": (Ints(3, 1), True)}),
    "conv2d": Op((1, 2), {"in_channels": (_SIZE, True), "out_channels": (_SIZE, True), "kernel": (_PAIR, True),
                          "stride": (_PAIR, True), "padding": (_PAD, True), "groups": (_SIZE, True), **_W_FORMAT},
                 tensors=True),
    "linear": Op((1, 2), {"in_features": (_SIZE, True), "out_features": (_SIZE, True), **_W_FORMAT}, tensors=True),
    "maxpool": Op((1, 1), {"kernel": (_PAIR, True), "stride": (_PAIR, True), "padding": (_PAD, True)}),
    "avgpool_global": Op((1, 1), {"shift": (Int(0, MAX_SHIFT), True)}),
    "flatten": Op((1, 1), {}),
}
"""Every op of the IR and what its node may hold; w_fl's range depends on w_kind (Graph.validate)."""

FORMAT_SCHEMA = {"fl": (Int(), True), "signed": (Bool(), True), "bits": (Int(), False), "kind": (Choice(KINDS), False)}
"""A tensor format; fl and bits ranges depend on the kind (TensorFormat.problem)."""

NODE_KEYS = {"name": True, "op": True, "inputs": True, "attrs": True, "outputs": True, "weight": False, "bias": False}
GRAPH_KEYS = {"nodes": True, "output": True}
FILE_KEYS = {"format": True, "version": True, "graph": True, "meta": False}
"""Keys of a node, of the graph and of the file (True: required)."""


def check_keys(where: str, d, keys: dict, what: str, error: type = GraphError) -> None:
    """d must be a dict whose keys are among keys, holding every required one."""
    if not isinstance(d, dict):
        raise error(f"{where}: {what} must be a dict, got {show(d)}")
    unknown = [k for k in d if k not in keys]
    if unknown:
        raise error(f"{where}: unknown {what} key {show(unknown[0])} (allowed: {', '.join(keys)})")
    missing = [k for k, required in keys.items() if required and k not in d]
    if missing:
        raise error(f"{where}: {what} key {missing[0]!r} is missing")


def _check_fields(where: str, d, schema: dict, what: str) -> None:
    check_keys(where, d, {k: req for k, (_, req) in schema.items()}, what)
    for key, value in d.items():
        problem = schema[key][0].problem(value)
        if problem:
            raise GraphError(f"{where}: {what} {key!r} {problem}")


def check_attrs(name, op: str, attrs) -> None:
    """The attrs of a node of op: known keys only, each of its exact type and range."""
    _check_fields(f"node {name!r}", attrs, OP_SCHEMA[op].attrs, "attr")


def check_format(where: str, d) -> None:
    """A format dict {"fl", "signed", "bits"?, "kind"?} of exact types."""
    _check_fields(where, d, FORMAT_SCHEMA, "format")


def _tensor_dtype(where: str, role: str, t, want: tuple[str, ...], why: str) -> None:
    import torch

    if not isinstance(t, (np.ndarray, torch.Tensor)):
        raise GraphError(f"{where}: {role} must be a tensor, got {show(t)}")
    if dtype_name(t) not in want:
        raise GraphError(f"{where}: {role} must be {' or '.join(want)} ({why}), got {dtype_name(t)}")
    if isinstance(t, torch.Tensor) and t.layout != torch.strided:
        raise GraphError(f"{where}: {role} must be a dense tensor, got layout {t.layout}")


def _input_kind(ref, formats: dict) -> str | None:
    """Kind of the tensor ref among earlier nodes' formats; None if unresolved (Graph.validate names it)."""
    name, sep, k = ref.partition(":")
    outs = formats.get(name)
    if outs is None or (sep and not k.isdecimal()) or int(k or 0) >= len(outs):
        return None
    return outs[int(k or 0)].get("kind", "int")


def check_graph_state(state) -> None:
    """The "graph" dict of a model file: keys, exact types and ranges of every node, tensors per op and dtype.

    Stored dtypes (docs/ir.md): weights int8 (INT8) or uint8 codes (FP8); the bias int32 for
    INT8 x INT8 layers, int64 for a layer with an FP8 operand.
    """
    check_keys("graph", state, GRAPH_KEYS, "graph")
    nodes, output = state["nodes"], state["output"]
    if not isinstance(nodes, list):
        raise GraphError(f"graph: 'nodes' must be a list, got {show(nodes)}")
    if type(output) is not str:
        raise GraphError(f"graph: 'output' must be a tensor reference (a str), got {show(output)}")
    formats: dict[str, list] = {}
    for i, d in enumerate(nodes):
        name = d.get("name") if isinstance(d, dict) else None
        where = f"node {name!r}" if type(name) is str else f"node #{i}"
        check_keys(where, d, NODE_KEYS, "node")
        if type(name) is not str:
            raise GraphError(f"{where}: 'name' must be a str, got {show(name)}")
        op = d["op"]
        if type(op) is not str or op not in OP_SCHEMA:
            raise GraphError(f"{where}: unknown op {show(op)} (known: {', '.join(OP_SCHEMA)})")
        for key, item in (("inputs", str), ("outputs", dict)):
            seq = d[key]
            if not isinstance(seq, list):
                raise GraphError(f"{where}: {key!r} must be a list, got {show(seq)}")
            for k, x in enumerate(seq):
                if not isinstance(x, item):
                    raise GraphError(f"{where}: {key}[{k}] must be a {item.__name__}, got {show(x)}")
        for k, f in enumerate(d["outputs"]):
            check_format(f"{where}: output {k}", f)
        check_attrs(name, op, d["attrs"])
        if OP_SCHEMA[op].tensors:
            w_kind = d["attrs"].get("w_kind", "int")
            _tensor_dtype(where, "weight", d.get("weight"), ("int8",) if w_kind == "int" else ("uint8",),
                          "INT8 weights" if w_kind == "int" else f"{w_kind} weight codes")
            x_kind = _input_kind(d["inputs"][0], formats) if d["inputs"] else None
            if x_kind is None:  # input unresolved (Graph.validate names it): any integer bias dtype
                _tensor_dtype(where, "bias", d.get("bias"), ("int32", "int64"), "a layer's bias")
            else:
                int_layer = x_kind == w_kind == "int"
                _tensor_dtype(where, "bias", d.get("bias"), ("int32",) if int_layer else ("int64",),
                              "an INT8 x INT8 layer" if int_layer else "a layer with an FP8 operand")
        else:
            for role in ("weight", "bias"):
                if d.get(role) is not None:
                    raise GraphError(f"{where}: op {op} takes no {role}, got {show(d[role])}")
        formats[name] = d["outputs"]


def check_reaches_output(graph) -> None:
    """Every node must feed the graph output: a dead layer means the file is not the model it claims."""
    live = {graph.output.partition(":")[0]}
    for node in reversed(graph.nodes):
        if node.name in live:
            live.update(ref.partition(":")[0] for ref in node.inputs)
    for node in graph.nodes:
        if node.name not in live:
            raise GraphError(f"node {node.name!r}: does not reach the graph output {graph.output!r} (a dead node)")


def check_meta(meta, where: str = "meta", depth: int = 0) -> None:
    """meta holds only plain data (str keys; str/int/float/bool/None, lists, dicts), so it stays readable."""
    if depth > 16:
        raise ModelFileError(f"{where}: nested too deeply")
    if isinstance(meta, dict):
        for k, v in meta.items():
            if type(k) is not str:
                raise ModelFileError(f"{where}: key {show(k)} must be a str")
            check_meta(v, f"{where}[{k!r}]", depth + 1)
    elif isinstance(meta, (list, tuple)):
        for k, v in enumerate(meta):
            check_meta(v, f"{where}[{k}]", depth + 1)
    elif meta is not None and type(meta) not in (str, int, float, bool):
        raise ModelFileError(f"{where}: must be plain data (str, int, float, bool, None, list, dict), got {show(meta)}")

"""The integer graph IR shared by export, golden model, compiler and simulators.

See docs/ir.md for the contract.  A Graph is a list of Nodes in topological
order; tensors are referred to as "node" (output 0) or "node:k" (output k).
Graph.validate() is the gate every producer and consumer relies on: it checks
ops, arity, references, shapes, formats, shift ranges and proves that no
accumulator can overflow (int32 for INT8 x INT8 layers, MIXED_ACC_BITS for layers
with an FP8 operand), raising GraphError naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from f8hw.errors import AccumulatorOverflowError, FormatError, GraphError
from f8hw.numerics import (
    INT32_MAX,
    MIXED_ACC_BITS,
    SHIFT_MAX,
    SHIFT_MIN,
    TensorFormat,
    accumulator_bound,
    check_accumulator,
    finite_mask,
    fl_range,
    int_form,
)
from f8hw.schema import OP_SCHEMA, check_attrs, check_format, check_graph_state

OPS = tuple(OP_SCHEMA)
"""Every op of the IR (what each may hold: f8hw.schema.OP_SCHEMA)."""


def parse_ref(ref: str) -> tuple[str, int]:
    """Split a tensor reference "node" / "node:k" into (node, k)."""
    name, sep, k = ref.partition(":")
    if not sep:
        return name, 0
    if not k.isdecimal():
        raise ValueError(f"bad tensor reference {ref!r}")
    return name, int(k)


def make_ref(name: str, k: int = 0) -> str:
    """Canonical reference of output k of node name ("node" for k == 0)."""
    return name if k == 0 else f"{name}:{k}"


def canonical_ref(ref: str) -> str:
    """Canonical form of a reference ("node:0" -> "node")."""
    return make_ref(*parse_ref(ref))


@dataclass
class Node:
    """One operation; weight int8 in [-127, 127] (or uint8 FP8 codes, attrs w_kind), bias int32 (int64 mixed) at fl_a."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    outputs: list[TensorFormat] = field(default_factory=list)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def refs(self) -> list[str]:
        """Canonical references of this node's outputs."""
        return [make_ref(self.name, k) for k in range(len(self.outputs))]


def weight_format(node: Node) -> TensorFormat:
    """The signed format of a conv2d/linear node's weight: attrs w_fl and w_kind (absent: "int")."""
    return TensorFormat(node.attrs.get("w_fl"), True, 8, node.attrs.get("w_kind", "int"))


def _check_w_format(node: Node) -> None:
    """w_fl's range depends on w_kind (both of the right type: f8hw.schema)."""
    kind = node.attrs.get("w_kind", "int")
    fl, r = node.attrs["w_fl"], fl_range(True, kind)
    if fl not in r:
        raise GraphError(f"node {node.name!r}: w_fl {fl!r} out of range {r.start}..{r.stop - 1} for {kind} weights")


def _window_out(node: Node, size: int, k: int, s: int, p: int, axis: str) -> int:
    out = (size + 2 * p - k) // s + 1
    if size + 2 * p < k or out < 1:
        raise GraphError(f"node {node.name!r}: kernel {k} does not fit {axis} size {size} with padding {p}")
    return out


class Graph:
    """Nodes in topological order plus the reference of the graph's output tensor."""

    def __init__(self, nodes: list[Node], output: str):
        self.nodes = list(nodes)
        self.output = output

    def node(self, name: str) -> Node:
        """The node called name (GraphError if there is none)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"node {name!r}: no such node")

    @property
    def input_node(self) -> Node:
        """The graph's single input node."""
        found = [n for n in self.nodes if n.op == "input"]
        if not found:
            raise GraphError("node <input>: the graph has no input node")
        if len(found) > 1:
            raise GraphError(f"node {found[1].name!r}: a second input node (a graph has exactly one)")
        return found[0]

    def format(self, ref: str) -> TensorFormat:
        """TensorFormat of a tensor reference."""
        try:
            name, k = parse_ref(ref)
        except ValueError:
            raise GraphError(f"node {ref!r}: bad tensor reference") from None
        node = self.node(name)
        if k >= len(node.outputs):
            raise GraphError(f"node {name!r}: has no output {k} (reference {ref!r})")
        return node.outputs[k]

    def consumers(self, ref: str) -> list[Node]:
        """Nodes that read the tensor ref (in graph order)."""
        ref = canonical_ref(ref)
        return [n for n in self.nodes if any(canonical_ref(r) == ref for r in n.inputs)]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape (batch dimension excluded) of every tensor, by canonical ref.

        Also checks everything shape inference depends on (ops, arity,
        references, attrs, weight/bias shapes); raises GraphError naming the node.
        """
        shapes: dict[str, tuple[int, ...]] = {}
        seen: set[str] = set()
        for node in self.nodes:
            if not isinstance(node.name, str) or not node.name or ":" in node.name:
                raise GraphError(f"node {node.name!r}: name must be a non-empty string without ':'")
            if node.name in seen:
                raise GraphError(f"node {node.name!r}: duplicate node name")
            seen.add(node.name)
            if node.op not in OPS:
                raise GraphError(f"node {node.name!r}: unknown op {node.op!r} (known: {', '.join(OPS)})")
            lo, hi = OP_SCHEMA[node.op].inputs
            if not lo <= len(node.inputs) <= hi:
                want = str(lo) if lo == hi else f"{lo} or {hi}"
                raise GraphError(f"node {node.name!r}: op {node.op} takes {want} inputs, got {len(node.inputs)}")
            ins = []
            for ref in node.inputs:
                try:
                    key = canonical_ref(ref)
                except (ValueError, AttributeError):
                    raise GraphError(f"node {node.name!r}: bad input reference {ref!r}") from None
                if key not in shapes:
                    raise GraphError(
                        f"node {node.name!r}: input {ref!r} is not an output of an earlier node"
                    )
                ins.append(shapes[key])
            if not node.outputs:
                raise GraphError(f"node {node.name!r}: has no outputs")
            check_attrs(node.name, node.op, node.attrs)
            shape = getattr(self, f"_shape_{node.op}")(node, ins)
            for ref in node.refs():
                shapes[ref] = shape
        try:
            out = canonical_ref(self.output)
        except (ValueError, AttributeError):  # not a str, or "x:" / "x:y"
            out = None
        if out not in shapes:
            raise GraphError(f"node {self.output!r}: graph output is not a tensor of the graph")
        self.input_node  # noqa: B018 -- the property raises unless there is exactly one input node
        return shapes

    def _shape_input(self, node: Node, ins) -> tuple[int, ...]:
        return tuple(node.attrs["shape"])

    def _check_weight(self, node: Node, shape: tuple[int, ...]) -> None:
        w, b = node.weight, node.bias
        kind = node.attrs.get("w_kind", "int")
        if not isinstance(w, np.ndarray) or not np.issubdtype(w.dtype, np.integer):
            raise GraphError(f"node {node.name!r}: weight must be an integer numpy array")
        if w.shape != shape:
            raise GraphError(f"node {node.name!r}: weight shape {w.shape} does not match expected {shape}")
        if kind == "int" and w.size and (w.min() < -127 or w.max() > 127):
            raise GraphError(f"node {node.name!r}: weight values must lie in [-127, 127]")
        if kind != "int" and w.size:
            if w.min() < 0 or w.max() > 255:
                raise GraphError(f"node {node.name!r}: {kind} weight codes must lie in 0..255")
            bad = ~finite_mask(kind)[w.astype(np.int64)]
            if bad.any():
                raise GraphError(f"node {node.name!r}: weight holds code 0x{int(w[bad].flat[0]):02x}, "
                                 f"not a finite {kind} value (NaN/Inf)")
        if not isinstance(b, np.ndarray) or not np.issubdtype(b.dtype, np.integer):
            raise GraphError(f"node {node.name!r}: bias must be an integer numpy array (use zeros for no bias)")
        if b.shape != (shape[0],):
            raise GraphError(f"node {node.name!r}: bias shape {b.shape} does not match expected {(shape[0],)}")
        if b.dtype.itemsize > 8 or (b.dtype.kind == "u" and b.dtype.itemsize == 8):
            raise GraphError(f"node {node.name!r}: bias must fit int64")
        if self._int_layer(node) and b.size and (b.min() < -(2**31) or b.max() > 2**31 - 1):
            raise GraphError(f"node {node.name!r}: bias values must fit int32")

    def _shape_conv2d(self, node: Node, ins) -> tuple[int, ...]:
        x = ins[0]
        if len(x) != 3:
            raise GraphError(f"node {node.name!r}: conv2d input must be (C, H, W), got {x}")
        a = node.attrs
        cin, cout, g = a["in_channels"], a["out_channels"], a["groups"]
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
        _check_w_format(node)
        if x[0] != cin:
            raise GraphError(f"node {node.name!r}: in_channels {cin} but input has {x[0]} channels")
        if cin % g or cout % g:
            raise GraphError(f"node {node.name!r}: groups {g} must divide in_channels {cin} and out_channels {cout}")
        shape = (
            cout,
            _window_out(node, x[1], kh, sh, ph, "height"),
            _window_out(node, x[2], kw, sw, pw, "width"),
        )
        self._check_weight(node, (cout, cin // g, kh, kw))
        return shape

    def _shape_linear(self, node: Node, ins) -> tuple[int, ...]:
        x = ins[0]
        fin, fout = node.attrs["in_features"], node.attrs["out_features"]
        _check_w_format(node)
        if x != (fin,):
            raise GraphError(f"node {node.name!r}: in_features {fin} but input shape is {x}")
        self._check_weight(node, (fout, fin))
        return (fout,)

    def _shape_maxpool(self, node: Node, ins) -> tuple[int, ...]:
        x = ins[0]
        if len(x) != 3:
            raise GraphError(f"node {node.name!r}: maxpool input must be (C, H, W), got {x}")
        (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
        if 2 * ph > kh or 2 * pw > kw:
            raise GraphError(f"node {node.name!r}: maxpool padding {[ph, pw]} must be at most half the kernel {[kh, kw]}")
        return (
            x[0],
            _window_out(node, x[1], kh, sh, ph, "height"),
            _window_out(node, x[2], kw, sw, pw, "width"),
        )

    def _shape_avgpool_global(self, node: Node, ins) -> tuple[int, ...]:
        x = ins[0]
        if len(x) != 3:
            raise GraphError(f"node {node.name!r}: avgpool_global input must be (C, H, W), got {x}")
        return (x[0], 1, 1)

    def _shape_flatten(self, node: Node, ins) -> tuple[int, ...]:
        return (int(np.prod(ins[0])),)

    def validate(self) -> "Graph":
        """Check the whole graph; raise GraphError naming the offending node. Returns self."""
        shapes = self.shapes()
        for node in self.nodes:
            for k, fmt in enumerate(node.outputs):
                if not isinstance(fmt, TensorFormat):
                    raise GraphError(f"node {node.name!r}: output {k} is not a TensorFormat")
                problem = fmt.problem()
                if problem:
                    raise GraphError(f"node {node.name!r}: output {k}: {problem}")
            ins = [self.format(r) for r in node.inputs]
            for r, f in zip(node.inputs, ins):
                if f.bits != 8:
                    raise GraphError(f"node {node.name!r}: input {r!r} is a {f.bits}-bit tensor; only 8-bit tensors can be consumed")
            getattr(self, f"_formats_{node.op}")(node, ins, shapes)
        return self

    def _formats_input(self, node: Node, ins, shapes) -> None:
        if node.outputs != [TensorFormat(8, False)]:
            raise GraphError(f"node {node.name!r}: input must have exactly one output, unsigned fl 8")

    def _int_layer(self, node: Node) -> bool:
        """INT8 x INT8: the layer of IR v1, whose accumulator and bias are int32."""
        return node.attrs.get("w_kind", "int") == "int" and self.format(node.inputs[0]).kind == "int"

    def _check_requant(self, node: Node, fl_v: int, skip: bool, all_int: bool, v_bound: int) -> None:
        """Raw outputs need fl_v and must hold v_bound; INT8 outputs of all-INT layers keep IR v1's shifts."""
        for k, fmt in enumerate(node.outputs):
            if fmt.bits != 8:
                if skip or fmt.fl != fl_v or node.op not in ("conv2d", "linear"):
                    raise GraphError(
                        f"node {node.name!r}: output {k} is {fmt.bits}-bit: needs a conv2d/linear without skip "
                        f"and fl == {fl_v}, got fl {fmt.fl}"
                    )
                if fmt.bits == 32 and v_bound > INT32_MAX:
                    raise AccumulatorOverflowError(
                        f"node {node.name!r}: output {k}: the raw value can reach {v_bound}, exceeding int32 "
                        f"(use a 64-bit output)"
                    )
            elif fmt.kind == "int" and all_int and not SHIFT_MIN <= fl_v - fmt.fl <= SHIFT_MAX:
                raise GraphError(
                    f"node {node.name!r}: output {k}: requantization shift {fl_v - fmt.fl} "
                    f"(fl {fl_v} -> {fmt.fl}) outside [{SHIFT_MIN}, {SHIFT_MAX}]"
                )

    def _formats_conv2d(self, node: Node, ins, shapes) -> None:
        fx, fw = ins[0], weight_format(node)
        int_layer = fx.kind == fw.kind == "int"
        try:
            w = int_form(node.weight, fw)
        except FormatError as e:
            raise GraphError(f"node {node.name!r}: weight: {e}") from None
        check_accumulator(node.name, w, node.bias, fx, 32 if int_layer else MIXED_ACC_BITS,
                          "" if int_layer else f"activation {fx.kind} x weight {fw.kind}")
        fl_v = fl_a = fx.unit + fw.unit
        v_bound = 0 if int_layer else int(accumulator_bound(w, node.bias, fx)[1].max(initial=0))
        if len(ins) == 2:
            skip_shape = shapes[canonical_ref(node.inputs[1])]
            if skip_shape != shapes[node.refs()[0]]:
                raise GraphError(
                    f"node {node.name!r}: skip {node.inputs[1]!r} shape {skip_shape} "
                    f"does not match output shape {shapes[node.refs()[0]]}"
                )
            fl_v = max(fl_a, ins[1].unit)
            if not (int_layer and ins[1].kind == "int"):
                skip_max = max(abs(x) for x in ins[1].qrange)
                v_bound = (v_bound << (fl_v - fl_a)) + (skip_max << (fl_v - ins[1].unit))
                if v_bound > 2 ** (MIXED_ACC_BITS - 1) - 1:
                    raise AccumulatorOverflowError(
                        f"node {node.name!r}: the residual sum aligned to unit 2^-{fl_v} can reach {v_bound}, "
                        f"exceeding the {MIXED_ACC_BITS}-bit accumulator (skip {ins[1]})"
                    )
        self._check_requant(node, fl_v, len(ins) == 2, int_layer and all(f.kind == "int" for f in ins), v_bound)

    _formats_linear = _formats_conv2d

    def _formats_maxpool(self, node: Node, ins, shapes) -> None:
        if node.outputs != [ins[0]]:
            raise GraphError(f"node {node.name!r}: {node.op} must have one output with its input's format {ins[0]}")

    _formats_flatten = _formats_maxpool

    def _formats_avgpool_global(self, node: Node, ins, shapes) -> None:
        c, h, w = shapes[canonical_ref(node.inputs[0])]
        lo, hi = ins[0].qrange
        worst = h * w * max(abs(lo), hi)
        bits = 32 if ins[0].kind == "int" else MIXED_ACC_BITS
        if worst > 2 ** (bits - 1) - 1:
            raise AccumulatorOverflowError(
                f"node {node.name!r}: sum over {h}x{w} positions can reach {worst}, exceeding int{bits}")
        self._check_requant(node, ins[0].unit + node.attrs["shift"], False, ins[0].kind == "int", worst)


def graph_to_state(graph: Graph, tensors: str = "torch") -> dict:
    """Graph as a dict of primitives plus weight/bias arrays (torch tensors or numpy).

    torch tensors make the state loadable with torch.load(weights_only=True).
    """
    if tensors not in ("torch", "numpy"):
        raise ValueError("tensors must be 'torch' or 'numpy'")
    if tensors == "torch":
        import torch

        conv = lambda a, dt: None if a is None else torch.from_numpy(np.ascontiguousarray(a, dtype=dt))
    else:
        conv = lambda a, dt: None if a is None else np.array(a, dtype=dt)
    return {
        "output": graph.output,
        "nodes": [
            {
                "name": n.name,
                "op": n.op,
                "inputs": list(n.inputs),
                "attrs": _plain(n.attrs),
                "outputs": [format_to_state(f) for f in n.outputs],
                "weight": conv(n.weight, np.int8 if n.attrs.get("w_kind", "int") == "int" else np.uint8),
                "bias": conv(n.bias, np.int32 if n.bias is None or _bias_is_int32(graph, n) else np.int64),
            }
            for n in graph.nodes
        ],
    }


def format_to_state(f: TensorFormat) -> dict:
    """A format as primitives; "kind" only for non-INT kinds, so INT graphs keep IR v1's state."""
    d = {"fl": f.fl, "signed": f.signed, "bits": f.bits}
    if f.kind != "int":
        d["kind"] = f.kind
    return d


def format_from_state(d: dict, where: str = "format") -> TensorFormat:
    """Inverse of format_to_state, strict about keys and types (f8hw.schema); GraphError says what is wrong."""
    check_format(where, d)
    return TensorFormat(d["fl"], d["signed"], d.get("bits", 8), d.get("kind", "int"))


def _bias_is_int32(graph: Graph, node: Node) -> bool:
    """INT8 x INT8 layers store int32 biases (IR v1); layers with an FP8 operand store int64."""
    if node.attrs.get("w_kind", "int") != "int":
        return False
    try:
        return graph.format(node.inputs[0]).kind == "int"
    except (GraphError, IndexError):
        return True


def uses_v2(graph: Graph) -> bool:
    """Whether the graph needs model file version 2: an FP8 tensor or weight, or a 64-bit output."""
    return any(n.attrs.get("w_kind", "int") != "int" or any(f.kind != "int" or f.bits == 64 for f in n.outputs)
               for n in graph.nodes)


def _plain(v):
    """attrs as plain lists/dicts/ints (tuples become lists)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    return v


def _to_numpy(a):
    """A stored tensor (torch or numpy, f8hw.schema checked which) as numpy; None stays None."""
    return a.detach().cpu().numpy() if hasattr(a, "detach") else a


def graph_from_state(state: dict) -> Graph:
    """Inverse of graph_to_state (accepts torch or numpy arrays) after the schema check
    (f8hw.schema.check_graph_state); the semantic checks are Graph.validate()."""
    check_graph_state(state)
    nodes = [Node(name=d["name"], op=d["op"], inputs=list(d["inputs"]), attrs=dict(d["attrs"]),
                  outputs=[format_from_state(f) for f in d["outputs"]],
                  weight=_to_numpy(d.get("weight")), bias=_to_numpy(d.get("bias")))
             for d in state["nodes"]]
    return Graph(nodes, state["output"])

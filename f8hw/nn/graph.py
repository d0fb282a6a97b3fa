"""Tracing a model made of f8hw.nn layers (torch.fx), wiring it, and its exact integer emulation.

prepare(model, example) traces the user's model once and wires every layer
to its readers (brief section 2):

* the master reader of a tensor (first layer reading it, looking through
  maxpool / ReLU / flatten / global average pool / residual adds) gives the
  producer its eta_next; all layer readers of the tensor are siblings and
  share the master's alpha, keeping private FLs;
* an identity residual joins the clipping groups of the block's input and
  output (so the integer add needs no rescale);
* a layer reading the model input reads the uint8 image at unsigned FL 8;
* a global average pool folds 2**round(log2 n) / n into its producing layer.

The resulting Plan is also what f8hw.export turns into the integer graph IR,
and what integer_forward interprets with int64 tensors only.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from f8hw.errors import F8Error
from f8hw.golden import conv2d_acc, linear_acc
from f8hw.nn.fp8quant import format_name
from f8hw.nn.layers import F8Module, QAdd, QConv2d, QGlobalAvgPool2d, QLinear
from f8hw.nn.quant import IMAGE_FL, ActQuant
from f8hw.numerics import TensorFormat, align_add, int_form, requantize

PASSTHROUGH = ("maxpool", "relu", "flatten")
"""Ops that move int8 values without changing their format."""


class UnsupportedOpError(F8Error):
    """The model contains a module or an operation f8hw cannot quantize or export; names it."""


@dataclass(eq=False)
class PNode:
    """One op of the traced model: kind in input/layer/add/gap/maxpool/relu/flatten."""

    name: str
    kind: str
    module: nn.Module | None
    inputs: list["PNode"]
    shape: tuple[int, ...]
    users: list["PNode"] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"PNode({self.name!r}, {self.kind})"


@dataclass
class Plan:
    """The traced dataflow of a prepared model (nodes in topological order)."""

    nodes: list[PNode]
    output: PNode

    def layers(self) -> list[PNode]:
        return [n for n in self.nodes if n.kind == "layer"]


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, F8Module) or super().is_leaf_module(m, qualname)


def _dilation(d) -> str:
    return str(d[0] if d[0] == d[1] else list(d)) if isinstance(d, tuple) else str(d)


def conv_problem(m: nn.Conv2d) -> str | None:
    """Why f8hw cannot run this Conv2d, or None: the IR's conv2d is undilated with numeric zero padding."""
    if m.dilation != (1, 1):
        return f"dilation {_dilation(m.dilation)} is not supported (f8hw convolutions are undilated)"
    if isinstance(m.padding, str):
        return f"padding={m.padding!r} is not supported (give the padding as numbers)"
    if m.padding_mode != "zeros":
        return f"padding_mode {m.padding_mode!r} is not supported (zero padding only)"
    return None


def maxpool_problem(m: nn.MaxPool2d) -> str | None:
    """Why f8hw cannot run this MaxPool2d, or None."""
    if m.dilation not in (1, (1, 1)):
        return f"MaxPool2d dilation {_dilation(m.dilation)} is not supported (undilated pooling only)"
    if m.ceil_mode:
        return "MaxPool2d ceil_mode=True is not supported (floor only)"
    return None


def _module_kind(name: str, m: nn.Module) -> str:
    if isinstance(m, (QConv2d, QLinear)):
        problem = conv_problem(m.conv) if isinstance(m, QConv2d) else None
        if problem:
            raise UnsupportedOpError(f"layer {name!r}: {problem}")
        return "layer"
    if isinstance(m, QAdd):
        return "add"
    if isinstance(m, QGlobalAvgPool2d):
        return "gap"
    if isinstance(m, nn.MaxPool2d):
        problem = maxpool_problem(m)
        if problem:
            raise UnsupportedOpError(f"module {name!r}: {problem}")
        return "maxpool"
    if isinstance(m, nn.ReLU):
        return "relu"
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedOpError(f"module {name!r}: only Flatten(start_dim=1) is supported")
        return "flatten"
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return "identity"
    raise UnsupportedOpError(
        f"module {name!r} ({type(m).__name__}) is not supported: build the model from f8hw.nn layers "
        "(QConv2d, QLinear, QAdd, QGlobalAvgPool2d) plus MaxPool2d / ReLU / Flatten"
    )


def _function_kind(node: torch.fx.Node) -> str:
    fn = node.target
    if node.op == "call_function" and fn in (torch.relu, F.relu):
        return "relu"
    if node.op == "call_method" and fn == "relu":
        return "relu"
    if (node.op == "call_function" and fn is torch.flatten) or (node.op == "call_method" and fn == "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        if start == 1 and len(node.args) <= 2 and node.kwargs.get("end_dim", -1) == -1:
            return "flatten"
        raise UnsupportedOpError(f"operation {node.name!r}: only flatten(x, 1) is supported")
    if node.op == "call_function" and fn in (operator.add, torch.add, operator.iadd):
        raise UnsupportedOpError(
            f"operation {node.name!r} (tensor +): use f8hw.nn.QAdd for residual additions, "
            "so the add is quantized the way the accelerator computes it"
        )
    what = getattr(fn, "__name__", str(fn))
    raise UnsupportedOpError(f"operation {node.name!r} ({node.op} {what}) is not supported by f8hw export")


def _shapes(model: nn.Module, graph: torch.fx.Graph, example: torch.Tensor) -> dict[str, tuple]:
    """Per-sample shape of every fx node, from one float-mode eval run on the example."""
    modes = {m: m.quantized for m in model.modules() if isinstance(m, F8Module)}
    was_training = model.training
    try:
        for m in modes:
            m.quantized = False
        model.eval()
        gm = torch.fx.GraphModule(model, graph)
        shapes: dict[str, tuple] = {}

        class _Recorder(torch.fx.Interpreter):
            def run_node(self, n):
                try:
                    out = super().run_node(n)
                except F8Error:
                    raise
                except Exception as e:  # torch's own message, without its multi-line context
                    what = f"module {n.target!r}" if n.op == "call_module" else f"operation {n.name!r}"
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise UnsupportedOpError(f"{what} fails on the example input: {first}") from None
                if isinstance(out, torch.Tensor):
                    shapes[n.name] = tuple(out.shape[1:])
                return out

        recorder = _Recorder(gm)
        recorder.extra_traceback = False  # keep F8Error messages one line
        with torch.no_grad():
            recorder.run(example)
        return shapes
    finally:
        for m, q in modes.items():
            m.quantized = q
        model.train(was_training)


def trace(model: nn.Module, example: torch.Tensor) -> Plan:
    """The model's dataflow as a Plan; UnsupportedOpError names anything f8hw cannot run."""
    try:
        graph = _Tracer().trace(model)
    except F8Error:
        raise
    except Exception as e:  # fx raises many kinds for untraceable Python
        raise UnsupportedOpError(f"model {type(model).__name__} cannot be traced by torch.fx: {e}") from None
    modules = dict(model.named_modules())
    for qualname, m in modules.items():
        if isinstance(m, F8Module):
            m.links["name"] = qualname  # the layers' own input checks name them while shapes are traced
    kinds = {
        n: _module_kind(n.target, modules[n.target]) if n.op == "call_module" else _function_kind(n)
        for n in graph.nodes
        if n.op in ("call_module", "call_function", "call_method")
    }
    shapes = _shapes(model, graph, example)
    by_fx: dict[torch.fx.Node, PNode] = {}
    nodes: list[PNode] = []
    output = None
    for n in graph.nodes:
        if n.op == "placeholder":
            if any(p.kind == "input" for p in nodes):
                raise UnsupportedOpError(f"input {n.name!r}: a model takes exactly one image tensor")
            p = PNode("input", "input", None, [], shapes[n.name])
        elif n.op == "output":
            if not isinstance(n.args[0], torch.fx.Node):
                raise UnsupportedOpError("model output must be a single tensor")
            output = by_fx[n.args[0]]
            continue
        elif n.op == "get_attr":
            raise UnsupportedOpError(f"operation {n.name!r}: reads parameter {n.target!r} outside an f8hw.nn layer")
        else:
            m = modules[n.target] if n.op == "call_module" else None
            kind = kinds[n]
            args = [a for a in n.args if isinstance(a, torch.fx.Node)]
            expected = 2 if kind == "add" else 1
            if len(args) != expected:
                raise UnsupportedOpError(f"operation {n.name!r}: expects {expected} tensor input(s), got {len(args)}")
            ins = [by_fx[a] for a in args]
            if kind == "identity":
                by_fx[n] = ins[0]
                continue
            name = n.target if m is not None else n.name
            p = PNode(name, kind, m, ins, shapes[n.name])
            if kind == "maxpool":
                pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]
                p.attrs = {
                    "kernel": pair(m.kernel_size),
                    "stride": pair(m.stride if m.stride is not None else m.kernel_size),
                    "padding": pair(m.padding),
                }
            for i in ins:
                i.users.append(p)
        by_fx[n] = p
        nodes.append(p)
    if output is None or not any(p.kind == "input" for p in nodes):
        raise UnsupportedOpError("model must take one image tensor and return one tensor")
    return Plan(nodes, output)


# ---------------------------------------------------------------- wiring


def readers(node: PNode) -> list[PNode]:
    """Layers whose input quantizer reads node's value, looking through passthroughs, pools and adds."""
    found: list[PNode] = []
    for u in node.users:
        if u.kind == "layer":
            found.append(u)
        elif u.kind in PASSTHROUGH or u.kind == "gap":
            found += readers(u)
        elif u.kind == "add" and (u.inputs[0] is node or u.module.links.get("skip_quant") is None):
            found += readers(u)  # main operand, or a skip quantized by the add itself
    unique: list[PNode] = []
    for f in found:
        if f not in unique:
            unique.append(f)
    return unique


def _source(node: PNode) -> PNode:
    """The value-producing node behind passthroughs."""
    while node.kind in PASSTHROUGH:
        node = node.inputs[0]
    return node


class _Groups:
    """Union-find of clipping-level (alpha) groups; the earliest layer is the master."""

    def __init__(self, order: list[PNode]):
        self.parent = {n: n for n in order}
        self.rank = {n: i for i, n in enumerate(order)}

    def find(self, n: PNode) -> PNode:
        while self.parent[n] is not n:
            n = self.parent[n]
        return n

    def union(self, a: PNode, b: PNode) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            first, second = sorted((ra, rb), key=self.rank.__getitem__)
            self.parent[second] = first


def prepare(model: nn.Module, example: torch.Tensor) -> Plan:
    """Trace and wire model (see module docstring); returns the Plan, also kept as model.f8_plan."""
    plan = trace(model, example)
    layers = plan.layers()
    for n in plan.nodes:
        if isinstance(n.module, F8Module):
            n.module.links.clear()
            n.module.links["next"] = None
            n.module.links["name"] = n.name
        if n.kind in ("layer", "gap"):
            n.module.act.image_input = _source(n.inputs[0]).kind == "input"
            n.module.act.links.clear()
    for n in plan.nodes:
        if n.kind == "add":
            main, skip = n.inputs
            if main.kind != "layer" or main.users != [n]:
                raise UnsupportedOpError(
                    f"add {n.name!r}: its first operand must be the output of a QConv2d/QLinear read only by the add"
                )
            skip_readers = [u for u in skip.users if u.kind == "layer"]
            if skip_readers:
                n.module.links["skip_quant"] = skip_readers[0].module.act
    groups = _Groups(layers)
    for n in plan.nodes:
        if n.kind not in ("layer", "add", "input"):
            continue
        rs = readers(n)
        for r in rs[1:]:
            groups.union(rs[0], r)
        if n.kind == "layer":
            n.module.links["next"] = rs[0].module.act if rs else None
        if n.kind == "add" and "skip_quant" in n.module.links and rs:
            block_input_master = readers(n.inputs[1])[0]
            groups.union(block_input_master, rs[0])
    for n in layers:
        master = groups.find(n)
        if master is not n:
            n.module.act.links["alpha_owner"] = master.module.act
            if n.module.act.read_kind != master.module.act.read_kind:
                raise F8Error(
                    f"layer {n.name!r}: input format {format_name(n.module.act.read_kind)} differs from "
                    f"{format_name(master.module.act.read_kind)} of {master.name!r}, which shares its clipping level"
                )
        for u in n.users:
            if u.kind == "relu" and any(r.module.act.signed for r in readers(u)):
                raise UnsupportedOpError(f"{u.name!r}: a ReLU output is read by a layer with signed input")
    for n in plan.nodes:
        if n.kind == "gap":
            _fold_pool(n)
    model.f8_plan = plan
    return plan


def _fold_pool(gap: PNode) -> None:
    """Fold 2**m / n into the layer producing the pooled tensor (the add's main layer for a residual)."""
    node = gap.inputs[0]
    while node.kind in ("relu", "maxpool"):
        if len(node.users) != 1:
            break
        node = node.inputs[0]
    if node.kind == "add":
        node = node.inputs[0]
    if node.kind != "layer" or len(_value_users(node)) != 1:
        raise UnsupportedOpError(
            f"{gap.name!r}: global average pool must follow a layer (or residual add) whose only reader is the pool"
        )
    positions = gap.inputs[0].shape[1] * gap.inputs[0].shape[2]
    gap.attrs["shift"] = QGlobalAvgPool2d.shift_for(positions)
    node.module.links["pool_scale"] = 2.0 ** gap.attrs["shift"] / positions


def _value_users(node: PNode) -> list[PNode]:
    users = node.users
    if len(users) == 1 and users[0].kind == "add" and users[0].inputs[0] is node:
        users = users[0].users
    return users


def set_quantized(model: nn.Module, quantized: bool = True) -> None:
    """Switch every f8hw.nn module of model between float (pre-training) and F8 mode."""
    for m in model.modules():
        if isinstance(m, F8Module):
            m.quantized = quantized


def input_format(act: ActQuant) -> TensorFormat:
    """The 8-bit format a quantizer reads its tensor in (eval)."""
    return TensorFormat(act.eval_fl(), act.signed, 8, act.read_kind)


# ---------------------------------------------------------------- integer emulation


def _requant(v: torch.Tensor, fl_v: int, fmt: TensorFormat) -> torch.Tensor:
    """Requantize to fmt and return the integer forms (at unit fmt.unit)."""
    return torch.from_numpy(int_form(requantize(v.numpy(), fl_v, fmt), fmt))


def _exact_float64_op(fn, *int_args, **kw) -> torch.Tensor:
    """Run a float op on exact integers in float64 (all values and partial sums < 2**53) and return int64."""
    out = fn(*[a.to(torch.float64) for a in int_args], **kw)
    return torch.round(out).to(torch.int64)


@torch.no_grad()
def integer_forward(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Eval-mode F8 inference with integers only, from the model's own layers (not the exported file).

    Each value is kept as (int64 tensor, unit) -- the exact accumulator -- and
    every reader requantizes it to its own format (INT8 or FP8, then taken as
    integer forms), as the accelerator's per-reader copies do.  Returns
    (int64 logits, unit of the logits).
    """
    plan: Plan | None = getattr(model, "f8_plan", None)
    if plan is None:
        raise F8Error("integer_forward needs a prepared model (f8hw.nn.prepare)")
    if model.training:
        raise F8Error("integer_forward needs eval mode (model.eval())")
    if images.dtype != torch.uint8:
        raise F8Error(f"images must be uint8, got {images.dtype}")
    env: dict[PNode, tuple[torch.Tensor, int]] = {}
    for n in plan.nodes:
        if n.kind == "input":
            env[n] = (images.to(torch.int64), IMAGE_FL)
            continue
        v, fl = env[n.inputs[0]]
        if n.kind == "layer":
            m = n.module
            w, w_fl, b, _ = m.integer_params()
            x_fmt, w_fmt = input_format(m.act), TensorFormat(w_fl, True, 8, m.w_kind)
            x, w = _requant(v, fl, x_fmt), torch.from_numpy(int_form(w.numpy(), w_fmt))
            unit = x_fmt.unit + w_fmt.unit
            exact = x_fmt.kind == w_fmt.kind == "int"  # int32 accumulators: exact in float64
            if isinstance(m, QConv2d):
                c = m.conv
                if exact:
                    acc = _exact_float64_op(F.conv2d, x, w, stride=c.stride, padding=c.padding, groups=c.groups)
                else:
                    acc = torch.from_numpy(conv2d_acc(x.numpy(), w.numpy(), c.stride, c.padding, c.groups))
                env[n] = (acc + b.view(1, -1, 1, 1), unit)
            else:
                acc = _exact_float64_op(F.linear, x, w) if exact else torch.from_numpy(linear_acc(x.numpy(), w.numpy()))
                env[n] = (acc + b, unit)
        elif n.kind == "add":
            skip_v, skip_fl = env[n.inputs[1]]
            fmt = input_format(n.module.skip_quant())
            total, fl_sum = align_add(v.numpy(), fl, _requant(skip_v, skip_fl, fmt).numpy(), fmt.unit)
            env[n] = (torch.from_numpy(np.asarray(total, dtype=np.int64)), fl_sum)
        elif n.kind == "gap":
            fmt = input_format(n.module.act)
            env[n] = (_requant(v, fl, fmt).sum((2, 3), keepdim=True), fmt.unit + n.attrs["shift"])
        elif n.kind == "maxpool":
            a = n.attrs
            env[n] = (_exact_float64_op(F.max_pool2d, v, kernel_size=a["kernel"], stride=a["stride"], padding=a["padding"]), fl)
        elif n.kind == "relu":
            env[n] = (v.clamp_min(0), fl)
        elif n.kind == "flatten":
            env[n] = (v.flatten(1), fl)
    return env[plan.output]

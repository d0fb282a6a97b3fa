"""Export a prepared F8 QAT model to the integer model file (docs/ir.md).

The graph comes from the model's torch.fx trace (f8hw.nn.prepare), so any
topology made of f8hw.nn layers exports.  Formats are demand driven: every
reader asks its input for the format it reads (its eval FL, signedness and
kind: INT8 or an FP8 format, whose weights are written as uint8 codes with an
int64 bias at the accumulator unit);
a producer gets one output per distinct requested format, and a maxpool or
flatten is duplicated per format (they never change a format).  A residual
QAdd is fused into its main layer as that node's skip input.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

import f8hw
from f8hw.errors import F8Error
from f8hw.ir import Graph, Node, make_ref
from f8hw.modelfile import save_model
from f8hw.nn.graph import Plan, PNode, UnsupportedOpError, input_format, prepare
from f8hw.nn.layers import F8Module, QConv2d, QLinear
from f8hw.nn.quant import IMAGE_FL
from f8hw.numerics import TensorFormat


def _requests(plan: Plan, logits: TensorFormat) -> dict[PNode, list[TensorFormat]]:
    """Formats each node must produce, gathered from its readers in reverse topological order."""
    wanted: dict[PNode, list[TensorFormat]] = {n: [] for n in plan.nodes}

    def ask(node: PNode, fmt: TensorFormat) -> None:
        if fmt not in wanted[node]:
            wanted[node].append(fmt)

    ask(plan.output, logits)
    for n in reversed(plan.nodes):
        if n.kind == "layer":
            ask(n.inputs[0], input_format(n.module.act))
        elif n.kind == "gap":
            ask(n.inputs[0], input_format(n.module.act))
        elif n.kind == "add":
            for fmt in wanted[n]:
                ask(n.inputs[0], fmt)
            ask(n.inputs[1], input_format(n.module.skip_quant()))
        elif n.kind in ("maxpool", "relu", "flatten"):
            for fmt in wanted[n]:
                if n.kind == "relu" and fmt.signed:
                    raise UnsupportedOpError(f"{n.name!r}: a ReLU output is read as a signed tensor")
                ask(n.inputs[0], fmt)
    return wanted


def build_graph(model: nn.Module) -> Graph:
    """The integer graph of a prepared model in eval mode (weights from the layers' integer_params)."""
    plan: Plan | None = getattr(model, "f8_plan", None)
    if plan is None:
        raise F8Error("export needs a prepared model (f8hw.nn.prepare)")
    if model.training:
        raise F8Error("export needs eval mode (model.eval())")
    floats = [n.name for n in plan.nodes if isinstance(n.module, F8Module) and not n.module.quantized]
    if floats:
        raise F8Error(f"export needs a calibrated model in F8 mode, but layer {floats[0]!r} is in float mode: "
                      f"run f8hw.nn.calibrate(model, batches) first")
    if plan.output.kind != "layer":
        raise UnsupportedOpError(
            f"model output {plan.output.name!r} ({plan.output.kind}) must be a QLinear/QConv2d output (the int32 logits)"
        )
    params = {n: n.module.integer_params() for n in plan.layers()}
    wanted = _requests(plan, _logits_format(plan.output, params[plan.output][1]))
    refs: dict[tuple[PNode, TensorFormat], str] = {}
    nodes: list[Node] = []
    fused_add = {n.inputs[0]: n for n in plan.nodes if n.kind == "add"}
    for n in plan.nodes:
        formats = wanted[n]
        if n.kind == "input":
            if formats != [TensorFormat(IMAGE_FL, False)]:
                raise UnsupportedOpError(f"the model input is read in formats {formats}; only unsigned fl 8 is possible")
            nodes.append(Node("input", "input", attrs={"shape": list(n.shape)}, outputs=formats))
            refs[n, formats[0]] = "input"
        elif n.kind in ("layer", "add"):
            if n in fused_add:
                continue  # emitted with its add, once the skip operand exists
            layer = n.inputs[0] if n.kind == "add" else n
            if not formats:
                raise UnsupportedOpError(f"layer {layer.name!r}: its output is never used")
            nodes.append(_layer_node(layer, params[layer], refs, n if n.kind == "add" else None, formats))
            for k, fmt in enumerate(formats):
                refs[n, fmt] = make_ref(layer.name, k)
        elif n.kind == "relu":
            for fmt in formats:
                refs[n, fmt] = refs[n.inputs[0], fmt]
        elif n.kind == "gap":
            src = refs[n.inputs[0], input_format(n.module.act)]
            nodes.append(Node(n.name, "avgpool_global", [src], {"shift": n.attrs["shift"]}, formats))
            for k, fmt in enumerate(formats):
                refs[n, fmt] = make_ref(n.name, k)
        elif n.kind in ("maxpool", "flatten"):
            attrs = dict(n.attrs) if n.kind == "maxpool" else {}
            for k, fmt in enumerate(formats):
                name = n.name if k == 0 else f"{n.name}_{k}"
                nodes.append(Node(name, n.kind, [refs[n.inputs[0], fmt]], attrs, [fmt]))
                refs[n, fmt] = name
    return Graph(nodes, refs[plan.output, wanted[plan.output][0]]).validate()


def _logits_format(layer: PNode, w_fl: int) -> TensorFormat:
    """Raw accumulator output of the final layer: int32 for INT8 x INT8, int64 with an FP8 operand."""
    x_fmt = input_format(layer.module.act)
    w_fmt = TensorFormat(w_fl, True, 8, layer.module.w_kind)
    return TensorFormat(x_fmt.unit + w_fmt.unit, True, 32 if x_fmt.kind == w_fmt.kind == "int" else 64)


def _layer_node(n: PNode, params, refs, add: PNode | None, formats) -> Node:
    m = n.module
    w, w_fl, b, _ = params
    x_fmt = input_format(m.act)
    inputs = [refs[n.inputs[0], x_fmt]]
    if add is not None:
        inputs.append(refs[add.inputs[1], input_format(add.module.skip_quant())])
    weight = w.numpy().astype(np.int8 if m.w_kind == "int" else np.uint8)
    bias = b.numpy().astype(np.int64)
    if x_fmt.kind == m.w_kind == "int":
        if bias.size and (bias.min() < -(2**31) or bias.max() > 2**31 - 1):
            raise F8Error(f"layer {n.name!r}: bias does not fit int32 (max |b| = {int(np.abs(bias).max())})")
        bias = bias.astype(np.int32)
    w_attrs = {"w_fl": w_fl} if m.w_kind == "int" else {"w_fl": w_fl, "w_kind": m.w_kind}
    if isinstance(m, QConv2d):
        c = m.conv
        attrs = {
            "in_channels": c.in_channels,
            "out_channels": c.out_channels,
            "kernel": list(c.kernel_size),
            "stride": list(c.stride),
            "padding": list(c.padding),
            "groups": c.groups,
            **w_attrs,
        }
        return Node(n.name, "conv2d", inputs, attrs, formats, weight, bias)
    assert isinstance(m, QLinear)
    lin = m.linear
    attrs = {"in_features": lin.in_features, "out_features": lin.out_features, **w_attrs}
    return Node(n.name, "linear", inputs, attrs, formats, weight, bias)


def export(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike, meta: dict | None = None) -> Graph:
    """Write the integer model file of model (F8 mode, eval) to path; returns the graph.

    example_input is a uint8 batch (N, C, H, W); the model is (re)prepared on it
    so the graph matches the model's current code.  meta (primitives only) is
    stored beside the graph.
    """
    if example_input.dtype != torch.uint8:
        raise F8Error(f"example_input must be a uint8 image batch, got {example_input.dtype}")
    model.eval()
    prepare(model, example_input)
    graph = build_graph(model)
    info = {
        "producer": f"f8hw.exporter {f8hw.__version__}",
        "input": {"shape": list(example_input.shape[1:]), "dtype": "uint8", "fl": IMAGE_FL},
    }
    info.update(meta or {})
    save_model(graph, path, info)
    return graph

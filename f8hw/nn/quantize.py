"""F8Net quantization of a plain PyTorch model: quantize(model, example_input) -> the equivalent f8hw.nn model.

The model is traced with torch.fx and rebuilt from f8hw.nn layers, keeping its module names:

* Conv2d + BatchNorm2d -> QConv2d (BN folded by the double forward in F8 mode; a conv bias moves into
  the BN's running mean); Linear -> QLinear; AdaptiveAvgPool2d(1) -> QGlobalAvgPool2d; ``a + b`` after a
  conv/BN -> QAdd fused into that layer (clip sharing at the join is prepare()'s wiring);
* ReLU / ReLU6 disappear into their readers: a layer reading a ReLU'd tensor quantizes it unsigned (the
  saturation is the ReLU; PACT's learned clip replaces ReLU6's 6), one reading a pre-activation tensor
  (a linear bottleneck) quantizes it signed;
* MaxPool2d, flatten, Dropout and Identity are kept (or dropped) as they are.

The input is the uint8 image; the plain model is assumed to see it as image / 256.  In float mode the
result computes exactly what the plain model computes; calibrate (PTQ) and train it (QAT) like any f8hw.nn
model, then f8hw.export.  Anything else is a one-line UnsupportedOpError naming it and its place.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from f8hw.nn.graph import UnsupportedOpError, conv_problem, maxpool_problem, prepare
from f8hw.nn.layers import QAdd, QConv2d, QGlobalAvgPool2d, QLinear

__all__ = ["quantize"]

_RELU_MODULES = (nn.ReLU, nn.ReLU6)
_RELU_FUNCS = (F.relu, torch.relu, F.relu6)
_ADD_FUNCS = (operator.add, operator.iadd, torch.add)
_PASS_MODULES = (nn.Dropout, nn.Identity)


@dataclass
class _V:
    """A traced tensor: its node in the new graph, whether readers see it through a ReLU, what made it."""

    node: torch.fx.Node | None
    relu: bool
    kind: str                       # input / layer / conv / add / other / size
    source: torch.fx.Node | None = None   # original node (a conv awaiting its BN, a layer for the add check)
    module: nn.Module | None = None


class _Rebuild:
    def __init__(self, gm: torch.fx.GraphModule):
        self.gm = gm
        self.mods = dict(gm.named_modules())
        self.graph = torch.fx.Graph()
        self.new_mods: dict[str, nn.Module] = {}
        self.env: dict[torch.fx.Node, _V] = {}

    def where(self, node) -> str:
        return f"{node.target!r}" if node.op == "call_module" else f"node {node.name!r}"

    def val(self, node, arg) -> _V:
        if not isinstance(arg, torch.fx.Node) or arg not in self.env:
            raise UnsupportedOpError(f"{self.where(node)}: argument {arg!r} is not a traced tensor")
        v = self.env[arg]
        if v.kind == "conv":
            raise UnsupportedOpError(f"{v.source.target!r}: a Conv2d must be followed by its BatchNorm2d "
                                     f"(QConv2d fuses conv + BN)")
        return v

    def call(self, name: str, module: nn.Module, *args) -> torch.fx.Node:
        name = name.replace(".", "_") if name in self.new_mods else name
        self.new_mods[name] = module
        return self.graph.call_module(name, tuple(args))

    # ------------------------------------------------------------ op by op

    def run(self) -> torch.fx.GraphModule:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if any(v.kind == "input" for v in self.env.values()):
                    raise UnsupportedOpError(f"input {node.name!r}: f8hw models have one image input")
                self.env[node] = _V(self.graph.placeholder(node.name), True, "input")
            elif node.op == "call_module":
                self.env[node] = self.module(node, self.mods[node.target])
            elif node.op == "call_function":
                self.env[node] = self.function(node)
            elif node.op == "call_method":
                self.env[node] = self.method(node)
            elif node.op == "output":
                out = self.val(node, node.args[0])
                if out.kind != "layer":
                    raise UnsupportedOpError(f"model output {node.args[0].name!r}: must be a Linear/Conv2d output "
                                             f"(the int32 logits), not a {out.kind}")
                self.graph.output(out.node)
            else:
                raise UnsupportedOpError(f"node {node.name!r}: {node.op} {node.target!r} is not supported "
                                         f"(parameters used outside a module)")
        return torch.fx.GraphModule(self.new_mods, self.graph, class_name=type(self.gm).__name__)

    def module(self, node, m: nn.Module) -> _V:
        x = node.args[0] if node.args else None
        if isinstance(m, nn.Conv2d):
            users = list(node.users)
            if len(users) != 1 or users[0].op != "call_module" or not isinstance(self.mods[users[0].target],
                                                                                  nn.BatchNorm2d):
                raise UnsupportedOpError(f"{node.target!r}: a Conv2d must be followed by its BatchNorm2d only "
                                         f"(QConv2d fuses conv + BN)")
            problem = conv_problem(m)
            if problem:
                raise UnsupportedOpError(f"{node.target!r}: {problem}")
            return _V(None, False, "conv", node, m)
        if isinstance(m, nn.BatchNorm2d):
            conv_v = self.env.get(x)
            if conv_v is None or conv_v.kind != "conv":
                raise UnsupportedOpError(f"{node.target!r}: a BatchNorm2d must directly follow a Conv2d")
            return self.conv_bn(conv_v, m)
        src = self.val(node, x)
        if isinstance(m, _RELU_MODULES):
            return _V(src.node, True, "other" if src.kind != "input" else "input")
        if isinstance(m, _PASS_MODULES):
            return src
        if isinstance(m, nn.Linear):
            q = QLinear(m.in_features, m.out_features, signed_input=not src.relu)
            with torch.no_grad():
                q.linear.weight.copy_(m.weight)
                if m.bias is not None:
                    q.linear.bias.copy_(m.bias)
                else:
                    q.linear.bias.zero_()
            return _V(self.call(node.target, q, src.node), False, "layer", node)
        if isinstance(m, nn.MaxPool2d):
            problem = maxpool_problem(m)
            if problem:
                raise UnsupportedOpError(f"{node.target!r}: {problem}")
            return _V(self.call(node.target, nn.MaxPool2d(m.kernel_size, m.stride, m.padding), src.node), src.relu, "other")
        if isinstance(m, nn.AdaptiveAvgPool2d):
            if m.output_size not in (1, (1, 1)):
                raise UnsupportedOpError(f"{node.target!r}: AdaptiveAvgPool2d({m.output_size}); only output size 1")
            return _V(self.call(node.target, QGlobalAvgPool2d(signed_input=not src.relu), src.node), src.relu, "other")
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise UnsupportedOpError(f"{node.target!r}: Flatten({m.start_dim}, {m.end_dim}); only flatten from dim 1")
            return _V(self.call(node.target, nn.Flatten(), src.node), src.relu, "other")
        raise UnsupportedOpError(f"{node.target!r}: unsupported module {type(m).__name__} (quantize maps Conv2d+BatchNorm2d, "
                                 f"Linear, ReLU/ReLU6, MaxPool2d, AdaptiveAvgPool2d(1), Flatten, residual +)")

    def conv_bn(self, v: _V, bn: nn.BatchNorm2d) -> _V:
        c: nn.Conv2d = v.module
        src = self.val(v.source, v.source.args[0])
        q = QConv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.groups,
                    signed_input=not src.relu)
        with torch.no_grad():
            q.conv.weight.copy_(c.weight)
            q.bn.load_state_dict(bn.state_dict())
            q.bn.eps, q.bn.momentum = bn.eps, bn.momentum
            if c.bias is not None:
                q.bn.running_mean.sub_(c.bias)        # bn(conv(x) + b) == bn'(conv(x)) with mean' = mean - b
        return _V(self.call(v.source.target, q, src.node), False, "layer", v.source)

    def function(self, node) -> _V:
        fn = node.target
        if fn in _ADD_FUNCS:
            if len(node.args) != 2 or node.kwargs:
                raise UnsupportedOpError(f"node {node.name!r}: add with alpha or more operands is not supported")
            a, b = (self.val(node, x) for x in node.args)
            main, skip = (a, b) if self.fusable(a) else (b, a)
            if not self.fusable(main):
                raise UnsupportedOpError(f"node {node.name!r}: a residual add needs one operand straight from a "
                                         f"Conv2d+BN/Linear used only there (before any ReLU)")
            return _V(self.call(node.name, QAdd(), main.node, skip.node), False, "add")
        if fn in _RELU_FUNCS:
            src = self.val(node, node.args[0])
            return _V(src.node, True, "other" if src.kind != "input" else "input")
        if fn is torch.flatten:
            return self.flatten(node, node.args[1:] or [node.kwargs.get("start_dim", 0)])
        if fn is F.adaptive_avg_pool2d and node.args[1:] in ((1,), ((1, 1),)):
            src = self.val(node, node.args[0])
            return _V(self.call(node.name, QGlobalAvgPool2d(signed_input=not src.relu), src.node), src.relu, "other")
        name = getattr(fn, "__name__", str(fn))
        raise UnsupportedOpError(f"node {node.name!r}: unsupported function {name} (quantize maps torch.flatten, "
                                 f"F.relu/relu6, F.adaptive_avg_pool2d(x, 1), +)")

    def method(self, node) -> _V:
        if node.target == "size":
            return _V(None, False, "size")
        if node.target in ("relu", "relu_"):
            src = self.val(node, node.args[0])
            return _V(src.node, True, "other")
        if node.target == "flatten":
            return self.flatten(node, node.args[1:] or [node.kwargs.get("start_dim", 0)])
        if node.target in ("view", "reshape") and len(node.args) == 3 and node.args[2] == -1 and isinstance(
                node.args[1], torch.fx.Node) and self.env.get(node.args[1], _V(None, False, "")).kind == "size":
            return self.flatten(node, [1])
        raise UnsupportedOpError(f"node {node.name!r}: unsupported tensor method .{node.target}()")

    def flatten(self, node, start) -> _V:
        src = self.val(node, node.args[0])
        if list(start)[:1] != [1]:
            raise UnsupportedOpError(f"node {node.name!r}: flatten must start at dim 1 (keep the batch)")
        return _V(self.call(node.name, nn.Flatten(), src.node), src.relu, "other")

    def fusable(self, v: _V) -> bool:
        """v comes straight from a layer (for a conv: its BN) and the add is its only reader."""
        if v.kind != "layer":
            return False
        out = next(iter(v.source.users)) if isinstance(self.mods.get(v.source.target), nn.Conv2d) else v.source
        return len(out.users) == 1


def quantize(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """The f8hw.nn equivalent of a plain torch model, prepared on example_input (uint8 images), float mode."""
    if not isinstance(example_input, torch.Tensor) or example_input.dtype != torch.uint8:
        raise UnsupportedOpError("quantize: example_input must be a uint8 image batch (N, C, H, W)")
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:
        raise UnsupportedOpError(f"quantize: torch.fx cannot trace {type(model).__name__} "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    new = _Rebuild(gm).run()
    new.train(model.training)
    prepare(new, example_input)
    return new

"""Graph validation, shape inference, format lookup and state round trips."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from f8hw.errors import AccumulatorOverflowError, GraphError
from f8hw.ir import Graph, Node, canonical_ref, graph_from_state, graph_to_state, parse_ref
from f8hw.numerics import TensorFormat
from f8hw.testing import random_conv_graph


@pytest.fixture
def graph():
    return random_conv_graph(np.random.default_rng(3), in_shape=(2, 9, 7))


def test_refs():
    assert parse_ref("a") == ("a", 0) and parse_ref("a:2") == ("a", 2)
    assert canonical_ref("a:0") == "a"
    with pytest.raises(ValueError):
        parse_ref("a:x")


def test_shapes_match_torch(graph):
    shapes = graph.shapes()
    x = torch.zeros(1, *graph.input_node.attrs["shape"])
    t = {"input": x}
    for n in graph.nodes[1:]:
        a = n.attrs
        x = t[canonical_ref(n.inputs[0])]
        if n.op == "conv2d":
            y = F.conv2d(x, torch.zeros(n.weight.shape), stride=a["stride"], padding=a["padding"], groups=a["groups"])
        elif n.op == "maxpool":
            y = F.max_pool2d(x, a["kernel"], a["stride"], a["padding"])
        elif n.op == "avgpool_global":
            y = x.sum(dim=(2, 3), keepdim=True)
        elif n.op == "flatten":
            y = x.flatten(1)
        else:
            y = F.linear(x, torch.zeros(n.weight.shape))
        for ref in n.refs():
            t[ref] = y
            assert shapes[ref] == tuple(y.shape[1:]), ref
    assert set(shapes) == set(t)


def test_format_lookup(graph):
    conv1 = graph.node("conv1")
    assert graph.format("conv1") == conv1.outputs[0] == graph.format("conv1:0")
    assert graph.format("input") == TensorFormat(8, False)
    assert graph.format("fc").bits == 32
    with pytest.raises(GraphError, match="'conv1'"):
        graph.format(f"conv1:{len(conv1.outputs)}")
    assert [n.name for n in graph.consumers("dw")] == ["pw"]


def broken(graph, name, **change):
    g = copy.deepcopy(graph)
    node = g.node(name)
    for k, v in change.items():
        if k in ("op", "inputs", "outputs", "weight", "bias"):
            setattr(node, k, v)
        else:
            node.attrs[k] = v
    return g


@pytest.mark.parametrize(
    "name, change, match",
    [
        ("dw", dict(op="conv3d"), "unknown op"),
        ("gconv", dict(inputs=[]), "takes 1 or 2 inputs"),
        ("pool", dict(inputs=["gconv", "pw"]), "takes 1 inputs"),
        ("gconv", dict(inputs=["nosuch"]), "not an output of an earlier node"),
        ("dw", dict(inputs=["pw"]), "not an output of an earlier node"),  # a forward reference
        ("gconv", dict(inputs=["pw:7"]), "not an output"),
        ("pw", dict(in_channels=3), "in_channels 3"),
        ("dw", dict(weight=np.zeros((8, 2, 3, 3), np.int8)), "weight shape"),
        ("dw", dict(bias=np.zeros(3, np.int32)), "bias shape"),
        ("dw", dict(bias=None), "bias must be"),
        ("dw", dict(weight=np.full((8, 1, 3, 3), 300, np.int16)), r"\[-127, 127\]"),
        ("gconv", dict(groups=3), "groups 3"),
        ("gconv", dict(kernel=[3]), "'kernel'"),
        ("gconv", dict(kernel=[20, 20], padding=[0, 0]), "does not fit"),
        ("dw", dict(outputs=[TensorFormat(8, True)]), "out of range 0..7"),
        ("dw", dict(outputs=[TensorFormat(9, False)]), "out of range 0..8"),
        ("dw", dict(outputs=[TensorFormat(-1, False)]), "out of range"),
        ("dw", dict(outputs=[TensorFormat(3, True, 16)]), "bits"),
        ("dw", dict(outputs=[]), "has no outputs"),
        ("dw", dict(w_fl=8), "w_fl 8"),
        ("dw", dict(outputs=[TensorFormat(20, True, 32)]), "32-bit"),
        ("pool", dict(outputs=[TensorFormat(1, False)] * 2), "maxpool must have one output"),
        ("pool", dict(padding=[2, 2]), "at most half the kernel"),
        ("flat", dict(outputs=[TensorFormat(0, True)]), "flatten must have one output with its input's format"),
        ("pool", dict(ceil_mode=True), "unknown attr key 'ceil_mode'"),
        ("gconv", dict(stride=(1, True)), "'stride' must be a list of 2 ints"),
        ("gap", dict(shift=-1), "'shift'"),
        ("gap", dict(shift=30), "requantization shift"),
        ("fc", dict(in_features=5), "in_features 5"),
        ("fc", dict(inputs=["pool"]), "in_features"),
    ],
)
def test_bad_graphs_are_rejected_naming_the_node(graph, name, change, match):
    g = broken(graph, name, **change)
    with pytest.raises(GraphError, match=match) as e:
        g.validate()
    assert f"'{name}'" in str(e.value)


def test_skip_shape_mismatch(graph):
    g = broken(graph, "gconv", inputs=["pw", "conv1"])  # gconv has 2x the channels of conv1
    with pytest.raises(GraphError, match="skip 'conv1' shape") as e:
        g.validate()
    assert "'gconv'" in str(e.value)


def test_32bit_tensor_cannot_be_consumed(graph):
    g = copy.deepcopy(graph)
    g.nodes.append(Node("after", "flatten", ["fc"], {}, [TensorFormat(0, True)]))
    with pytest.raises(GraphError, match="'after'.*32-bit"):
        g.validate()


def test_accumulator_overflow_rejected():
    n = (2**31 - 1) // (255 * 127) + 1
    g = Graph([
        Node("input", "input", [], {"shape": [n, 1, 1]}, [TensorFormat(8, False)]),
        Node("flat", "flatten", ["input"], {}, [TensorFormat(8, False)]),
        Node("huge", "linear", ["flat"], dict(in_features=n, out_features=2, w_fl=0), [TensorFormat(8, True, 32)],
             np.full((2, n), -127, np.int8), np.zeros(2, np.int32)),
    ], "huge")
    with pytest.raises(AccumulatorOverflowError, match="'huge'.*int32"):
        g.validate()
    g.nodes[2].weight[:, 1:] = 0  # one term: fits
    g.validate()


def test_graph_level_errors(graph):
    g = copy.deepcopy(graph)
    for output in ("nosuch", ":", "fc:x", 3):
        g.output = output
        with pytest.raises(GraphError, match=f"node {output!r}: graph output is not a tensor of the graph"):
            g.validate()
    g = copy.deepcopy(graph)
    g.nodes.append(copy.deepcopy(g.nodes[1]))
    with pytest.raises(GraphError, match="'conv1': duplicate"):
        g.validate()
    g = copy.deepcopy(graph)
    g.nodes[0].outputs = [TensorFormat(7, False)]
    with pytest.raises(GraphError, match="'input'"):
        g.validate()
    with pytest.raises(GraphError, match="no such node"):
        graph.node("nosuch")


@pytest.mark.parametrize("tensors", ["torch", "numpy"])
def test_state_round_trip(graph, tensors):
    state = graph_to_state(graph, tensors)
    w = state["nodes"][1]["weight"]
    assert isinstance(w, torch.Tensor if tensors == "torch" else np.ndarray)
    assert w.dtype == (torch.int8 if tensors == "torch" else np.int8)
    g2 = graph_from_state(state).validate()
    assert g2.output == graph.output
    for a, b in zip(graph.nodes, g2.nodes):
        assert (a.name, a.op, a.inputs, a.outputs) == (b.name, b.op, b.inputs, b.outputs)
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in a.attrs.items()} == b.attrs
        for x, y in ((a.weight, b.weight), (a.bias, b.bias)):
            assert (x is None and y is None) or np.array_equal(x, y)


def test_malformed_state_names_node_and_field():
    with pytest.raises(GraphError, match="^node 'x': node key 'op' is missing$"):
        graph_from_state({"nodes": [{"name": "x"}], "output": "x"})
    with pytest.raises(GraphError, match="^node 'x': node key 'attrs' is missing$"):
        graph_from_state({"nodes": [{"name": "x", "op": "flatten", "inputs": [], "outputs": []}], "output": "x"})

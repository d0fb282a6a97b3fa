"""Builders of random, valid integer graphs for tests across f8hw.

Every builder takes a numpy Generator so tests are reproducible; every graph
returned passes Graph.validate().  Reuse these from compiler/simulator tests
instead of writing new builders.
"""

from __future__ import annotations

import numpy as np

from f8hw.ir import Graph, Node
from f8hw.numerics import TensorFormat, fl_range


def random_format(rng: np.random.Generator, signed: bool | None = None) -> TensorFormat:
    """A random 8-bit format (random signedness unless given)."""
    if signed is None:
        signed = bool(rng.integers(2))
    r = fl_range(signed)
    return TensorFormat(int(rng.integers(r.start, r.stop)), signed)


def random_weight(rng: np.random.Generator, shape) -> np.ndarray:
    """int8 weight with values in [-127, 127] (extremes included with some probability)."""
    w = rng.integers(-127, 128, size=shape)
    w[rng.random(size=shape) < 0.05] = 127
    w[rng.random(size=shape) < 0.05] = -127
    return w.astype(np.int8)


def random_bias(rng: np.random.Generator, n: int, fl_a: int) -> np.ndarray:
    """int32 bias of a plausible magnitude at fl_a (a few units of the real value)."""
    return rng.integers(-(2 ** (fl_a + 3)), 2 ** (fl_a + 3) + 1, size=n).astype(np.int32)


def random_outputs(rng: np.random.Generator, fl_v: int, n: int | None = None) -> list[TensorFormat]:
    """1-2 random 8-bit output formats whose requantization shift is in range."""
    n = int(rng.integers(1, 3)) if n is None else n
    outs = []
    while len(outs) < n:
        f = random_format(rng)
        if -8 <= fl_v - f.fl <= 15 and f not in outs:
            outs.append(f)
    return outs


def conv_node(
    rng: np.random.Generator,
    name: str,
    x: str,
    x_fmt: TensorFormat,
    cin: int,
    cout: int,
    kernel=(3, 3),
    stride=(1, 1),
    padding=(1, 1),
    groups: int = 1,
    w_fl: int | None = None,
    skip: str | None = None,
    skip_fmt: TensorFormat | None = None,
    outputs: list[TensorFormat] | None = None,
) -> Node:
    """A conv2d node with random int8 weights, bias and (unless given) output formats."""
    w_fl = int(rng.integers(0, 8)) if w_fl is None else w_fl
    fl_a = x_fmt.fl + w_fl
    fl_v = fl_a if skip is None else max(fl_a, skip_fmt.fl)
    return Node(
        name,
        "conv2d",
        [x] if skip is None else [x, skip],
        dict(
            in_channels=cin,
            out_channels=cout,
            kernel=list(kernel),
            stride=list(stride),
            padding=list(padding),
            groups=groups,
            w_fl=w_fl,
        ),
        outputs if outputs is not None else random_outputs(rng, fl_v),
        random_weight(rng, (cout, cin // groups, *kernel)),
        random_bias(rng, cout, fl_a),
    )


def random_conv_graph(
    rng: np.random.Generator,
    in_shape: tuple[int, int, int] = (3, 10, 10),
    channels: int = 8,
    classes: int = 10,
) -> Graph:
    """A small net exercising every op: strided/padded/grouped/depthwise conv,
    a residual add, several outputs per node, maxpool, global average pool,
    flatten and a 32-bit classifier.  Shapes, strides, groups and FLs are random.
    """
    c0, h, w = in_shape
    img = TensorFormat(8, False)
    nodes = [Node("input", "input", [], {"shape": list(in_shape)}, [img])]
    k = int(rng.integers(1, 4))
    stride = int(rng.integers(1, 3))
    nodes.append(conv_node(rng, "conv1", "input", img, c0, channels, (k, k), (stride, stride), (k // 2, k // 2)))
    x_ref, x_fmt = "conv1", nodes[-1].outputs[0]
    skip_ref = "conv1:1" if len(nodes[-1].outputs) > 1 else "conv1"
    skip_fmt = nodes[-1].outputs[-1]
    # depthwise 3x3 then pointwise with the residual add
    nodes.append(conv_node(rng, "dw", x_ref, x_fmt, channels, channels, groups=channels))
    nodes.append(
        conv_node(rng, "pw", "dw", nodes[-1].outputs[0], channels, channels, (1, 1), padding=(0, 0),
                  skip=skip_ref, skip_fmt=skip_fmt)
    )
    # grouped conv
    g = int(rng.choice([1, 2, 4]))
    nodes.append(conv_node(rng, "gconv", "pw", nodes[-1].outputs[0], channels, 2 * channels, groups=g))
    fmt = nodes[-1].outputs[0]
    nodes.append(Node("pool", "maxpool", ["gconv"], dict(kernel=[2, 2], stride=[2, 2], padding=[int(rng.integers(2))] * 2), [fmt]))
    shift = int(rng.integers(0, 5))
    nodes.append(Node("gap", "avgpool_global", ["pool"], {"shift": shift}, random_outputs(rng, fmt.fl + shift, 1)))
    gfmt = nodes[-1].outputs[0]
    nodes.append(Node("flat", "flatten", ["gap"], {}, [gfmt]))
    w_fl = int(rng.integers(0, 8))
    fl_a = gfmt.fl + w_fl
    nodes.append(
        Node("fc", "linear", ["flat"], dict(in_features=2 * channels, out_features=classes, w_fl=w_fl),
             [TensorFormat(fl_a, True, 32)], random_weight(rng, (classes, 2 * channels)), random_bias(rng, classes, fl_a))
    )
    return Graph(nodes, "fc").validate()


def random_images(rng: np.random.Generator, graph: Graph, n: int) -> np.ndarray:
    """n random uint8 images of the graph's input shape (rails included)."""
    shape = (n, *graph.input_node.attrs["shape"])
    x = rng.integers(0, 256, size=shape)
    x[rng.random(size=shape) < 0.05] = 255
    x[rng.random(size=shape) < 0.05] = 0
    return x.astype(np.uint8)

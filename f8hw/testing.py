"""Builders of random, valid integer graphs for tests across f8hw.

Every builder takes a numpy Generator so tests are reproducible; every graph
returned passes Graph.validate().  Reuse these from compiler/simulator tests
instead of writing new builders.
"""

from __future__ import annotations

import numpy as np

from f8hw.ir import Graph, Node
from f8hw.numerics import TensorFormat, fl_grid_search, fl_range, quantize_format


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


def float_weight(w, kind: str, fl: int | None = None) -> tuple[np.ndarray, int]:
    """Float weights -> (stored weights, w_fl): int8 for "int", uint8 codes for an FP8 kind; fl by grid search."""
    w = np.asarray(w, dtype=np.float64)
    fl = fl_grid_search(w, True, kind) if fl is None else fl
    stored = quantize_format(w, TensorFormat(fl, True, 8, kind))
    return stored.astype(np.int8 if kind == "int" else np.uint8), fl


def float_layer(name: str, op: str, inputs: list[str], x_fmt: TensorFormat, weight, bias, w_kind: str,
                outputs: list[TensorFormat], w_fl: int | None = None, stride=(1, 1), padding=(1, 1),
                groups: int = 1) -> Node:
    """A conv2d/linear node from float weight and bias in any weight format (bias rounded at the accumulator's unit)."""
    stored, w_fl = float_weight(weight, w_kind, w_fl)
    unit = x_fmt.unit + TensorFormat(w_fl, True, 8, w_kind).unit
    int_layer = x_fmt.kind == w_kind == "int"
    b = np.round(np.asarray(bias, np.float64) * 2.0**unit)
    b = np.clip(b, -(2**31), 2**31 - 1).astype(np.int32) if int_layer else b.astype(np.int64)
    attrs = dict(w_fl=w_fl) if w_kind == "int" else dict(w_fl=w_fl, w_kind=w_kind)
    if op == "linear":
        attrs.update(in_features=stored.shape[1], out_features=stored.shape[0])
    else:
        attrs.update(in_channels=stored.shape[1] * groups, out_channels=stored.shape[0], kernel=list(stored.shape[2:]),
                     stride=list(stride), padding=list(padding), groups=groups)
    return Node(name, op, inputs, attrs, outputs, stored, b)


def mixed_layer_graph(rng: np.random.Generator, op: str, x_fmt: TensorFormat, w_kind: str,
                      outputs: list[TensorFormat], skip_fmt: TensorFormat | None = None,
                      channels: int = 4, size: int = 5) -> Graph:
    """input -> "pre" (INT8 1x1 conv giving x in x_fmt, and the skip in skip_fmt) -> "layer" under test.

    op is "conv" (3x3), "depthwise" (3x3, groups = channels) or "linear" (on the
    flattened tensor); the layer's float weights/bias are random and quantized
    to w_kind, with a residual add of the skip tensor when skip_fmt is given.
    """
    img = TensorFormat(8, False)
    pre_outs = [x_fmt] + ([skip_fmt] if skip_fmt is not None and skip_fmt != x_fmt else [])
    nodes = [Node("input", "input", [], {"shape": [3, size, size]}, [img]),
             float_layer("pre", "conv2d", ["input"], img, rng.normal(0, 0.5, (channels, 3, 1, 1)),
                         rng.normal(0, 0.5, channels), "int", pre_outs, padding=(0, 0))]
    x, skip = "pre", None if skip_fmt is None else "pre" if skip_fmt == x_fmt else "pre:1"
    n_in = channels
    if op == "linear":
        nodes.append(Node("flat", "flatten", ["pre"], {}, [x_fmt]))
        x, n_in = "flat", channels * size * size
        if skip == "pre:1":
            nodes.append(Node("flat_skip", "flatten", ["pre:1"], {}, [skip_fmt]))
        skip = {None: None, "pre": "flat", "pre:1": "flat_skip"}[skip]
        shape = (n_in, n_in)
    else:
        shape = (channels, 1 if op == "depthwise" else channels, 3, 3)
    w = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
    nodes.append(float_layer("layer", "linear" if op == "linear" else "conv2d", [x] + ([skip] if skip else []),
                             x_fmt, w, rng.normal(0, 0.5, shape[0]), w_kind, outputs,
                             groups=channels if op == "depthwise" else 1))
    return Graph(nodes, "layer").validate()

"""Golden model vs a float64 reference computed on the same integers.

The reference uses torch float64 conv2d/linear/max_pool2d: every value in these
tests stays far below 2^53, so float64 is exact, and numpy's round (half to
even) of an exact quotient by a power of two is the rounding rule.  Exact
equality is required everywhere.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from f8hw import golden
from f8hw.errors import AccumulatorOverflowError
from f8hw.golden import GoldenInputError
from f8hw.ir import Graph, Node, canonical_ref
from f8hw.numerics import TensorFormat, qrange
from f8hw.testing import conv_node, random_conv_graph, random_format, random_images


def ref_requant(v: np.ndarray, fl_v: int, fmt: TensorFormat) -> np.ndarray:
    if fmt.bits == 32:
        return v
    lo, hi = qrange(fmt.signed)
    return np.clip(np.round(v * 2.0 ** (fmt.fl - fl_v)), lo, hi)


def reference_run(graph: Graph, images: np.ndarray) -> dict[str, np.ndarray]:
    """Independent float64 executor (torch ops) of the same integer graph."""
    t = {}
    for n in graph.nodes:
        a = n.attrs
        if n.op == "input":
            t[n.name] = torch.tensor(images, dtype=torch.float64)
            continue
        x = t[canonical_ref(n.inputs[0])]
        fx = graph.format(n.inputs[0])
        if n.op in ("conv2d", "linear"):
            w = torch.tensor(n.weight, dtype=torch.float64)
            b = torch.tensor(n.bias, dtype=torch.float64)
            if n.op == "conv2d":
                v = F.conv2d(x, w, b, stride=a["stride"], padding=a["padding"], groups=a["groups"])
            else:
                v = F.linear(x, w, b)
            fl_v = fx.fl + a["w_fl"]
            if len(n.inputs) == 2:
                fs = graph.format(n.inputs[1]).fl
                fl = max(fl_v, fs)
                v = v * 2.0 ** (fl - fl_v) + t[canonical_ref(n.inputs[1])] * 2.0 ** (fl - fs)
                fl_v = fl
            outs = [ref_requant(v.numpy(), fl_v, f) for f in n.outputs]
        elif n.op == "maxpool":
            outs = [F.max_pool2d(x, a["kernel"], a["stride"], a["padding"]).numpy()]
        elif n.op == "avgpool_global":
            v = x.sum(dim=(2, 3), keepdim=True).numpy()
            outs = [ref_requant(v, fx.fl + a["shift"], f) for f in n.outputs]
        elif n.op == "flatten":
            outs = [torch.flatten(x, 1).numpy()]
        for ref, o in zip(n.refs(), outs):
            t[ref] = torch.tensor(o, dtype=torch.float64)
    return {k: v.numpy() for k, v in t.items()}


def single_conv_graph(rng) -> Graph:
    """One conv2d (random kernel/stride/padding/groups/FLs, optional skip) after the input."""
    g = int(rng.choice([1, 2, 3]))
    depthwise = rng.random() < 0.3
    cin = int(rng.integers(1, 4)) * g
    cout = cin if depthwise else int(rng.integers(1, 4)) * g
    if depthwise:
        g = cin
    kh, kw = (int(k) for k in rng.integers(1, 6, size=2))
    sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
    ph, pw = (int(p) for p in rng.integers(0, 3, size=2))
    h = int(rng.integers(max(kh - 2 * ph, 1), 12))
    w = int(rng.integers(max(kw - 2 * pw, 1), 12))
    x_fmt = random_format(rng)
    # a first 1x1 conv turns the uint8 image into a tensor of any format
    nodes = [
        Node("input", "input", [], {"shape": [cin, h, w]}, [TensorFormat(8, False)]),
        conv_node(rng, "pre", "input", TensorFormat(8, False), cin, cin, (1, 1), padding=(0, 0), outputs=[x_fmt]),
    ]
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    skip = skip_fmt = None
    if rng.random() < 0.3 and (ho, wo) == (h, w) and cout == cin:
        skip, skip_fmt = "pre", x_fmt
    nodes.append(conv_node(rng, "conv", "pre", x_fmt, cin, cout, (kh, kw), (sh, sw), (ph, pw), g,
                           skip=skip, skip_fmt=skip_fmt))
    return Graph(nodes, "conv").validate()


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_matches_float64_reference(seed):
    rng = np.random.default_rng(seed)
    for _ in range(8):
        graph = single_conv_graph(rng)
        images = random_images(rng, graph, int(rng.integers(1, 4)))
        got, want = golden.run(graph, images), reference_run(graph, images)
        for ref in want:
            assert got[ref].dtype == np.int32
            np.testing.assert_array_equal(got[ref], want[ref].astype(np.int64), err_msg=ref)


@pytest.mark.parametrize("seed", range(20))
def test_linear_matches_float64_reference(seed):
    rng = np.random.default_rng(100 + seed)
    fin, fout = int(rng.integers(1, 60)), int(rng.integers(1, 20))
    img = TensorFormat(8, False)
    x_fmt = random_format(rng)
    w_fl = int(rng.integers(0, 8))
    pre = conv_node(rng, "pre", "input", img, 1, fin, (1, 1), padding=(0, 0), outputs=[x_fmt])
    outs = [TensorFormat(x_fmt.fl + w_fl, True, 32)] if rng.random() < 0.5 else [random_format(rng)]
    if outs[0].bits == 8 and not -8 <= x_fmt.fl + w_fl - outs[0].fl <= 15:
        outs = [TensorFormat(x_fmt.fl + w_fl, True, 32)]
    fc = Node("fc", "linear", ["flat"], dict(in_features=fin, out_features=fout, w_fl=w_fl), outs,
              rng.integers(-127, 128, size=(fout, fin)).astype(np.int8),
              rng.integers(-(2**20), 2**20, size=fout).astype(np.int32))
    graph = Graph([
        Node("input", "input", [], {"shape": [1, 1, 1]}, [img]), pre,
        Node("flat", "flatten", ["pre"], {}, [x_fmt]), fc], "fc").validate()
    images = random_images(rng, graph, 5)
    got, want = golden.run(graph, images), reference_run(graph, images)
    for ref in want:
        np.testing.assert_array_equal(got[ref], want[ref].astype(np.int64), err_msg=ref)


@pytest.mark.parametrize("seed", range(15))
def test_whole_random_graph_matches_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    graph = random_conv_graph(rng, in_shape=(int(rng.integers(1, 4)), int(rng.integers(4, 12)), int(rng.integers(4, 12))))
    images = random_images(rng, graph, 3)
    got, want = golden.run(graph, images), reference_run(graph, images)
    assert set(got) == set(want)
    for ref in want:
        np.testing.assert_array_equal(got[ref], want[ref].astype(np.int64), err_msg=ref)


def test_maxpool_padding_never_wins():
    x = -np.arange(1, 17, dtype=np.int64).reshape(1, 1, 4, 4)  # all negative: a zero pad would win
    out = golden.maxpool(x, (3, 3), (2, 2), (1, 1))
    assert out.tolist() == [[[[-1, -2], [-5, -6]]]]  # window maxima of the real pixels only


def test_images_are_validated():
    graph = random_conv_graph(np.random.default_rng(0), in_shape=(1, 8, 8))
    with pytest.raises(GoldenInputError, match="uint8"):
        golden.run(graph, np.zeros((1, 1, 8, 8), np.int32))
    with pytest.raises(GoldenInputError, match=r"\(N, 1, 8, 8\)"):
        golden.run(graph, np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(GoldenInputError, match="numpy"):
        golden.run(graph, [[0]])


def test_runtime_accumulator_guard(monkeypatch):
    """Even if the static proof were skipped, an overflowing accumulator is caught at run time."""
    n = (2**31 - 1) // (255 * 127) + 1
    img = TensorFormat(8, False)
    graph = Graph([
        Node("input", "input", [], {"shape": [n, 1, 1]}, [img]),
        Node("big", "conv2d", ["input"], dict(in_channels=n, out_channels=1, kernel=[1, 1], stride=[1, 1],
             padding=[0, 0], groups=1, w_fl=0), [TensorFormat(0, False)],
             np.full((1, n, 1, 1), 127, np.int8), np.zeros(1, np.int32)),
    ], "big")
    monkeypatch.setattr("f8hw.ir.check_accumulator", lambda *a: None)
    with pytest.raises(AccumulatorOverflowError, match="'big'"):
        golden.run(graph, np.full((1, n, 1, 1), 255, np.uint8))

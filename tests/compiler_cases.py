"""Random single-layer (and small multi-layer) models + random accelerator configs for the compiler tests."""

from __future__ import annotations

import numpy as np

from f8hw.arch import ArchConfig
from f8hw.ir import Graph, Node
from f8hw.numerics import TensorFormat
from f8hw.testing import conv_node, random_bias, random_format, random_outputs, random_weight

IMG = TensorFormat(8, False)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def random_arch(rng: np.random.Generator, small_spads: bool | None = None) -> ArchConfig:
    rows, cols = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    if small_spads is None:
        small_spads = bool(rng.random() < 0.5)
    if not small_spads:
        return ArchConfig(rows=rows, cols=cols)
    p2 = lambda lo, hi: 1 << int(rng.integers(lo, hi + 1))  # noqa: E731
    s_min = max(2, 1 << (rows - 1).bit_length())
    return ArchConfig(rows=rows, cols=cols, a_depth=p2(4, 8), w_depth=p2(5, 9), b_depth=p2(1, 4),
                      s_depth=max(s_min, p2(1, 5)), o_depth=max(s_min, p2(1, 6)))


def random_layer_graph(rng: np.random.Generator, kind: str | None = None) -> Graph:
    """input -> pre (1x1 conv to a random format) -> the layer under test (+ optional skip branch)."""
    kind = kind or str(rng.choice(["conv", "conv", "conv", "dw", "group", "linear", "maxpool", "gap"]))
    c0 = int(rng.integers(1, 5))
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    nodes = [Node("input", "input", [], {"shape": [c0, h, w]}, [IMG])]
    cin = int(rng.integers(1, 24))
    x_fmt = random_format(rng)
    nodes.append(conv_node(rng, "pre", "input", IMG, c0, cin, (1, 1), (1, 1), (0, 0), w_fl=int(rng.integers(0, 8)),
                           outputs=None))
    # make sure the tested format is representable: pick the pre output whose shift is in range
    pre = nodes[-1]
    fl_v = 8 + pre.attrs["w_fl"]
    if -8 <= fl_v - x_fmt.fl <= 15:
        pre.outputs = [x_fmt] + [f for f in pre.outputs if f != x_fmt][:1]
    x_fmt = pre.outputs[0]
    if kind in ("conv", "dw", "group"):
        if kind == "dw":
            cout, g = cin, cin
        elif kind == "group":
            g = int(rng.choice(_divisors(cin)))
            cout = g * int(rng.integers(1, 4))
        else:
            cout, g = int(rng.integers(1, 40)), 1
        kh, kw = int(rng.integers(1, min(h, 5) + 2)), int(rng.integers(1, min(w, 5) + 2))
        ph, pw = int(rng.integers(0, kh // 2 + 2)), int(rng.integers(0, kw // 2 + 2))
        kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        skip = skip_fmt = None
        if rng.random() < 0.35:
            skip_fmt = random_format(rng)
            nodes.append(conv_node(rng, "sk", "input", IMG, c0, cout, (kh, kw), (sh, sw), (ph, pw), w_fl=7,
                                   outputs=[skip_fmt] if -8 <= 15 - skip_fmt.fl <= 15 else None))
            skip, skip_fmt = "sk", nodes[-1].outputs[0]
        w_fl = int(rng.integers(0, 8))
        fl_a = x_fmt.fl + w_fl
        outs = None
        if skip is None and rng.random() < 0.25:
            outs = [TensorFormat(fl_a, True, 32)]
        elif rng.random() < 0.3:
            outs = random_outputs(rng, max(fl_a, skip_fmt.fl) if skip else fl_a, int(rng.integers(1, 4)))
        nodes.append(conv_node(rng, "layer", "pre", x_fmt, cin, cout, (kh, kw), (sh, sw), (ph, pw), groups=g,
                               w_fl=w_fl, skip=skip, skip_fmt=skip_fmt, outputs=outs))
    elif kind == "linear":
        nodes.append(Node("flat", "flatten", ["pre"], {}, [x_fmt]))
        fin, fout = cin * h * w, int(rng.integers(1, 30))
        w_fl = int(rng.integers(0, 8))
        fl_a = x_fmt.fl + w_fl
        inputs = ["flat"]
        fl_v = fl_a
        if rng.random() < 0.3:
            sk_fmt = random_format(rng)
            nodes.append(Node("sk", "linear", ["flat"], dict(in_features=fin, out_features=fout, w_fl=7),
                              [sk_fmt] if -8 <= x_fmt.fl + 7 - sk_fmt.fl <= 15 else random_outputs(rng, x_fmt.fl + 7, 1),
                              random_weight(rng, (fout, fin)), random_bias(rng, fout, x_fmt.fl + 7)))
            inputs.append("sk")
            fl_v = max(fl_a, nodes[-1].outputs[0].fl)
            outs = random_outputs(rng, fl_v, int(rng.integers(1, 3)))
        else:
            outs = [TensorFormat(fl_a, True, 32)] if rng.random() < 0.5 else random_outputs(rng, fl_a)
        nodes.append(Node("layer", "linear", inputs, dict(in_features=fin, out_features=fout, w_fl=w_fl), outs,
                          random_weight(rng, (fout, fin)), random_bias(rng, fout, fl_a)))
    elif kind == "maxpool":
        kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
        ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        nodes.append(Node("layer", "maxpool", ["pre"], dict(kernel=[kh, kw], stride=[sh, sw], padding=[ph, pw]),
                          [x_fmt]))
    elif kind == "gap":
        shift = int(rng.integers(0, 7))
        nodes.append(Node("layer", "avgpool_global", ["pre"], {"shift": shift},
                          random_outputs(rng, x_fmt.fl + shift, int(rng.integers(1, 3)))))
    else:
        raise ValueError(kind)
    return Graph(nodes, "layer").validate()

"""Depthwise line buffer (docs/compiler.md): compiled programs whose depthwise layers keep their window
rows in a ring of A lines, on the RTL against the ISA simulator (cycles, counters, MARK stamps, memory)
and golden.  The ring needs no new instruction; what it exercises is the hazard interlock and the A
banks' read/write timing under LOAD_As (A_DIAG, KH = new rows) that overlap COMPUTEs of the same ring,
COMPUTEs split per run of slots (acc = 1) and two depthwise layers back to back."""

from __future__ import annotations

import numpy as np
import pytest

from accel_lib import run_and_check, small_arch
from f8hw import testing
from f8hw.compiler import compile_model
from f8hw.ir import Graph, Node
from f8hw.numerics import TensorFormat

IMG = TensorFormat(8, False)
X = TensorFormat(4, False)


def random_lbuf_graph(rng: np.random.Generator, rows: int, cols: int) -> Graph:
    """1x1 conv -> depthwise KHxKW / (SH, SW) with padding (KH > SH, SW <= KW, >= 2 output rows, a map
    narrower or wider than R) -> [depthwise 3x3/1] -> 1x1 conv, an odd channel count half of the time."""
    c = int(rng.integers(1, 2 * cols + 2))
    kh, kw = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, min(2, kh - 1) + 1)), int(rng.integers(1, min(2, kw) + 1))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    h = int(rng.integers(kh + sh, kh + sh + 6))
    w = int(rng.integers(kw, kw + 2 * rows + 2))
    nodes = [Node("input", "input", [], {"shape": [c, h, w]}, [IMG]),
             testing.conv_node(rng, "pw0", "input", IMG, c, c, (1, 1), (1, 1), (0, 0), outputs=[X]),
             testing.conv_node(rng, "dw", "pw0", X, c, c, (kh, kw), (sh, sw), (ph, pw), groups=c, outputs=[X])]
    src = "dw"
    if rng.integers(0, 2):
        nodes.append(testing.conv_node(rng, "dw2", src, X, c, c, (3, 3), (1, 1), (1, 1), groups=c, outputs=[X]))
        src = "dw2"
    nodes.append(testing.conv_node(rng, "pw1", src, X, c, c, (1, 1), (1, 1), (0, 0), outputs=[X]))
    return Graph(nodes, "pw1").validate()


@pytest.mark.parametrize("size,rep", [("2x2", 0), ("2x2", 1), ("4x4", 0), ("4x4", 1), ("4x4", 2), ("4x2", 0)])
def test_lbuf_rtl_equals_isasim(size, rep, seed, tmp_path):
    arch = small_arch(size)
    rng = np.random.default_rng(seed)
    for _ in range(50):  # a layer the line buffer is used for (the scheduler may prefer row tiles)
        graph = random_lbuf_graph(rng, arch.rows, arch.cols)
        batch = int(rng.integers(1, 3))
        comp = compile_model(graph, arch, batch=batch)
        if any(L.tiles["lbuf"] for L in comp.layers):
            break
    else:
        pytest.fail("no random layer used the line buffer")
    images = testing.random_images(rng, graph, batch)
    r = run_and_check(graph, arch, "verilator", images, tmp_path, what=f"line-buffer layers (seed {seed})")
    print(f"[f8hw] verilator {size} lbuf: {r['cycles']} cycles, {r['checked']} tensors bit-exact")


@pytest.mark.parametrize("size", ["2x2", "4x4"])
def test_lbuf_stride2_wrap_rtl_equals_isasim(size, seed, tmp_path):
    """3x3/2 pad 1 on a 13x9 map (7 output rows): S = 5 slots, so the new rows of output row 4 wrap the
    ring (two LOAD_As), on several strips; an odd channel count; then a 3x3/1 depthwise layer."""
    arch = small_arch(size)
    rng = np.random.default_rng(seed)
    c = 2 * arch.cols + 1
    nodes = [Node("input", "input", [], {"shape": [c, 13, 9]}, [IMG]),
             testing.conv_node(rng, "dw", "input", IMG, c, c, (3, 3), (2, 2), (1, 1), groups=c, outputs=[X]),
             testing.conv_node(rng, "dw2", "dw", X, c, c, (3, 3), (1, 1), (1, 1), groups=c, outputs=[X])]
    graph = Graph(nodes, "dw2").validate()
    comp = compile_model(graph, arch)
    assert [L.tiles["lbuf"] for L in comp.layers] == [5, 4]
    images = testing.random_images(rng, graph, 1)
    r = run_and_check(graph, arch, "verilator", images, tmp_path, what=f"line-buffer stride 2 (seed {seed})")
    print(f"[f8hw] verilator {size} lbuf stride 2: {r['cycles']} cycles, {r['checked']} tensors bit-exact")


@pytest.mark.parametrize("size,signed", [("2x2", True), ("4x4", False)])
def test_lbuf_maxpool_rtl_equals_isasim(size, signed, seed, tmp_path):
    """Max pooling 3x3/2 pad 1 (PAD_VALUE 0x80 for a signed input) and 2x2/1 with the line buffer."""
    arch = small_arch(size)
    rng = np.random.default_rng(seed)
    c = arch.cols + 1
    fmt = TensorFormat(4, signed)
    nodes = [Node("input", "input", [], {"shape": [c, 12, 2 * arch.rows + 1]}, [IMG]),
             testing.conv_node(rng, "pw0", "input", IMG, c, c, (1, 1), (1, 1), (0, 0), outputs=[fmt]),
             Node("mp", "maxpool", ["pw0"], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1]), [fmt]),
             Node("mp2", "maxpool", ["mp"], dict(kernel=[2, 2], stride=[1, 1], padding=[0, 0]), [fmt])]
    graph = Graph(nodes, "mp2").validate()
    comp = compile_model(graph, arch)
    assert [L.tiles["lbuf"] for L in comp.layers] == [0, 5, 3]
    images = testing.random_images(rng, graph, 1)
    r = run_and_check(graph, arch, "verilator", images, tmp_path, what=f"line-buffer max pool (seed {seed})")
    print(f"[f8hw] verilator {size} lbuf maxpool: {r['cycles']} cycles, {r['checked']} tensors bit-exact")

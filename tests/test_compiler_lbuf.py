"""Depthwise line buffer (schedule.ring_tiles, docs/compiler.md): hand-computed ring layout of the
instructions, and random depthwise layers on the ISA simulator (race-checked) against golden."""

from __future__ import annotations

import numpy as np
import pytest

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.compiler import compile_model, lower, schedule
from f8hw.compiler.schedule import ring_tile_loads, ring_tiles
from f8hw.ir import Graph, Node
from f8hw.numerics import TensorFormat
from f8hw.testing import conv_node, random_images

from compiler_cases import IMG
from compiler_harness import check_model

X = TensorFormat(4, False)


def dw_graph(rng, c, h, w, k, s, p, pre=True, post=True, two=False) -> Graph:
    """[1x1 conv ->] depthwise KxK/s pad p [-> depthwise 3x3/1] [-> 1x1 conv]."""
    kh, kw = k if isinstance(k, tuple) else (k, k)
    sh, sw = s if isinstance(s, tuple) else (s, s)
    ph, pw = p if isinstance(p, tuple) else (p, p)
    nodes = [Node("input", "input", [], {"shape": [c, h, w]}, [IMG])]
    src, fmt = "input", IMG
    if pre:
        nodes.append(conv_node(rng, "pw0", src, fmt, c, c, (1, 1), (1, 1), (0, 0), outputs=[X]))
        src, fmt = "pw0", X
    nodes.append(conv_node(rng, "dw", src, fmt, c, c, (kh, kw), (sh, sw), (ph, pw), groups=c, outputs=[X]))
    src = "dw"
    if two:
        nodes.append(conv_node(rng, "dw2", src, X, c, c, (3, 3), (1, 1), (1, 1), groups=c, outputs=[X]))
        src = "dw2"
    if post:
        nodes.append(conv_node(rng, "pw1", src, X, c, c, (1, 1), (1, 1), (0, 0), outputs=[X]))
        src = "pw1"
    return Graph(nodes, src).validate()


def layer_instrs(comp, li: int):
    """Decoded instructions of layer li (between its MARK and the next), with the SET values in force."""
    regs: dict[int, int] = {}
    layer, out = None, []
    for w in comp.program:
        op, f = isa.decode(w)
        if op.name == "MARK":
            layer = f["slot"]
        elif op.name == "SET":
            regs[f["reg"]] = f["value"]
        if layer == li and op.name in ("LOAD_A", "COMPUTE"):
            out.append((op.name, f, dict(regs)))
    return out


def test_ring_layout_hand_computed():
    """4x4 array, 4 channels, 5x5 map, 3x3/1 pad 1: strips of 4 and 1 columns; S = 4 row slots of
    3 lines (KW*ncb); strip 0 in ring region 0, strip 1 in region 1 (12 lines further).  Output row y
    reads slots (y + kh) % 4, loads the window origin's row y - 1 + 2 into slot (y + 2) % 4 (y > 0), the
    whole window into slots 0..2 for y = 0; COMPUTEs are one run per consecutive slots, the weights in
    kernel-row order (W offset 3*kh of the run's first row), the last line split off (flush slot)."""
    rng = np.random.default_rng(3)
    g = dw_graph(rng, 4, 5, 5, 3, 1, 1, pre=False, post=False)
    arch = ArchConfig(rows=4, cols=4)
    comp = compile_model(g, arch)
    assert comp.layers[0].tiles["lbuf"] == 4
    ins = layer_instrs(comp, 0)
    loads = [(f["dst"], f["npix"], f["ih0"], f["iw0"], r[int(isa.Reg.KH)]) for n, f, r in ins if n == "LOAD_A"]
    a_half = arch.a_depth // 2
    base = loads[0][0]
    assert base in (0, a_half)
    exp_loads = []
    for strip, (iw0, npix) in enumerate(((-1, 4), (3, 1))):
        b = base + 12 * strip
        exp_loads.append((b, npix, -1, iw0, 3))                     # y = 0: rows -1..1 -> slots 0..2
        for y, slot in ((1, 3), (2, 0), (3, 1), (4, 2)):
            exp_loads.append((b + 3 * slot, npix, y + 1, iw0, 1))   # row y + 1 (5: padding) -> slot (y+2) % 4
    assert loads == exp_loads
    computes = [(f["a_base"], f["nlines"], f["acc"], f["last"]) for n, f, _ in ins if n == "COMPUTE"]
    w0 = next(f["w_base"] for n, f, _ in ins if n == "COMPUTE")
    wb = [f["w_base"] - w0 for n, f, _ in ins if n == "COMPUTE"]
    exp_c, exp_w = [], []
    for strip in range(2):
        b = base + 12 * strip
        # y: runs of (first slot, rows)
        for runs in (((0, 3),), ((1, 3),), ((2, 2), (0, 1)), ((3, 1), (0, 2)), ((0, 3),)):
            kh = 0
            for n_run, (s0, rows) in enumerate(runs):
                lines = 3 * rows
                first = n_run == 0
                if n_run < len(runs) - 1:
                    exp_c.append((b + 3 * s0, lines, 0 if first else 1, 0))
                    exp_w.append(3 * kh)
                else:
                    exp_c.append((b + 3 * s0, lines - 1, 0 if first else 1, 0))
                    exp_w.append(3 * kh)
                    exp_c.append((b + 3 * s0 + lines - 1, 1, 1, 1))
                    exp_w.append(3 * kh + lines - 1)
                kh += rows
    assert computes == exp_c
    assert wb == exp_w
    # the mask bits alternate per tile (A0/A1): a tile's loads and COMPUTEs carry the same one
    masks = [(n, f["mask"] & 3) for n, f, _ in ins]
    tile_bits = [m for n, m in masks if n == "LOAD_A"]
    assert all(a != b for a, b in zip(tile_bits, tile_bits[1:]))
    check_model(g, comp, random_images(rng, g, 1))


def test_ring_tile_loads_stride2_runs():
    """3x3/2: S = 5 slots, two new rows per tile, split where the ring wraps."""
    rng = np.random.default_rng(0)
    op = lower(dw_graph(rng, 4, 9, 9, 3, 2, 1, pre=False, post=False))[0][0]
    assert ring_tile_loads(op, 0) == ((0, 3),)
    # tile y reads window rows 2y .. 2y+2 (strip-relative); its new rows 2y+1, 2y+2 go to slots mod 5
    assert ring_tile_loads(op, 1) == ((1, 2),)          # rows 3, 4 -> slots 3, 4
    assert ring_tile_loads(op, 2) == ((1, 2),)          # rows 5, 6 -> slots 0, 1
    assert ring_tile_loads(op, 3) == ((1, 2),)          # rows 7, 8 -> slots 2, 3
    assert ring_tile_loads(op, 4) == ((1, 1), (2, 1))   # rows 9, 10 -> slots 4, 0: two LOAD_As
    assert ring_tile_loads(op, 5) == ((1, 2),)          # rows 11, 12 -> slots 1, 2


def _slots(op, y):
    kh, sh = op.kernel[0], op.stride[0]
    return [(y * sh + r) % (kh + sh) for a, n in ring_tile_loads(op, y) for r in range(a, a + n)]


@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2), (4, 3), ((3, 1), (2, 1))])
def test_ring_tile_loads_cover_new_rows(k, s):
    """Each tile's LOAD_As are runs of consecutive slots (no wrap inside one) that cover exactly the
    new window rows; the strip's first tile loads the whole window."""
    rng = np.random.default_rng(1)
    op = lower(dw_graph(rng, 4, 12, 12, k, s, 1, pre=False, post=False))[0][0]
    kh, sh = op.kernel[0], op.stride[0]
    S = kh + sh
    assert ring_tile_loads(op, 0) == ((0, kh),)
    for y in range(1, 8):
        runs = ring_tile_loads(op, y)
        rows = [r for a, n in runs for r in range(a, a + n)]
        assert rows == list(range(kh - sh, kh))
        for a, n in runs:
            first = (y * sh + a) % S
            assert first + n <= S            # one LOAD_A never wraps the ring
        # the new rows' slots are the ones the previous tile did not read
        prev = {((y - 1) * sh + r) % S for r in range(kh)}
        assert not prev & set(_slots(op, y))


@pytest.mark.parametrize("case", range(24))
def test_random_depthwise_lbuf_vs_golden(case):
    """Random depthwise layers (strides 1 and 2, rectangular kernels, padding, odd channel counts, maps
    narrower and wider than R, batch 1-2, two depthwise layers back to back) compiled with the line
    buffer, race-checked on the ISA simulator, bit-exact vs golden; the same outputs without it."""
    rng = np.random.default_rng(1000 + case)
    rows, cols = [(2, 2), (4, 4), (4, 2), (2, 4), (8, 8), (16, 16)][case % 6]
    c = int(rng.integers(1, 2 * cols + 3))
    kh, kw = int(rng.integers(2, 6)), int(rng.integers(1, 6))
    if case % 3 == 0:
        kw = kh
    sh = int(rng.integers(1, min(3, kh)))
    sw = int(rng.integers(1, min(3, kw) + 1))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    h = int(rng.integers(kh, kh + 12))
    w = int(rng.integers(kw, kw + (3 * rows if case % 2 else rows)))
    batch = 1 + case % 2
    g = dw_graph(rng, c, h, w, (kh, kw), (sh, sw), (ph, pw), pre=bool(case % 4), post=case % 5 != 0,
                 two=case % 4 == 1)
    arch = ArchConfig(rows=rows, cols=cols)
    comp = compile_model(g, arch, batch=batch)
    dw = next(L for L in comp.layers if L.name == "dw")
    op = next(o for o in lower(g)[0] if o.name == "dw")
    plan = schedule(op, arch, batch)
    assert bool(dw.tiles["lbuf"]) == bool(plan.ring) == (plan.diag and ring_tiles(op, plan.cotiles, arch))
    imgs = random_images(rng, g, batch)
    res = check_model(g, comp, imgs)
    off = compile_model(g, arch, batch=batch, lbuf=False)
    assert all(not L.tiles["lbuf"] for L in off.layers)
    res_off = check_model(g, off, imgs)
    for b in range(batch):
        assert np.array_equal(comp.read_tensor(res["memory"], comp.output_ref, b),
                              off.read_tensor(res_off["memory"], off.output_ref, b))


def test_lbuf_used_and_faster():
    """A 3x3/1 and a 3x3/2 depthwise layer on 16x16 use the line buffer and need fewer cycles than the
    row tiles of window reuse alone (lbuf=False)."""
    for s, hw in ((1, 40), (2, 41)):
        rng = np.random.default_rng(s)
        g = dw_graph(rng, 32, hw, hw, 3, s, 1)
        arch = ArchConfig()
        imgs = random_images(rng, g, 1)
        on, off = compile_model(g, arch), compile_model(g, arch, lbuf=False)
        assert on.layers[1].tiles["lbuf"] == 3 + s and not off.layers[1].tiles["lbuf"]
        r_on, r_off = check_model(g, on, imgs), check_model(g, off, imgs)
        assert r_on["cycles"] < r_off["cycles"]


@pytest.mark.parametrize("case", range(12))
def test_random_maxpool_lbuf_vs_golden(case):
    """Max pooling (MAX, signed and unsigned inputs: PAD_VALUE 0x80 / 0) uses window reuse and the line
    buffer too (max is order-independent like a depthwise sum): race-checked ISA simulator == golden,
    the same outputs as without the line buffer."""
    rng = np.random.default_rng(2000 + case)
    rows, cols = [(2, 2), (4, 4), (4, 2), (8, 8), (16, 16), (2, 4)][case % 6]
    c = int(rng.integers(1, 2 * cols + 3))
    k = int(rng.integers(2, 4))
    s = int(rng.integers(1, k))
    p = int(rng.integers(0, k // 2 + 1))
    h, w = int(rng.integers(k + s, k + 12)), int(rng.integers(k, k + 3 * rows))
    fmt = TensorFormat(4, bool(case % 2))
    nodes = [Node("input", "input", [], {"shape": [c, h, w]}, [IMG]),
             conv_node(rng, "pw0", "input", IMG, c, c, (1, 1), (1, 1), (0, 0), outputs=[fmt]),
             Node("mp", "maxpool", ["pw0"], dict(kernel=[k, k], stride=[s, s], padding=[p, p]), [fmt])]
    g = Graph(nodes, "mp").validate()
    arch = ArchConfig(rows=rows, cols=cols)
    batch = 1 + case % 2
    comp = compile_model(g, arch, batch=batch)
    assert comp.layers[1].tiles["lbuf"] in (0, k + s)
    imgs = random_images(rng, g, batch)
    res = check_model(g, comp, imgs)
    off = compile_model(g, arch, batch=batch, lbuf=False)
    res_off = check_model(g, off, imgs)
    for b in range(batch):
        assert np.array_equal(comp.read_tensor(res["memory"], "mp", b), off.read_tensor(res_off["memory"], "mp", b))

"""Compiler: each pass alone, the Compiled API, errors, cycles.

The random/bundled bit-exactness sweeps are in test_compiler_random.py.
"""

import json
import os

import numpy as np
import pytest

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.compiler import Compiled, CompileError, compile_model, legalize, lower, schedule
from f8hw.compiler.memory import allocate, bias_words, dense_weight, weight_blocks
from f8hw.ir import Graph, Node
from f8hw.isa import Mode
from f8hw.numerics import TensorFormat
from f8hw.testing import conv_node, random_bias, random_conv_graph, random_images, random_weight

from compiler_cases import IMG, random_layer_graph
from compiler_harness import check_model


def _net(rng=None):
    return random_conv_graph(rng or np.random.default_rng(7))


# ---------------------------------------------------------------- legalize

def test_legalize_unsupported_op_names_layer():
    g = _net()
    g.nodes[2].op = "softmax"
    with pytest.raises(CompileError, match=r"layer 'dw': unsupported op 'softmax'"):
        legalize(g, ArchConfig())


def test_legalize_overflow_names_layer():
    g = _net()
    conv = g.node("conv1")
    conv.bias = np.full_like(conv.bias, 2**31 - 2)
    with pytest.raises(CompileError, match=r"layer 'conv1'.*overflow"):
        compile_model(g, ArchConfig(rows=4, cols=4))


def test_impossible_scratchpad_names_layer():
    rng = np.random.default_rng(0)
    nodes = [Node("input", "input", [], {"shape": [1, 3, 12]}, [IMG]),
             conv_node(rng, "wide", "input", IMG, 1, 4, (1, 12), (1, 1), (0, 0))]
    g = Graph(nodes, "wide").validate()
    # 16 columns: one reduction step needs 16 weight entries, a W half holds 4
    with pytest.raises(CompileError, match=r"layer 'wide'.*W scratchpad half"):
        compile_model(g, ArchConfig(rows=2, cols=16, w_depth=8))
    # too large for main memory
    with pytest.raises(CompileError, match=r"main-memory words"):
        compile_model(g, ArchConfig(rows=2, cols=2, mem_words=16))


def test_legalize_accepts_valid():
    g = _net()
    assert legalize(g, ArchConfig()) is g


# ---------------------------------------------------------------- lower

def test_lower_kinds_and_views():
    g = _net()
    ops, views = lower(g)
    kinds = {op.name: op.kind for op in ops}
    assert kinds["dw"] == "dw" and kinds["pool"] == "max" and kinds["gap"] == "gap" and kinds["fc"] == "dense"
    assert kinds["conv1"] == "dense" and kinds["gconv"] == "dense"
    # flatten is a view of the GAP buffer; the classifier is a conv over the whole (C, 1, 1) map
    assert views["flat"].buffer == "gap" and views["flat"].logical == (16,)
    fc = next(op for op in ops if op.name == "fc")
    assert fc.kernel == (1, 1) and fc.outputs[0].raw
    pw = next(op for op in ops if op.name == "pw")
    assert pw.skip is not None and pw.acc_lshift >= 0 and pw.skip_lshift >= 0
    pool = next(op for op in ops if op.name == "pool")
    assert pool.pad_value == (0x80 if pool.in_signed else 0)


def test_lower_linear_over_map_is_c_major():
    rng = np.random.default_rng(1)
    nodes = [Node("input", "input", [], {"shape": [3, 2, 5]}, [IMG]),
             Node("flat", "flatten", ["input"], {}, [IMG]),
             Node("fc", "linear", ["flat"], dict(in_features=30, out_features=4, w_fl=3),
                  [TensorFormat(11, True, 32)], rng.integers(-127, 128, (4, 30)).astype(np.int8),
                  np.zeros(4, np.int32))]
    g = Graph(nodes, "fc").validate()
    ops, _ = lower(g)
    assert ops[0].kernel == (2, 5) and ops[0].weight.shape == (4, 3, 2, 5)
    assert ops[0].weight[1, 2, 1, 3] == nodes[2].weight[1, 2 * 10 + 1 * 5 + 3]


# ---------------------------------------------------------------- schedule

def test_schedule_ksplit_and_groups():
    g = random_layer_graph(np.random.default_rng(5), "conv")
    ops, _ = lower(g)
    op = ops[-1]
    # two pixel tiles (batch 2): weights resident across them, no K-split; one tile (3 pixels on 4 rows) is
    # split into kernel-row chunks on purpose, so that its weight loads overlap its MACs (schedule._row_chunks)
    big = schedule(op, ArchConfig(rows=4, cols=4), batch=2)
    assert big.n_chunks == 1 and schedule(op, ArchConfig(rows=4, cols=4)).n_chunks > 1
    # every co-tile weight-resident in one group -> each W group loaded once
    assert len({it.wkey for it in big.items}) == len(big.wgroups)
    small = schedule(op, ArchConfig(rows=4, cols=4, a_depth=4, w_depth=8))
    lines = [ch.lines for ct in small.cotiles for ch in ct.chunks]
    assert max(lines) <= 2 and small.n_chunks > 1
    # the chunks of a co-tile cover the reduction exactly once
    kh, kw = op.kernel
    for ct in small.cotiles:
        cover = np.zeros((kh, kw, ct.cb1 - ct.cb0), int)
        for ch in ct.chunks:
            cover[ch.kh0:ch.kh1, ch.kw0:ch.kw1, ch.cb0 - ct.cb0:ch.cb1 - ct.cb0] += 1
        assert (cover == 1).all()
    # first/last flags: exactly one first and one last per (pixel tile, co-tile)
    seen = {}
    for it in small.items:
        seen.setdefault((it.b, it.p0, it.co), []).append((it.first, it.last))
    for v in seen.values():
        assert v[0][0] and v[-1][1] and sum(f for f, _ in v) == 1 and sum(lst for _, lst in v) == 1


def test_schedule_pixel_tiles_cover_output():
    g = _net()
    ops, _ = lower(g)
    arch = ArchConfig(rows=3, cols=4)
    for op in ops:
        plan = schedule(op, arch, batch=2)
        _, oh, ow = op.out_shape
        for co in range(len(plan.cotiles)):
            for b in range(2):
                px = sorted(p for it in plan.items if it.co == co and it.b == b and it.last
                            for p in range(it.p0, it.p0 + it.npix))
                assert px == list(range(oh * ow))


# ---------------------------------------------------------------- memory

def test_weight_block_layout_matches_compute_order():
    g = random_layer_graph(np.random.default_rng(11), "group")
    ops, _ = lower(g)
    op = ops[-1]
    C = 4
    plan = schedule(op, ArchConfig(rows=2, cols=C))
    wd = dense_weight(op, C)
    for (co, k), blk in weight_blocks(op, plan, C).items():
        ch = plan.cotiles[co].chunks[k]
        assert blk.shape == (ch.lines * C, C)
        # entry (line l, byte b): line l walks (kh, kw, cb) like LOAD_A
        ncb = ch.cb1 - ch.cb0
        for l in range(ch.lines):
            kh, rest = divmod(l, (ch.kw1 - ch.kw0) * ncb)
            kw, cb = divmod(rest, ncb)
            for b in range(C):
                want = wd[co * C:(co + 1) * C, (ch.cb0 + cb) * C + b, ch.kh0 + kh, ch.kw0 + kw]
                assert (blk[l * C + b] == want).all()


def test_bias_words_byte_planar():
    w = bias_words(np.array([1, -2, 0x12345678], np.int32), 2)
    assert w.shape == (8, 2)
    vals = sum(w.reshape(2, 4, 2)[:, j, :].astype(np.int64) << (8 * j) for j in range(4)).reshape(-1)
    assert list(vals.astype(np.uint32).view(np.int32)) == [1, -2, 0x12345678, 0]


def test_allocation_reuse_keeps_output_and_saves_words():
    g = _net()
    arch = ArchConfig(rows=4, cols=4)
    ops, views = lower(g)
    plans = [schedule(op, arch) for op in ops]
    keep = allocate(ops, plans, views, "input", "fc", arch, 1, reuse=False)
    reuse = allocate(ops, plans, views, "input", "fc", arch, 1, reuse=True)
    assert reuse.words < keep.words
    c = compile_model(g, arch, reuse=True)
    assert c.readable("fc")
    check_model(g, c, random_images(np.random.default_rng(0), g, 1))


# ---------------------------------------------------------------- emit

def test_emit_masks_and_marks():
    g = _net()
    c = compile_model(g, ArchConfig(rows=4, cols=4))
    ops = [isa.decode(w) for w in c.program]
    marks = [f["slot"] for op, f in ops if op.name == "MARK"]
    assert marks == list(range(len(c.layers) + 1))
    assert ops[-1][0].name == "END"
    for op, f in ops:
        if op.name == "LOAD_A":
            assert f["mask"] & 0x03 in (1, 2)
        if op.name == "COMPUTE" and f["nlines"]:
            assert f["mask"] & 0x03 in (1, 2)
        if op.name == "COMPUTE" and f["last"]:
            assert f["mask"] & 0xC0 in (0x40, 0x80)
        if op.name == "STORE":
            assert f["mask"] in (0x40, 0x80)
    for li in c.layers:
        assert f"{li.name} (" in c.listing


def test_multi_output_redrain():
    """Several output formats: one MAC pass, then the requantizer runs again on the same accumulators
    (COMPUTE DEPTHWISE acc=1 last=1, one step times the zero W entry at the top of W)."""
    rng = np.random.default_rng(3)
    nodes = [Node("input", "input", [], {"shape": [2, 4, 4]}, [IMG])]
    nodes.append(conv_node(rng, "c", "input", IMG, 2, 3, outputs=[TensorFormat(5, True), TensorFormat(3, False),
                                                                   TensorFormat(7, True)], w_fl=4))
    g = Graph(nodes, "c").validate()
    c = compile_model(g, ArchConfig(rows=16, cols=4))
    comps = [f for op, f in map(isa.decode, c.program) if op.name == "COMPUTE"]
    redrains = [f for f in comps if f["w_base"] == c.arch.w_depth - 1]
    assert len(redrains) == 2 * 1  # 16 pixels = 1 tile, 1 co-tile, 2 extra formats
    assert all(f["nlines"] == 1 and f["acc"] == 1 and f["last"] == 1 and f["mode"] == Mode.DEPTHWISE
               for f in redrains)
    check_model(g, c, random_images(rng, g, 1))


# ---------------------------------------------------------------- Compiled API

def test_save_load_roundtrip(tmp_path):
    g = _net()
    c = compile_model(g, ArchConfig(rows=4, cols=8), batch=2)
    paths = c.save(tmp_path / "m")
    for name in ("program.bin", "memory.npy", "memory.hex", "symbols.json", "program.s"):
        assert os.path.isfile(tmp_path / "m" / name)
    hexlines = open(paths["memory_hex"]).read().split()
    assert len(hexlines) == c.memory.shape[0]
    w = 5
    assert int(hexlines[w], 16) == int.from_bytes(bytes(c.memory[w]), "little")
    sym = json.load(open(paths["symbols"]))
    assert sym["batch"] == 2 and sym["output"] == "fc"
    d = Compiled.load(tmp_path / "m")
    assert d.program == c.program and np.array_equal(d.memory, c.memory) and d.arch == c.arch
    assert [li.name for li in d.layers] == [li.name for li in c.layers]
    imgs = random_images(np.random.default_rng(1), g, 2)
    check_model(g, d, imgs)


def test_write_inputs_and_read_tensor_layout():
    g = _net()
    c = compile_model(g, ArchConfig(rows=2, cols=2), batch=2, pack_input=False)
    imgs = random_images(np.random.default_rng(2), g, 2)
    mem = c.memory.copy()
    c.write_inputs(mem, imgs)
    for b in range(2):
        assert np.array_equal(c.read_tensor(mem, "input", b), imgs[b])
    buf = c.symbols["buffers"]["input"]
    # channel 2 of pixel (1, 3) of image 1 = byte 0 of word base + (1*W + 3)*CB + 1
    h, w = imgs.shape[2:]
    word = buf["addr"] + buf["words"] + (1 * w + 3) * 2 + 1
    assert mem[word, 0] == imgs[1, 2, 1, 3] and mem[word, 1] == 0  # channel 3 is padding
    with pytest.raises(CompileError):
        c.write_inputs(mem, imgs[:, :2])


def test_input_packing_im2col():
    """A narrow stem reads the host-written im2col matrix: fewer A lines, same results."""
    from f8hw.compiler.lower import im2col_image

    g = _net()
    arch = ArchConfig(rows=2, cols=2)
    c = compile_model(g, arch, batch=2, pack_input=True)
    pk = c.symbols["input_packing"]
    assert pk is not None and pk["layer"] == c.layers[0].name
    plain = compile_model(g, arch, batch=2, pack_input=False)
    assert plain.symbols["input_packing"] is None
    assert not c.readable(c.input_ref) and plain.readable(plain.input_ref)
    imgs = random_images(np.random.default_rng(3), g, 2)
    check_model(g, c, imgs)
    # the packed word layout: pixel (oh, ow) holds window bytes in (kh, kw, c) order
    mem = c.memory.copy()
    c.write_inputs(mem, imgs)
    buf = c.symbols["buffers"][c.input_ref]
    kp, oh, ow = buf["shape"]
    assert kp == pk["packed_channels"] == pk["kernel"][0] * pk["kernel"][1] * pk["in_shape"][0]
    col = im2col_image(imgs[1], pk)
    cb = -(-kp // 2)
    word = buf["addr"] + buf["words"] + (1 * ow + 0) * cb
    assert mem[word, 0] == col[0, 1, 0] and mem[word, 1] == col[1, 1, 0]
    with pytest.raises(CompileError):
        c.read_tensor(mem, c.input_ref)


def _one_conv(cin, cout, hw, kernel, padding, seed=0):
    rng = np.random.default_rng(seed)
    nodes = [Node("input", "input", [], {"shape": [cin, hw, hw]}, [IMG]),
             conv_node(rng, "conv", "input", IMG, cin, cout, kernel, (1, 1), padding)]
    return Graph(nodes, "conv").validate()


def test_a_stationary_k_split():
    """K-split whose whole window fits an A half: one A load per pixel tile, reused by every co-tile."""
    g = _one_conv(8, 8, 6, (3, 3), (1, 1))
    arch = ArchConfig(rows=4, cols=4, a_depth=64, w_depth=64)
    ops, _ = lower(g)
    plan = schedule(ops[0], arch)
    assert plan.n_chunks == 3 and all(it.awin is not None for it in plan.items)
    assert len({it.akey for it in plan.items}) == plan.n_pixel_tiles   # A loaded once per pixel tile
    assert [it.aoff for it in plan.items[:3]] == [0, 6, 12]
    # snake order: the second pixel tile starts with the last (co-tile, chunk) of the first, reversed
    n1 = 3 * len(plan.cotiles)
    assert [(it.co, it.k) for it in plan.items[n1:n1 + 3]] == [(plan.items[n1 - 1].co, 2), (plan.items[n1 - 1].co, 1),
                                                              (plan.items[n1 - 1].co, 0)]
    assert plan.items[n1].first and plan.items[n1 + 2].last and not plan.items[n1 + 2].first
    c = compile_model(g, arch, pack_input=False)
    # one LOAD_A piece per chunk and pixel tile; the reused chunks at a snake turn are not reloaded
    assert c.layers[0].tiles["a_loads"] == 3 * plan.n_pixel_tiles
    ops_ = [isa.decode(w) for w in c.program]
    n_w = sum(1 for op, f in ops_ if op.name == "LOAD" and f["target"] == 0 and f["count"] > 1)
    assert n_w == len(plan.items) - 2 * (plan.n_pixel_tiles - 1)
    check_model(g, c, random_images(np.random.default_rng(1), g, 1))


def test_a_groups():
    """One co-tile per W half: several pixel tiles share an A half, each A group reused by every co-tile."""
    g = _one_conv(16, 8, 8, (1, 1), (0, 0))
    arch = ArchConfig(rows=4, cols=4, a_depth=64, w_depth=32)
    ops, _ = lower(g)
    plan = schedule(ops[0], arch)
    keys = [it.akey for it in plan.items]
    assert keys[0][0] == "ag" and len(set(keys)) == 2   # 16 pixel tiles, 8 per A half (4 lines each)
    assert sorted({it.aoff for it in plan.items}) == [4 * k for k in range(8)]
    c = compile_model(g, arch, batch=2)
    check_model(g, c, random_images(np.random.default_rng(2), g, 2))


def test_compile_cli(tmp_path, capsys):
    from f8hw.cli import main
    from f8hw.modelfile import save_model

    g = _net()
    save_model(g, tmp_path / "m.pt")
    assert main(["compile", str(tmp_path / "m.pt"), "--array", "4x8", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "instructions" in out and "conv1" in out
    d = Compiled.load(tmp_path / "out")
    assert d.arch.rows == 4 and d.arch.cols == 8
    assert main(["compile", str(tmp_path / "nope.pt")]) == 3


# ---------------------------------------------------------------- cycles

def test_cycles_at_least_ideal():
    g = _net()
    for arch in (ArchConfig(rows=4, cols=4), ArchConfig(rows=8, cols=2)):
        c = compile_model(g, arch)
        res = check_model(g, c, random_images(np.random.default_rng(0), g, 1))
        macs = sum(li.macs for li in c.layers)
        assert res["cycles"] >= macs / (arch.rows * arch.cols)
        assert res["busy"] * arch.rows * arch.cols >= macs
        marks = res["marks"]
        per_layer = [marks[i + 1] - marks[i] for i in range(len(c.layers))]
        assert all(p > 0 for p in per_layer)


def test_hand_computed_cycles():
    """A 1x1 conv (1 -> 2 channels) on a 1x2 image, 2x2 array: 48 cycles, by hand.

    Timing rules (docs/architecture.md, f8hw/arch.py): first issue at cycle 2 (FIRST_ISSUE),
    at most one instruction per cycle, in order; LOAD_LATENCY = STORE_LATENCY
    = 2, REQUANT_LATENCY = 4, array_latency = 3.  The tile has one A line, so
    the drain is a separate one-step COMPUTE (times the zero W entry):

        #0  LOAD W zero entry (1 word)  t=2    load_end = 2 + 1 + 2 = 5
        #1  MARK 0                      t=3
        #2  SET A_SIGNED                t=4
        #3  LOAD B (4 words, mask 0xC0) t=max(5, load_end 5) = 5, load_end = 5 + 4 + 2 = 11
        #4..#16 13 x SET (LOAD_A registers)          t=6..18
        #17 LOAD_A (2 px x 1 line)      t=max(19, 11) = 19, load_end = 19 + 2 + 2 = 23
        #18 LOAD W (2 entries)          t=max(20, 23) = 23, load_end = 23 + 2 + 2 = 27
        #19 COMPUTE DENSE 1 line, acc=0 last=0 (mask A0|W0 = 0x05)
                                        t=27 (the W load holds bit 2 until 27); steps = 1 * C = 2,
                                        mac_end = 29
        #20..#24 5 x SET (requantizer)  t=28..32
        #25 COMPUTE DEPTHWISE 1 step x zero entry, acc=1 last=1 (mask A0|O0 = 0x41)
                                        t=max(33, mac_end 29) = 33 (capture rule: 33 + 1 + 3 >= -inf);
                                        mac_end = 34, capture = 34 + 3 = 37, drain_end = 37 + R + 4 = 43
        #26 STORE 2 lines (mask O0)     waits for the drain: t=43, store_end = 43 + 2 + 2 = 47
        #27 MARK 1                      t=44
        #28 END                         t=max(45, store_end 47) = 47  -> cycles = 48, busy = 2 + 1 = 3
    """
    rng = np.random.default_rng(0)
    nodes = [Node("input", "input", [], {"shape": [1, 1, 2]}, [IMG]),
             conv_node(rng, "c", "input", IMG, 1, 2, (1, 1), (1, 1), (0, 0), w_fl=4,
                       outputs=[TensorFormat(4, False)])]
    g = Graph(nodes, "c").validate()
    c = compile_model(g, ArchConfig(rows=2, cols=2))
    names = [isa.decode(w)[0].name for w in c.program]
    assert names == ["LOAD", "MARK", "SET", "LOAD"] + ["SET"] * 13 + ["LOAD_A", "LOAD", "COMPUTE"] + ["SET"] * 5 + \
        ["COMPUTE", "STORE", "MARK", "END"]
    res = check_model(g, c, random_images(np.random.default_rng(0), g, 1))
    assert res["cycles"] == 48
    assert res["marks"] == {0: 3, 1: 44}
    assert res["busy"] == 3


def test_utilization_regression_guard():
    """Three 3x3 convs (16->32->32->32 + residual) on a 16x16 map, 16x16 array: double buffering,
    weight residency and next-layer prefetch keep the array >= 90 % busy on the 32-channel layers
    (measured 97.7 % / 96.2 %, 93 % overall incl. the 16-channel first layer and pipeline fill)."""
    rng = np.random.default_rng(0)
    x = TensorFormat(4, False)
    nodes = [Node("input", "input", [], {"shape": [16, 16, 16]}, [IMG]),
             conv_node(rng, "c0", "input", IMG, 16, 32, w_fl=6, outputs=[x]),
             conv_node(rng, "c1", "c0", x, 32, 32, w_fl=6, outputs=[x]),
             conv_node(rng, "c2", "c1", x, 32, 32, w_fl=6, skip="c0", skip_fmt=x, outputs=[x])]
    g = Graph(nodes, "c2").validate()
    c = compile_model(g, ArchConfig())
    res = check_model(g, c, random_images(rng, g, 1))
    util = [li.macs / 256 / (res["marks"][i + 1] - res["marks"][i]) for i, li in enumerate(c.layers)]
    assert util[1] >= 0.95 and util[2] >= 0.93
    assert sum(li.macs for li in c.layers) / 256 / res["cycles"] >= 0.90


@pytest.mark.parametrize("rows,cols,cout", [(4, 16, 8), (16, 16, 20), (2, 8, 5)])
def test_narrow_stem_uses_tap_gather(rows, cols, cout):
    """A 7x7/2 stem on a 3-channel input: the accelerator packs C // 3 taps per A line (LOAD_A with
    A_GATHER = 3) by default, ceil(49 / P) lines instead of 49, bit-exact vs golden; the raw image
    is still what the host writes (the input stays readable); gather=False gives the same results."""
    rng = np.random.default_rng(cols + cout)
    nodes = [Node("input", "input", [], {"shape": [3, 11, 10]}, [IMG]),
             conv_node(rng, "stem", "input", IMG, 3, cout, (7, 7), (2, 2), (3, 3))]
    g = Graph(nodes, "stem").validate()
    arch = ArchConfig(rows=rows, cols=cols)
    c = compile_model(g, arch, batch=2)
    assert c.symbols["input_gather"] == ["stem"] and c.symbols["input_packing"] is None
    assert c.readable(c.input_ref)
    P = cols // 3
    lines = -(-49 // P)
    ops = [isa.decode(w) for w in c.program]
    assert any(op.name == "SET" and f["reg"] == int(isa.Reg.A_GATHER) and f["value"] == 3 for op, f in ops)
    dense = [f for op, f in ops if op.name == "COMPUTE" and f["mode"] == int(Mode.DENSE)]
    assert dense and sum(f["nlines"] for f in dense) == lines * len(dense) // 2   # (lines-1) + 1 split
    imgs = random_images(np.random.default_rng(5), g, 2)
    res = check_model(g, c, imgs)
    off = compile_model(g, arch, batch=2, gather=False)
    assert off.symbols["input_gather"] == []
    res_off = check_model(g, off, imgs)
    assert res["busy"] < res_off["busy"]
    for b in range(2):
        assert np.array_equal(c.read_tensor(res["memory"], "stem", b), off.read_tensor(res_off["memory"], "stem", b))


def test_tap_gather_weight_layout():
    """memory.gather_weight: step k = tap (k // C)*P + (k % C) // Cin, channel (k % C) % Cin."""
    from f8hw.compiler.memory import gather_weight

    rng = np.random.default_rng(0)
    nodes = [Node("input", "input", [], {"shape": [3, 6, 6]}, [IMG]),
             conv_node(rng, "stem", "input", IMG, 3, 5, (3, 3), (1, 1), (1, 1))]
    g = Graph(nodes, "stem").validate()
    ops, _ = lower(g)
    op = ops[0]
    op.gather = 3
    C, P = 8, 2
    blk = gather_weight(op, 0, 5, C)
    assert blk.shape == (40, 8)
    w = np.asarray(op.weight)
    for k in range(40):
        t, ci = (k // C) * P + (k % C) // 3, (k % C) % 3
        if k % C < 6 and t < 9:
            assert np.array_equal(blk[k, :5], w[:, ci, t // 3, t % 3]) and not blk[k, 5:].any()
        else:
            assert not blk[k].any()
    # a K-chunk of kernel rows 1..2: taps counted from the chunk's first row
    blk = gather_weight(op, 0, 3, C, 1, 3)
    for k in range(24):
        t, ci = (k // C) * P + (k % C) // 3, (k % C) % 3
        if k % C < 6 and t < 6:
            assert np.array_equal(blk[k, :5], w[:, ci, 1 + t // 3, t % 3])
        else:
            assert not blk[k].any()


def test_tap_gather_narrow_hidden_layer_k_split():
    """A linear head over a narrow map (8 channels on 16 columns) gathers two taps per line even though it
    does not read the graph input, and its K-chunks are whole kernel rows (its weights exceed a W half)."""
    rng = np.random.default_rng(3)
    x = TensorFormat(4, True)
    nodes = [Node("input", "input", [], {"shape": [5, 12, 12]}, [IMG]),
             conv_node(rng, "pre", "input", IMG, 5, 8, (1, 1), (1, 1), (0, 0), outputs=[x]),
             Node("flat", "flatten", ["pre"], {}, [x]),
             Node("fc", "linear", ["flat"], dict(in_features=8 * 144, out_features=20, w_fl=4),
                  [TensorFormat(8, True, 32)], random_weight(rng, (20, 8 * 144)), random_bias(rng, 20, 8))]
    g = Graph(nodes, "fc").validate()
    arch = ArchConfig(w_depth=1024)
    c = compile_model(g, arch)
    assert c.symbols["gather"] == ["fc"] and c.symbols["input_gather"] == []   # pre is 1x1: nothing to pack
    assert c.layers[1].tiles["k_chunks"] > 1
    fc_lines, layer = 0, None
    for op, f in (isa.decode(w) for w in c.program):
        if op.name == "MARK":
            layer = f["slot"]
        elif op.name == "COMPUTE" and layer == 1:
            fc_lines += f["nlines"]
    assert fc_lines == 2 * 12 * -(-12 // 2)   # 2 co-tiles x 12 kernel rows x ceil(12 taps / 2) lines
    check_model(g, c, random_images(rng, g, 1))


@pytest.mark.parametrize("rows,cols,hw,k,s,c", [(16, 16, 20, 3, 1, 24), (16, 16, 21, 3, 2, 16), (4, 8, 9, 3, 1, 12),
                                                (4, 4, 11, 5, 2, 6), (8, 16, 7, 3, 1, 40)])
def test_depthwise_uses_window_reuse(rows, cols, hw, k, s, c):
    """Depthwise layers use LOAD_A window reuse (A_DIAG = 1) by default: every LOAD_A of the layer has
    its npix pixels inside one output row, bit-exact vs golden (with a dense layer before and after, and
    batch 2), fewer cycles than diag=False, which gives the same results."""
    rng = np.random.default_rng(hw * 10 + k + s)
    x = TensorFormat(4, False)
    nodes = [Node("input", "input", [], {"shape": [c, hw, hw]}, [IMG]),
             conv_node(rng, "pw0", "input", IMG, c, c, (1, 1), (1, 1), (0, 0), outputs=[x]),
             conv_node(rng, "dw", "pw0", x, c, c, (k, k), (s, s), (k // 2, k // 2), groups=c, outputs=[x]),
             conv_node(rng, "pw1", "dw", x, c, c, (1, 1), (1, 1), (0, 0), outputs=[x])]
    g = Graph(nodes, "pw1").validate()
    arch = ArchConfig(rows=rows, cols=cols)
    comp = compile_model(g, arch, batch=2)
    ops = [isa.decode(w) for w in comp.program]
    # the dw layer's LOAD_As come after SET A_DIAG 1, and only there
    diag, dw_loads = 0, []
    ow = (hw + 2 * (k // 2) - k) // s + 1
    for op, f in ops:
        if op.name == "SET" and f["reg"] == int(isa.Reg.A_DIAG):
            diag = f["value"]
        if op.name == "LOAD_A" and diag:
            dw_loads.append(f)
            assert f["ow0"] + f["npix"] <= ow
    assert dw_loads and any(f["npix"] > 1 for f in dw_loads)
    imgs = random_images(np.random.default_rng(1), g, 2)
    res = check_model(g, comp, imgs)
    off = compile_model(g, arch, batch=2, diag=False)
    assert not any(op.name == "SET" and f["reg"] == int(isa.Reg.A_DIAG) for op, f in
                   (isa.decode(w) for w in off.program))
    res_off = check_model(g, off, imgs)
    assert res["cycles"] < res_off["cycles"]
    for b in range(2):
        assert np.array_equal(comp.read_tensor(res["memory"], "pw1", b), off.read_tensor(res_off["memory"], "pw1", b))


def test_diag_tiles_only_when_it_wins():
    """schedule.diag_tiles: row tiles are used for a wide map, not for a 1-pixel-wide map (a row tile
    would be a single pixel: R times the tiles) nor for stride > KW or non-depthwise layers."""
    from f8hw.compiler.schedule import diag_tiles

    def dw_op(hw, k, s, w=None):
        rng = np.random.default_rng(0)
        nodes = [Node("input", "input", [], {"shape": [16, hw, w or hw]}, [IMG]),
                 conv_node(rng, "dw", "input", IMG, 16, 16, (k, k), (s, s), (k // 2, k // 2), groups=16)]
        ops, _ = lower(Graph(nodes, "dw").validate())
        return ops[0]

    arch = ArchConfig()
    for op, want in [(dw_op(32, 3, 1), True), (dw_op(16, 3, 2), True), (dw_op(32, 1, 2), False),
                     (dw_op(40, 3, 1, 1), False)]:
        plan = schedule(op, arch)
        assert plan.diag is want and diag_tiles(op, plan.cotiles, arch) is want
        _, oh, ow = op.out_shape
        if want:
            assert all(it.p0 // ow == (it.p0 + it.npix - 1) // ow for it in plan.items)


def _fold_net(hw, seed):
    """1x1 (foldable), 3x3 padded (not), a 1x1 reading a residual operand, a 1x1 stride 2 (foldable on an
    even map only): the layer kinds lower.fold_batch must tell apart."""
    rng = np.random.default_rng(seed)
    x = TensorFormat(4, False)
    n = [Node("input", "input", [], {"shape": [6, hw, hw]}, [IMG]),
         conv_node(rng, "a", "input", IMG, 6, 12, (1, 1), (1, 1), (0, 0), outputs=[x]),
         conv_node(rng, "b", "a", x, 12, 12, (3, 3), (1, 1), (1, 1), outputs=[x]),
         conv_node(rng, "c", "b", x, 12, 12, (1, 1), (1, 1), (0, 0), skip="a", skip_fmt=x, outputs=[x]),
         conv_node(rng, "d", "c", x, 12, 5, (1, 1), (2, 2), (0, 0))]
    return Graph(n, "d").validate()


@pytest.mark.parametrize("hw,batch", [(7, 3), (8, 2), (5, 1)])
def test_batch_fold_tiles_across_images(hw, batch):
    """At batch > 1 the 1x1-row layers tile the batch as one map: pixel tiles cross image boundaries (fewer
    tiles, fewer cycles), every item bit-exact with races checked; 3x3 padded layers and a 1x1 stride 2 on an
    odd map keep per-image tiles; batch 1 is unchanged."""
    g = _fold_net(hw, hw)
    arch = ArchConfig(rows=4, cols=4, a_depth=128, w_depth=128)
    on, off = compile_model(g, arch, batch=batch), compile_model(g, arch, batch=batch, fold=False)
    images = random_images(np.random.default_rng(hw), g, batch)
    r_on, r_off = check_model(g, on, images), check_model(g, off, images)
    per_image = -(-hw * hw // 4)
    for lay_on, lay_off in zip(on.layers, off.layers):
        assert lay_off.tiles["pixel_tiles"] == batch * (per_image if lay_off.name != "d" else -(-((hw + 1) // 2) ** 2 // 4))
        folds = batch > 1 and (lay_on.name in ("a", "c") or (lay_on.name == "d" and hw % 2 == 0))
        want = -(-batch * hw * hw // 4) if lay_on.name != "d" else -(-batch * (hw // 2) ** 2 // 4)
        assert lay_on.tiles["pixel_tiles"] == (want if folds else lay_off.tiles["pixel_tiles"]), lay_on.name
    if batch == 1:
        assert on.program == off.program
    else:   # strictly fewer when an image's pixels are not a multiple of R (the 7x7 case)
        assert r_on["cycles"] < r_off["cycles"] if hw * hw % 4 else r_on["cycles"] <= r_off["cycles"]

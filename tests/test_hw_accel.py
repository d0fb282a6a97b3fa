"""The whole accelerator in Amaranth's simulator: hand-written programs vs the spec's
executable model f8hw.isasim (functional semantics and EXACT cycle counts, error codes),
and vs numpy expectations computed here independently of both."""

from __future__ import annotations

import numpy as np
import pytest

from f8hw import isa, isasim
from f8hw.arch import ArchConfig
from f8hw.hw.harness import run_program

E = isa.encode
Reg = isa.Reg


def small_cfg(rows, cols, **kw):
    base = dict(rows=rows, cols=cols, a_depth=64, w_depth=128, b_depth=4, s_depth=16, o_depth=16,
                mem_words=512, imem_depth=256, mark_depth=8)
    base.update(kw)
    return ArchConfig(**base)


def SET(reg, v):
    return E("SET", reg=int(reg), value=int(v))


def pack_words(arr: np.ndarray, C: int) -> np.ndarray:
    return (np.asarray(arr) & 0xFF).astype(np.uint8).reshape(-1, C)


def check(cfg, prog, mem, expect_done=True):
    """Run on the RTL (Amaranth simulator) and on f8hw.isasim: same error code, or the same
    cycles, busy, stall, MARK stamps and main memory.  Returns (harness result, isasim result)."""
    hw = run_program(cfg, prog, mem)
    memory = np.zeros((cfg.mem_words, cfg.cols), np.uint8) if mem is None else np.asarray(mem).astype(np.uint8)
    try:
        res = isasim.run(prog, memory, cfg)
    except isasim.IsaSimError as e:
        assert hw.error and e.code == hw.error_code, (str(e), hw.error, hw.error_code)
        assert not expect_done, str(e)
        return hw, None
    assert not hw.error, hw.error_code
    assert hw.done
    assert (res.cycles, res.busy, res.stall) == (hw.cycles, hw.busy, hw.stall)
    assert res.marks == hw.marks
    np.testing.assert_array_equal(res.memory[:cfg.mem_words], hw.mem)
    return hw, res


def conv_program(cfg, rng, *, H=5, Wd=5, ncb=2, K=3, stride=2, pad=1, shift=9, a_signed=0, out_signed=0,
                 acc_split=False, marks=True):
    """A dense KxK conv (padding, stride) tiled over R output pixels, double-buffered A and O."""
    R, C = cfg.rows, cfg.cols
    CB = ncb
    Cin = C * ncb
    OH = (H + 2 * pad - K) // stride + 1
    OW = (Wd + 2 * pad - K) // stride + 1
    mem = np.zeros((cfg.mem_words, C), np.int64)
    x = rng.integers(-127 if a_signed else 0, 128 if a_signed else 256, size=(H, Wd, Cin))
    in_base, w_base_m, b_base, out_base = 0, 100, 300, 320
    mem[in_base:in_base + H * Wd * CB] = (x.reshape(H * Wd * CB, C)) & 0xFF
    w = rng.integers(-127, 128, size=(C, Cin, K, K))  # (co, ci, kh, kw)
    nlines = K * K * ncb
    went = np.zeros((nlines * C, C), np.int64)
    for kh in range(K):
        for kw in range(K):
            for cb in range(ncb):
                j = (kh * K + kw) * ncb + cb
                for b in range(C):
                    went[j * C + b] = w[:, cb * C + b, kh, kw]
    mem[w_base_m:w_base_m + nlines * C] = went & 0xFF
    bias = rng.integers(-5000, 5000, size=C)
    for p in range(4):
        mem[b_base + p] = (bias >> (8 * p)) & 0xFF
    half = cfg.a_depth // 2
    prog = [E("MARK", slot=0)] if marks else []
    prog += [
        E("LOAD", mask=4, target=isa.LoadTarget.W, dst=0, count=nlines * C, addr=w_base_m, stride=1),
        E("LOAD", mask=16, target=isa.LoadTarget.B, dst=0, count=4, addr=b_base, stride=1),
        SET(Reg.IN_H, H), SET(Reg.IN_W, Wd), SET(Reg.OUT_W, OW), SET(Reg.KH, K), SET(Reg.KW, K),
        SET(Reg.STRIDE_H, stride), SET(Reg.STRIDE_W, stride), SET(Reg.PAD_W, pad),
        SET(Reg.STEP_KH, Wd * CB), SET(Reg.STEP_KW, CB), SET(Reg.STEP_OW, stride * CB),
        SET(Reg.STEP_WRAP, (stride * Wd - (OW - 1) * stride) * CB), SET(Reg.PAD_VALUE, 0),
        SET(Reg.A_SIGNED, a_signed), SET(Reg.USE_BIAS, 1), SET(Reg.SHIFT, shift), SET(Reg.OUT_SIGNED, out_signed),
    ]
    npix_total = OH * OW
    tiles = [(i, min(R, npix_total - i)) for i in range(0, npix_total, R)]
    for p, (idx, npix) in enumerate(tiles):
        oh, ow = divmod(idx, OW)
        ih0, iw0 = oh * stride - pad, ow * stride - pad
        addr = (in_base + (ih0 * Wd + iw0) * CB) & 0xFFFFFFFF
        ab = (p % 2) * half
        od = (p % 2) * (cfg.o_depth // 2)
        prog.append(E("LOAD_A", mask=1 << (p % 2), dst=ab, npix=npix, ncb=ncb, ih0=ih0, iw0=iw0, ow0=ow, addr=addr))
        cm = (1 << (p % 2)) | 4 | 16 | (64 << (p % 2))
        if acc_split:
            h1 = nlines // 2
            prog.append(E("COMPUTE", mask=cm, mode=isa.Mode.DENSE, acc=0, last=0, a_base=ab, w_base=0, nlines=h1,
                          b_src=0, s_src=0, o_dst=od))
            prog.append(E("COMPUTE", mask=cm, mode=isa.Mode.DENSE, acc=1, last=1, a_base=ab + h1, w_base=h1 * C,
                          nlines=nlines - h1, b_src=0, s_src=0, o_dst=od))
        else:
            prog.append(E("COMPUTE", mask=cm, mode=isa.Mode.DENSE, acc=0, last=1, a_base=ab, w_base=0,
                          nlines=nlines, b_src=0, s_src=0, o_dst=od))
        prog.append(E("STORE", mask=64 << (p % 2), wide=0, src=od, count=npix, addr=out_base + idx, stride=1))
    if marks:
        prog.append(E("MARK", slot=1))
    prog.append(E("END"))
    # numpy expectation (independent of the RTL and of f8hw.isasim)
    xp = np.zeros((H + 2 * pad, Wd + 2 * pad, Cin), np.int64)
    xp[pad:pad + H, pad:pad + Wd] = x
    exp = np.zeros((OH, OW, C), np.int64)
    from f8hw import numerics
    for oh in range(OH):
        for ow in range(OW):
            win = xp[oh * stride:oh * stride + K, ow * stride:ow * stride + K]  # (K, K, Cin)
            acc = np.einsum("hwc,ochw->o", win, w) + bias
            exp[oh, ow] = numerics.saturate(numerics.round_shift(acc, shift), bool(out_signed))
    return prog, mem, (out_base, exp.reshape(-1, C))


@pytest.mark.parametrize("rows,cols", [(2, 2), (4, 4), (3, 2), (1, 4), (4, 1)])
def test_dense_conv(rows, cols):
    cfg = small_cfg(rows, cols)
    rng = np.random.default_rng(rows * 10 + cols)
    prog, mem, (ob, exp) = conv_program(cfg, rng, a_signed=int(rows == 3), out_signed=int(rows == 3))
    hw, ref = check(cfg, prog, mem)
    got = hw.mem[ob:ob + len(exp)].astype(np.int64)
    np.testing.assert_array_equal(got, exp & 0xFF)


def test_dense_conv_accumulate_split():
    cfg = small_cfg(2, 3)
    prog, mem, (ob, exp) = conv_program(cfg, np.random.default_rng(7), H=4, Wd=3, ncb=1, stride=1, shift=7,
                                        acc_split=True)
    hw, _ = check(cfg, prog, mem)
    np.testing.assert_array_equal(hw.mem[ob:ob + len(exp)].astype(np.int64), exp & 0xFF)


def mixed_program(cfg, rng, acc_l=2, skip_l=5, shift=6):
    """Depthwise 3x3 (signed) + residual from S, MAX (register snapshot while in flight),
    raw int32 DENSE with a wide STORE, short back-to-back tiles (drain spacing), MAX with acc=1."""
    R, C = cfg.rows, cfg.cols
    H, Wd = 3, 4
    mem = np.zeros((cfg.mem_words, C), np.int64)
    mem[0:H * Wd] = rng.integers(0, 256, size=(H * Wd, C))
    mem[100:109] = rng.integers(0, 256, size=(9, C))        # weights
    mem[120:124] = rng.integers(0, 256, size=(4, C))        # bias (byte-planar)
    mem[130:130 + R] = rng.integers(0, 256, size=(R, C))    # skip lines
    half_o = cfg.o_depth // 2
    p = [
        E("MARK", slot=0),
        E("LOAD", mask=4, target=isa.LoadTarget.W, dst=0, count=9, addr=100, stride=1),
        E("LOAD", mask=16, target=isa.LoadTarget.B, dst=0, count=4, addr=120, stride=1),
        E("LOAD", mask=16, target=isa.LoadTarget.S, dst=0, count=R, addr=130, stride=1),
        SET(Reg.IN_H, H), SET(Reg.IN_W, Wd), SET(Reg.OUT_W, Wd), SET(Reg.KH, 3), SET(Reg.KW, 3),
        SET(Reg.STRIDE_H, 1), SET(Reg.STRIDE_W, 1), SET(Reg.PAD_W, 1), SET(Reg.STEP_KH, Wd), SET(Reg.STEP_KW, 1),
        SET(Reg.STEP_OW, 1), SET(Reg.STEP_WRAP, 1 + 2), SET(Reg.PAD_VALUE, 0x81),
        E("LOAD_A", mask=1, dst=0, npix=R, ncb=1, ih0=-1, iw0=-1, ow0=0, addr=(-Wd - 1) & 0xFFFFFFFF),
        SET(Reg.A_SIGNED, 1), SET(Reg.USE_BIAS, 1), SET(Reg.USE_SKIP, 1), SET(Reg.SKIP_SIGNED, 1),
        SET(Reg.ACC_LSHIFT, acc_l), SET(Reg.SKIP_LSHIFT, skip_l), SET(Reg.SHIFT, shift), SET(Reg.OUT_SIGNED, 1),
        E("COMPUTE", mask=1 | 4 | 16 | 64, mode=isa.Mode.DEPTHWISE, acc=0, last=1, a_base=0, w_base=0, nlines=9,
          b_src=0, s_src=0, o_dst=0),
        # change registers while the drain of the previous COMPUTE is in flight
        SET(Reg.USE_SKIP, 0), SET(Reg.USE_BIAS, 0), SET(Reg.SHIFT, 0), SET(Reg.OUT_SIGNED, 0), SET(Reg.A_SIGNED, 0),
        E("STORE", mask=64, wide=0, src=0, count=R, addr=200, stride=2),
        E("MARK", slot=1),
        E("COMPUTE", mask=1 | 128, mode=isa.Mode.MAX, acc=0, last=1, a_base=0, w_base=0, nlines=9,
          b_src=0, s_src=0, o_dst=half_o),
        E("STORE", mask=128, wide=0, src=half_o, count=R, addr=201, stride=2),
        SET(Reg.RQ_RAW, 1), SET(Reg.USE_BIAS, 1), SET(Reg.A_SIGNED, 1),
        E("COMPUTE", mask=1 | 4 | 16 | 64, mode=isa.Mode.DENSE, acc=0, last=1, a_base=2, w_base=0,
          nlines=min(2, 9 // C), b_src=0, s_src=0, o_dst=0),
        E("STORE", mask=64, wide=1, src=0, count=R, addr=260, stride=5),
        SET(Reg.RQ_RAW, 0), SET(Reg.USE_BIAS, 0), SET(Reg.SHIFT, -3), SET(Reg.OUT_SIGNED, 1),
        E("MARK", slot=2),
    ]
    # short tiles back to back: the drain-spacing rule decides the issue cycles
    for i in range(3):
        p.append(E("COMPUTE", mask=1 | 4 | (128 if i % 2 else 64), mode=isa.Mode.DEPTHWISE, acc=0, last=1,
                   a_base=i, w_base=i, nlines=1, b_src=0, s_src=0, o_dst=(i % 2) * half_o))
    p += [
        E("COMPUTE", mask=1 | 64, mode=isa.Mode.MAX, acc=0, last=0, a_base=0, w_base=0, nlines=4,
          b_src=0, s_src=0, o_dst=0),
        SET(Reg.SHIFT, 1),
        E("COMPUTE", mask=1 | 64, mode=isa.Mode.MAX, acc=1, last=1, a_base=4, w_base=0, nlines=5,
          b_src=0, s_src=0, o_dst=0),
        E("STORE", mask=64, wide=0, src=0, count=R, addr=300, stride=1),
        E("STORE", mask=128, wide=1, src=half_o, count=2, addr=310, stride=4),
        E("MARK", slot=3),
        E("END"),
    ]
    return p, mem


@pytest.mark.parametrize("rows,cols", [(2, 2), (4, 4), (4, 3), (1, 3), (3, 1)])
def test_mixed_modes(rows, cols):
    cfg = small_cfg(rows, cols)
    prog, mem = mixed_program(cfg, np.random.default_rng(100 + rows * 10 + cols))
    check(cfg, prog, mem)


@pytest.mark.parametrize("shift,acc_l,skip_l", [(15, 0, 15), (-8, 8, 0), (0, 3, 3), (1, 0, 0),
                                                 # only the low 4 bits of the LSHIFTs count; SHIFT is exact
                                                 # for every 32-bit value (the decoder clamps |SHIFT| to 127)
                                                 (2**31 - 1, 19, -1), (-2**31, -13, 35), (200, 16 + 2, 32 + 7),
                                                 (-200, 1, 2), (47, 15, 15), (-128, 0, 0)])
def test_mixed_shift_extremes(shift, acc_l, skip_l):
    cfg = small_cfg(2, 3)
    prog, mem = mixed_program(cfg, np.random.default_rng(5), acc_l=acc_l, skip_l=skip_l, shift=shift)
    check(cfg, prog, mem)


def test_dyadic_mult_one_equals_shift():
    rng = np.random.default_rng(3)
    prog, mem, (ob, exp) = conv_program(small_cfg(2, 2), rng, marks=False)
    a = run_program(small_cfg(2, 2), prog, mem)
    b = run_program(small_cfg(2, 2, requant="dyadic"), prog, mem)
    assert a.cycles == b.cycles and a.done and b.done
    np.testing.assert_array_equal(a.mem, b.mem)
    # RQ_MULT = 3 against f8hw.isasim
    prog3 = prog[:2] + [SET(Reg.RQ_MULT, 3)] + prog[2:]
    check(small_cfg(2, 2, requant="dyadic"), prog3, mem)


@pytest.mark.parametrize("mult,shift", [(3, 10), (-1000, 18), (77777, 24)])
def test_dyadic_residual_rtl_equals_isasim(mult, shift):
    """Dyadic build, RQ_MULT != 1 with the residual add (the depthwise tile of mixed_program, zero
    bias): the RTL multiplies acc + bias by RQ_MULT before the residual alignment, and so must
    f8hw.isasim.  The shifts keep the tile's outputs off the rails, where multiplying after the
    alignment would give different bytes (checked: the two orders differ on these programs)."""
    cfg = small_cfg(2, 3, requant="dyadic")
    prog, mem = mixed_program(cfg, np.random.default_rng(9), acc_l=0, skip_l=10, shift=shift)
    mem[120:124] = 0
    prog = prog[:1] + [SET(Reg.RQ_MULT, mult)] + prog[1:]
    hw, res = check(cfg, prog, mem)
    out = hw.mem[200:200 + 2 * cfg.rows:2].view(np.int8).astype(int)
    assert (np.abs(out) < 127).all(), out


def drain_overlap_program(cfg, rng):
    """Two last-COMPUTEs into different O slots, the first one's STORE behind the second (its drain
    still in flight when the second issues), then a last-COMPUTE after every drain has ended with a
    LOAD that conflicts only with the older drain's bits (it must not wait)."""
    R, C = cfg.rows, cfg.cols
    mem = np.zeros((cfg.mem_words, C), np.int64)
    mem[0:3 * C] = rng.integers(0, 256, size=(3 * C, C))      # W: 3 lines of DENSE steps
    mem[40:40 + 3 * R] = rng.integers(0, 256, size=(3 * R, C))  # A: R pixels x 3 lines
    half_o = cfg.o_depth // 2
    O0, O1, S0 = 64, 128, 16
    prog = [
        E("LOAD", mask=4, target=isa.LoadTarget.W, dst=0, count=3 * C, addr=0, stride=1),
        SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.IN_H, 1), SET(Reg.IN_W, 100), SET(Reg.OUT_W, 100),
        SET(Reg.STRIDE_W, 1), SET(Reg.STEP_OW, 3),
        E("LOAD_A", mask=1, dst=0, npix=R, ncb=3, ih0=0, iw0=0, ow0=0, addr=40),
        SET(Reg.SHIFT, 7), SET(Reg.OUT_SIGNED, 1), SET(Reg.A_SIGNED, 1),
        E("COMPUTE", mask=1 | 4 | O0, mode=isa.Mode.DENSE, acc=0, last=1, a_base=0, w_base=0, nlines=3,
          b_src=0, s_src=0, o_dst=0),
        SET(Reg.SHIFT, 3),
        E("COMPUTE", mask=1 | 4 | O1, mode=isa.Mode.DEPTHWISE, acc=0, last=1, a_base=1, w_base=0, nlines=1,
          b_src=0, s_src=0, o_dst=half_o),
        E("STORE", mask=O0, wide=0, src=0, count=R, addr=200, stride=1),
        E("STORE", mask=O1, wide=0, src=half_o, count=R, addr=220, stride=1),
        E("COMPUTE", mask=1 | 4 | O0 | S0, mode=isa.Mode.DEPTHWISE, acc=0, last=1, a_base=2, w_base=1,
          nlines=1, b_src=0, s_src=0, o_dst=0),
        E("STORE", mask=O0, wide=1, src=0, count=R, addr=240, stride=4),
        E("COMPUTE", mask=1 | O1, mode=isa.Mode.MAX, acc=0, last=1, a_base=0, w_base=0, nlines=3,
          b_src=0, s_src=0, o_dst=half_o),
        E("LOAD", mask=S0, target=isa.LoadTarget.S, dst=0, count=1, addr=0, stride=1),
        E("STORE", mask=O1, wide=0, src=half_o, count=R, addr=300, stride=1),
        E("END"),
    ]
    return prog, mem


@pytest.mark.parametrize("rows,cols", [(4, 2), (2, 2), (1, 3), (6, 2)])
def test_drain_holder_covers_every_drain_in_flight(rows, cols):
    """RTL and f8hw.isasim agree (cycles, memory) on drains that overlap a later last-COMPUTE, and the
    program is race-free: the STORE of the first tile waits for its drain."""
    cfg = small_cfg(rows, cols)
    prog, mem = drain_overlap_program(cfg, np.random.default_rng(rows * 10 + cols))
    hw, res = check(cfg, prog, mem)
    names = [isa.decode(w)[0].name for w in prog]
    i_c0 = names.index("COMPUTE")
    i_c1, i_st0 = i_c0 + 2, i_c0 + 3
    assert names[i_c1] == "COMPUTE" and names[i_st0] == "STORE"
    drain_end0 = res.issue[i_c0] + 3 * cols + 2 + rows + 3
    assert res.issue[i_c1] < drain_end0 <= res.issue[i_st0]   # overlapping drains; the STORE waits for its own
    assert names[-3] == "LOAD" and res.issue[-3] == res.issue[-4] + 1   # the S LOAD does not wait for the MAX drain


ERR_CASES = {
    "opcode0": ([0], 1),
    "opcode15": ([15], 1),
    "load_target": ([E("LOAD", mask=1, target=3, dst=0, count=1, addr=0, stride=1)], 1),
    "compute_mode": ([E("COMPUTE", mask=1, mode=3, nlines=1)], 1),
    "load_w_range": ([E("LOAD", mask=1, target=0, dst=120, count=9, addr=0, stride=1)], 2),
    "load_b_range": ([E("LOAD", mask=1, target=1, dst=14, count=3, addr=0, stride=1)], 2),
    "loada_npix0": ([E("LOAD_A", mask=1, dst=0, npix=0, ncb=1)], 2),
    "loada_npix_big": ([E("LOAD_A", mask=1, dst=0, npix=5, ncb=1)], 2),
    "loada_lines": ([SET(Reg.KH, 3), SET(Reg.KW, 3), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9),
                     E("LOAD_A", mask=1, dst=60, npix=1, ncb=1, ih0=0, iw0=0, addr=0)], 2),
    "store_range": ([E("STORE", mask=1, src=10, count=7, addr=0, stride=1)], 2),
    "compute_o": ([E("COMPUTE", mask=1, mode=0, last=1, nlines=1, o_dst=13)], 2),
    "compute_a": ([E("COMPUTE", mask=1, mode=1, last=0, nlines=10, a_base=60)], 2),
    "compute_w": ([E("COMPUTE", mask=1, mode=0, last=0, nlines=40, a_base=0, w_base=0)], 2),
    "compute_zero": ([E("COMPUTE", mask=1, mode=0, last=0, nlines=0)], 2),
    "mark_range": ([E("MARK", slot=8)], 2),
    "load_mem": ([E("LOAD", mask=1, target=0, dst=0, count=4, addr=510, stride=1)], 3),
    "load_mem_stride": ([E("LOAD", mask=1, target=0, dst=0, count=4, addr=0, stride=-1)], 3),
    "loada_mem": ([SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9),
                   E("LOAD_A", mask=1, dst=0, npix=1, ncb=1, ih0=0, iw0=0, addr=512)], 3),
    "store_mem": ([E("STORE", mask=1, wide=1, src=0, count=1, addr=509, stride=1)], 3),
    "fetch": ([SET(Reg.KH, 1)] * 16, 4),
    "no_end": ([SET(Reg.KH, 1)], 1),
}


@pytest.mark.parametrize("name", sorted(ERR_CASES))
def test_errors(name):
    prog, code = ERR_CASES[name]
    cfg = small_cfg(4, 4, imem_depth=16)
    hw, ref = check(cfg, prog + [E("END")] if name not in ("fetch", "no_end") else prog, None, expect_done=False)
    assert hw.error and not hw.done and hw.error_code == code


@pytest.mark.parametrize("sets, code", [
    ([(Reg.USE_SKIP, 1)], 2),                                   # skip lines s_src.. past s_depth
    ([(Reg.USE_SKIP, 1), (Reg.USE_SKIP, 0)], 0),                # a later SET of 0 clears the check
    ([(Reg.USE_SKIP, 2), (Reg.RQ_RAW, 1)], 0),                  # raw drains read no skip
    ([(Reg.RQ_RAW, 1), (Reg.RQ_RAW, 0), (Reg.USE_SKIP, -1)], 2),
    ([(Reg.USE_BIAS, 1)], 2),                                   # bias entry b_src past b_depth
    ([(Reg.USE_BIAS, 1), (Reg.USE_BIAS, 0)], 0),
])
def test_set_dependent_compute_checks_follow_the_latest_set(sets, code):
    """The front end decides these COMPUTE checks from one-bit flags written with each SET."""
    cfg = small_cfg(4, 4)
    prog = [SET(r, v) for r, v in sets] + [
        E("COMPUTE", mask=0b1000001, mode=1, last=1, nlines=1, s_src=14, b_src=4), E("END")]
    hw, _ = check(cfg, prog, None, expect_done=code == 0)
    assert (hw.error_code if hw.error else 0) == code and hw.done == (code == 0)


def gather_conv_program(cfg, rng, *, G, H=5, Wd=4, K=3, stride=1, pad=1, shift=7, tile_split=False):
    """A dense KxK conv over a G-channel input stored one pixel per word (bytes >= G hold garbage that
    the gather must drop), with LOAD_A tap gather (A_GATHER = G): P = C // G taps per A line and the
    weights laid out as the compiler does (step k: tap (k//C)*P + (k%C)//G, channel (k%C) % G)."""
    R, C = cfg.rows, cfg.cols
    P = C // G
    OH = (H + 2 * pad - K) // stride + 1
    OW = (Wd + 2 * pad - K) // stride + 1
    taps = K * K
    nlines = -(-taps // P)
    mem = np.zeros((cfg.mem_words, C), np.int64)
    x = rng.integers(0, 256, size=(H, Wd, C))          # bytes >= G: garbage
    in_base, w_base_m, b_base, out_base = 0, 60, 200, 220
    mem[in_base:in_base + H * Wd] = x.reshape(H * Wd, C)
    w = rng.integers(-127, 128, size=(C, G, K, K))
    went = np.zeros((nlines * C, C), np.int64)
    for k in range(nlines * C):
        t, ci = (k // C) * P + (k % C) // G, (k % C) % G
        if (k % C) < P * G and t < taps:
            went[k] = w[:, ci, t // K, t % K]
    mem[w_base_m:w_base_m + nlines * C] = went & 0xFF
    bias = rng.integers(-3000, 3000, size=C)
    for p in range(4):
        mem[b_base + p] = (bias >> (8 * p)) & 0xFF
    half = cfg.a_depth // 2
    prog = [E("MARK", slot=0),
            E("LOAD", mask=4, target=isa.LoadTarget.W, dst=0, count=nlines * C, addr=w_base_m, stride=1),
            E("LOAD", mask=16, target=isa.LoadTarget.B, dst=0, count=4, addr=b_base, stride=1),
            SET(Reg.IN_H, H), SET(Reg.IN_W, Wd), SET(Reg.OUT_W, OW), SET(Reg.KH, K), SET(Reg.KW, K),
            SET(Reg.STRIDE_H, stride), SET(Reg.STRIDE_W, stride), SET(Reg.PAD_W, pad),
            SET(Reg.STEP_KH, Wd), SET(Reg.STEP_KW, 1), SET(Reg.STEP_OW, stride),
            SET(Reg.STEP_WRAP, stride * Wd - (OW - 1) * stride), SET(Reg.PAD_VALUE, 0x7A),
            SET(Reg.A_GATHER, G), SET(Reg.USE_BIAS, 1), SET(Reg.SHIFT, shift)]
    npix_total = OH * OW
    tiles = [(i, min(R, npix_total - i)) for i in range(0, npix_total, R)]
    for p, (idx, npix) in enumerate(tiles):
        oh, ow = divmod(idx, OW)
        ih0, iw0 = oh * stride - pad, ow * stride - pad
        addr = (in_base + ih0 * Wd + iw0) & 0xFFFFFFFF
        ab = (p % 2) * half
        od = (p % 2) * (cfg.o_depth // 2)
        prog.append(E("LOAD_A", mask=1 << (p % 2), dst=ab, npix=npix, ncb=1, ih0=ih0, iw0=iw0, ow0=ow, addr=addr))
        cm = (1 << (p % 2)) | 4 | 16 | (64 << (p % 2))
        prog.append(E("COMPUTE", mask=cm, mode=isa.Mode.DENSE, acc=0, last=1, a_base=ab, w_base=0,
                      nlines=nlines, b_src=0, s_src=0, o_dst=od))
        prog.append(E("STORE", mask=64 << (p % 2), wide=0, src=od, count=npix, addr=out_base + idx, stride=1))
    prog += [E("MARK", slot=1), E("END")]
    # numpy expectation: the padded positions hold PAD_VALUE bytes (0x7A) in the A lines
    xp = np.full((H + 2 * pad, Wd + 2 * pad, G), 0x7A, np.int64)
    xp[pad:pad + H, pad:pad + Wd] = x[:, :, :G]
    from f8hw import numerics
    exp = np.zeros((OH, OW, C), np.int64)
    for oh in range(OH):
        for ow in range(OW):
            win = xp[oh * stride:oh * stride + K, ow * stride:ow * stride + K]
            acc = np.einsum("hwc,ochw->o", win, w) + bias
            exp[oh, ow] = numerics.saturate(numerics.round_shift(acc, shift), False)
    return prog, mem, (out_base, exp.reshape(-1, C))


@pytest.mark.parametrize("rows,cols,G,K,stride", [(4, 8, 3, 3, 1), (3, 4, 1, 3, 2), (2, 5, 2, 2, 1),
                                                  (4, 4, 4, 3, 1), (2, 8, 5, 3, 2)])
def test_load_a_tap_gather_rtl_equals_isasim(rows, cols, G, K, stride):
    """LOAD_A tap gather on the RTL vs isasim (bit and cycle exact) and vs numpy."""
    cfg = small_cfg(rows, cols)
    rng = np.random.default_rng(rows * 100 + cols * 10 + G)
    prog, mem, (ob, exp) = gather_conv_program(cfg, rng, G=G, K=K, stride=stride)
    hw, ref = check(cfg, prog, mem)
    np.testing.assert_array_equal(hw.mem[ob:ob + len(exp)].astype(np.int64), exp & 0xFF)
    np.testing.assert_array_equal(ref.memory[ob:ob + len(exp)].astype(np.int64), exp & 0xFF)


@pytest.mark.parametrize("dst", [60, 61, 64])
def test_load_a_tap_gather_line_error(dst):
    """A gathered line past a_depth: error 2 on the RTL exactly as isasim says (or no error)."""
    cfg = small_cfg(2, 8)
    prog = [SET(Reg.IN_H, 3), SET(Reg.IN_W, 3), SET(Reg.OUT_W, 1), SET(Reg.KH, 3), SET(Reg.KW, 3),
            SET(Reg.STEP_KH, 3), SET(Reg.STEP_KW, 1), SET(Reg.A_GATHER, 2),
            E("LOAD_A", mask=1, dst=dst, npix=2, ncb=1, ih0=0, iw0=0, ow0=0, addr=0), E("END")]
    check(cfg, prog, None, expect_done=dst <= 61)


def diag_dw_program(cfg, rng, *, H=4, Wd=7, ncb=2, K=3, stride=1, pad=1, shift=6):
    """A depthwise KxK conv (ncb channel blocks of C, one word per (pixel, block)) tiled as the compiler
    does with LOAD_A window reuse (A_DIAG = 1): a tile is <= R pixels of ONE output row, one LOAD_A per
    channel block (ncb = 1 per instruction), DEPTHWISE COMPUTE over K*K lines; double-buffered."""
    R, C = cfg.rows, cfg.cols
    OH = (H + 2 * pad - K) // stride + 1
    OW = (Wd + 2 * pad - K) // stride + 1
    mem = np.zeros((cfg.mem_words, C), np.int64)
    x = rng.integers(0, 256, size=(H, Wd, ncb, C))
    in_base, w_base_m, b_base, out_base = 0, 150, 200, 260
    mem[in_base:in_base + H * Wd * ncb] = x.reshape(-1, C)
    w = rng.integers(-127, 128, size=(ncb, K, K, C))
    mem[w_base_m:w_base_m + ncb * K * K] = w.reshape(-1, C) & 0xFF
    bias = rng.integers(-3000, 3000, size=(ncb, C))
    for cb in range(ncb):
        for p in range(4):
            mem[b_base + 4 * cb + p] = (bias[cb] >> (8 * p)) & 0xFF
    half = cfg.a_depth // 2
    prog = [E("MARK", slot=0),
            E("LOAD", mask=4, target=isa.LoadTarget.W, dst=0, count=ncb * K * K, addr=w_base_m, stride=1),
            E("LOAD", mask=16, target=isa.LoadTarget.B, dst=0, count=4 * ncb, addr=b_base, stride=1),
            SET(Reg.IN_H, H), SET(Reg.IN_W, Wd), SET(Reg.OUT_W, OW), SET(Reg.KH, K), SET(Reg.KW, K),
            SET(Reg.STRIDE_H, stride), SET(Reg.STRIDE_W, stride), SET(Reg.PAD_W, pad),
            SET(Reg.STEP_KH, Wd * ncb), SET(Reg.STEP_KW, ncb), SET(Reg.STEP_OW, stride * ncb),
            SET(Reg.STEP_WRAP, 0), SET(Reg.PAD_VALUE, 0), SET(Reg.A_DIAG, 1),
            SET(Reg.USE_BIAS, 1), SET(Reg.SHIFT, shift)]
    p = 0
    for oh in range(OH):
        for ow in range(0, OW, R):
            npix = min(R, OW - ow)
            for cb in range(ncb):
                ih0, iw0 = oh * stride - pad, ow * stride - pad
                addr = (in_base + (ih0 * Wd + iw0) * ncb + cb) & 0xFFFFFFFF
                ab = (p % 2) * half
                od = (p % 2) * (cfg.o_depth // 2)
                prog.append(E("LOAD_A", mask=1 << (p % 2), dst=ab, npix=npix, ncb=1, ih0=ih0, iw0=iw0, ow0=ow,
                              addr=addr))
                cm = (1 << (p % 2)) | 4 | 16 | (64 << (p % 2))
                prog.append(E("COMPUTE", mask=cm, mode=isa.Mode.DEPTHWISE, acc=0, last=1, a_base=ab,
                              w_base=cb * K * K, nlines=K * K, b_src=cb, s_src=0, o_dst=od))
                prog.append(E("STORE", mask=64 << (p % 2), wide=0, src=od, count=npix,
                              addr=out_base + ((oh * OW + ow) * ncb + cb), stride=ncb))
                p += 1
    prog += [E("MARK", slot=1), E("END")]
    from f8hw import numerics
    xp = np.zeros((H + 2 * pad, Wd + 2 * pad, ncb, C), np.int64)
    xp[pad:pad + H, pad:pad + Wd] = x
    exp = np.zeros((OH, OW, ncb, C), np.int64)
    for oh in range(OH):
        for ow in range(OW):
            win = xp[oh * stride:oh * stride + K, ow * stride:ow * stride + K]   # K, K, ncb, C
            acc = np.einsum("hwbc,bhwc->bc", win, w) + bias
            exp[oh, ow] = numerics.saturate(numerics.round_shift(acc, shift), False)
    return prog, mem, (out_base, exp.reshape(-1, C))


@pytest.mark.parametrize("rows,cols,K,stride,Wd", [(4, 4, 3, 1, 7), (3, 4, 3, 2, 8), (4, 2, 3, 2, 5),
                                                   (2, 3, 2, 1, 5), (4, 4, 1, 1, 6), (5, 4, 5, 2, 9)])
def test_load_a_diag_depthwise_rtl_equals_isasim(rows, cols, K, stride, Wd):
    """LOAD_A window reuse (A_DIAG) on the RTL vs isasim (bit and cycle exact) and vs numpy, on a
    depthwise conv whose tiles are partial output rows (padding at both edges)."""
    cfg = small_cfg(rows, cols, mem_words=1024)
    rng = np.random.default_rng(rows * 100 + cols * 10 + K + stride)
    prog, mem, (ob, exp) = diag_dw_program(cfg, rng, K=K, stride=stride, Wd=Wd, pad=K // 2)
    hw, ref = check(cfg, prog, mem)
    np.testing.assert_array_equal(hw.mem[ob:ob + len(exp)].astype(np.int64), exp & 0xFF)
    np.testing.assert_array_equal(ref.memory[ob:ob + len(exp)].astype(np.int64), exp & 0xFF)


@pytest.mark.parametrize("dst", [54, 55, 63])
def test_load_a_diag_line_error(dst):
    """A_DIAG line past a_depth: error 2 on the RTL exactly as isasim says (or no error)."""
    cfg = small_cfg(3, 4)
    prog = [SET(Reg.IN_H, 3), SET(Reg.IN_W, 5), SET(Reg.OUT_W, 1), SET(Reg.KH, 3), SET(Reg.KW, 3),
            SET(Reg.STRIDE_W, 1), SET(Reg.STEP_KH, 5), SET(Reg.STEP_KW, 1), SET(Reg.A_DIAG, 1),
            E("LOAD_A", mask=1, dst=dst, npix=3, ncb=1, ih0=0, iw0=0, ow0=0, addr=0), E("END")]
    check(cfg, prog, None, expect_done=dst <= 55)

"""ISA simulator: every instruction on hand-written programs, with expectations computed here
from numpy + f8hw.numerics (never from the simulator), exact timing, hazards, races, errors."""

from __future__ import annotations

import numpy as np
import pytest

from f8hw import isa, isasim, numerics
from f8hw.arch import FIRST_ISSUE, LOAD_LATENCY, REQUANT_LATENCY, STORE_LATENCY, ArchConfig, array_latency
from f8hw.isasim import IsaSimError

E = isa.encode
Reg = isa.Reg
Mode = isa.Mode
T = isa.LoadTarget


def cfg(rows=4, cols=4, **kw):
    base = dict(rows=rows, cols=cols, a_depth=64, w_depth=128, b_depth=4, s_depth=16, o_depth=16,
                mem_words=512, imem_depth=256, mark_depth=8)
    base.update(kw)
    return ArchConfig(**base)


def SET(reg, v):
    return E("SET", reg=int(reg), value=int(v))


def LOAD(target, dst, count, addr, stride=1, mask=0xFF):
    return E("LOAD", mask=mask, target=int(target), dst=dst, count=count, addr=addr, stride=stride)


def STORE(src, count, addr, stride=1, wide=0, mask=0xFF):
    return E("STORE", mask=mask, wide=wide, src=src, count=count, addr=addr, stride=stride)


def COMPUTE(mode, nlines, a_base=0, w_base=0, acc=0, last=1, b_src=0, s_src=0, o_dst=0, mask=0xFF):
    return E("COMPUTE", mask=mask, mode=int(mode), acc=acc, last=last, a_base=a_base, w_base=w_base,
             nlines=nlines, b_src=b_src, s_src=s_src, o_dst=o_dst)


def LOAD_A(dst, npix, ncb, ih0, iw0, ow0, addr, mask=0xFF):
    return E("LOAD_A", mask=mask, dst=dst, npix=npix, ncb=ncb, ih0=ih0, iw0=iw0, ow0=ow0, addr=addr & 0xFFFFFFFF)


def u8(x):
    return (np.asarray(x, np.int64) & 0xFF).astype(np.uint8)


def run(c, prog, mem=None, **kw):
    if mem is None:
        mem = np.zeros((c.mem_words, c.cols), np.uint8)
    return isasim.run(prog, mem, c, **kw)


def planar(vals: np.ndarray) -> np.ndarray:
    """int32 lanes (C,) -> 4 byte-planar words (4, C)."""
    v = np.asarray(vals, np.int64) & 0xFFFFFFFF
    return np.stack([(v >> (8 * j)) & 0xFF for j in range(4)]).astype(np.uint8)


def from_planar(words: np.ndarray) -> np.ndarray:
    w = np.asarray(words, np.int64)
    v = sum(w[j] << (8 * j) for j in range(4))
    return np.where(v >= 2**31, v - 2**32, v)


# ------------------------------------------------------------------ LOAD / STORE


def test_load_targets_strided_and_planar_bias():
    c = cfg()
    rng = np.random.default_rng(0)
    mem = rng.integers(0, 256, size=(c.mem_words, 4)).astype(np.uint8)
    bias = np.array([-5, 70000, -(2**31), 2**31 - 1])
    mem[200:204] = planar(bias)
    prog = [
        LOAD(T.W, 3, 5, 10, 7),          # W[3..7] = mem[10, 17, ..., 38]
        LOAD(T.S, 1, 3, 100, -2),        # S[1..3] = mem[100, 98, 96]
        LOAD(T.B, 4, 4, 200, 1),         # B entry 1 = bias (byte planes 0..3)
        LOAD(T.B, 9, 1, 50, 1),          # B entry 2, byte plane 1 only
        E("END"),
    ]
    r = run(c, prog, mem)
    st = r.state
    np.testing.assert_array_equal(st["W"][3:8], mem[10:45:7])
    np.testing.assert_array_equal(st["W"][:3], 0)
    np.testing.assert_array_equal(st["S"][1:4], mem[[100, 98, 96]])
    np.testing.assert_array_equal(st["B"][1], bias)
    np.testing.assert_array_equal(st["B"][2], mem[50].astype(np.int64) << 8)
    np.testing.assert_array_equal(r.memory, mem)  # nothing stored


def test_store_narrow_and_wide():
    """O lines come from a RAW COMPUTE (bias only, P = 0 from a zero A/W dense step)."""
    c = cfg()
    bias = np.array([-2, 300, -(2**31), 0x12345678])
    mem = np.zeros((c.mem_words, 4), np.uint8)
    mem[0:4] = planar(bias)
    prog = [
        LOAD(T.B, 0, 4, 0),
        SET(Reg.RQ_RAW, 1), SET(Reg.USE_BIAS, 1),
        COMPUTE(Mode.DENSE, 1, o_dst=2),
        STORE(2, 4, 100, 3, wide=0),         # low byte of each lane, lines 2..5 -> 100, 103, 106, 109
        STORE(3, 2, 300, -10, wide=1),       # 4 byte-planar words per line: 300..303, 290..293
        E("END"),
    ]
    r = run(c, prog, mem)
    for i in range(4):
        np.testing.assert_array_equal(r.memory[100 + 3 * i], u8(bias))
    np.testing.assert_array_equal(from_planar(r.memory[300:304]), bias)
    np.testing.assert_array_equal(from_planar(r.memory[290:294]), bias)
    np.testing.assert_array_equal(r.state["O"][2:6], np.tile(bias, (4, 1)))


def test_set_unknown_register_and_mark():
    c = cfg()
    prog = [E("MARK", slot=3), SET(15, 99), SET(63, -1), SET(Reg.SHIFT, -5), E("MARK", slot=7), E("END")]
    r = run(c, prog)
    assert r.marks == {3: FIRST_ISSUE, 7: FIRST_ISSUE + 4}
    assert r.state["regs"][int(Reg.SHIFT)] == -5 and 15 not in r.state["regs"] and r.state["regs"][int(Reg.RQ_MULT)] == 1
    assert r.cycles == FIRST_ISSUE + 5 + 1 and r.stall == 0 and r.busy == 0


# ------------------------------------------------------------------ LOAD_A


def loada_expect(A, x, *, dst, npix, ncb, ih0, iw0, ow0, KH, KW, SH, SW, PW, OW, pad):
    """Window gather written directly from the spec on an (H, W, ncb, C) image."""
    H, Wd = x.shape[:2]
    A = A.copy()
    ih, iw, ow = ih0, iw0, ow0
    for r in range(npix):
        for kh in range(KH):
            for kw in range(KW):
                for cb in range(ncb):
                    j = (kh * KW + kw) * ncb + cb
                    y, xx = ih + kh, iw + kw
                    A[r, dst + j] = x[y, xx, cb] if 0 <= y < H and 0 <= xx < Wd else pad
        ow += 1
        if ow == OW:
            ow, ih, iw = 0, ih + SH, -PW
        else:
            iw += SW
    return A


@pytest.mark.parametrize("K,S,P,ncb,start", [(3, 1, 1, 2, 0), (3, 2, 1, 1, 3), (1, 1, 0, 3, 2), (5, 2, 2, 1, 4)])
def test_load_a_gather(K, S, P, ncb, start):
    """A window gather with padding, stride, the pixel counter wrapping to the next output rows
    mid-tile, a tile starting mid-row, PAD_VALUE, and stale banks beyond npix."""
    c = cfg(rows=8, cols=4)
    rng = np.random.default_rng(K * 100 + S * 10 + ncb)
    H, Wd = 5, 6
    OH, OW = (H + 2 * P - K) // S + 1, (Wd + 2 * P - K) // S + 1
    x = rng.integers(0, 256, size=(H, Wd, ncb, 4)).astype(np.uint8)
    base = 40
    mem = np.zeros((c.mem_words, 4), np.uint8)
    mem[base:base + H * Wd * ncb] = x.reshape(-1, 4)
    # first fill every bank with a marker so that stale contents are visible
    prog = [SET(Reg.IN_H, 1), SET(Reg.IN_W, 1), SET(Reg.OUT_W, 1), SET(Reg.KH, 1), SET(Reg.KW, 1),
            SET(Reg.PAD_VALUE, 0xEE), SET(Reg.STRIDE_H, 0)]
    prog += [LOAD_A(d, 8, 1, -1, -1, 0, 0) for d in range(20)]  # all out of image: PAD 0xEE
    oh0, ow0 = divmod(start, OW)
    npix = 5
    ih0, iw0 = oh0 * S - P, ow0 * S - P
    prog += [
        SET(Reg.IN_H, H), SET(Reg.IN_W, Wd), SET(Reg.OUT_W, OW), SET(Reg.KH, K), SET(Reg.KW, K),
        SET(Reg.STRIDE_H, S), SET(Reg.STRIDE_W, S), SET(Reg.PAD_W, P),
        SET(Reg.STEP_KH, Wd * ncb), SET(Reg.STEP_KW, ncb), SET(Reg.STEP_OW, S * ncb),
        SET(Reg.STEP_WRAP, (S * Wd - (OW - 1) * S) * ncb), SET(Reg.PAD_VALUE, 0x81),
        LOAD_A(2, npix, ncb, ih0, iw0, ow0, base + (ih0 * Wd + iw0) * ncb),
        E("END"),
    ]
    r = run(c, prog, mem)
    A0 = np.zeros((8, c.a_depth, 4), np.uint8)
    A0[:, :20] = 0xEE
    exp = loada_expect(A0, x, dst=2, npix=npix, ncb=ncb, ih0=ih0, iw0=iw0, ow0=ow0, KH=K, KW=K, SH=S, SW=S,
                       PW=P, OW=OW, pad=0x81)
    np.testing.assert_array_equal(r.state["A"], exp)
    assert OH * OW >= start + npix


# ------------------------------------------------------------------ COMPUTE


def requant_expect(v, *, shift, out_signed, skip=None, acc_l=0, skip_l=0):
    if skip is not None:
        v = (np.asarray(v, np.int64) << acc_l) + (np.asarray(skip, np.int64) << skip_l)
    return numerics.saturate(numerics.round_shift(np.asarray(v, np.int64), shift), out_signed)


def dense_setup(c, rng, nl, a_signed):
    R, C = c.rows, c.cols
    a = rng.integers(-127 if a_signed else 0, 128 if a_signed else 256, size=(R, nl, C))
    w = rng.integers(-127, 128, size=(nl * C, C))
    mem = np.zeros((c.mem_words, C), np.uint8)
    mem[0:nl * C] = u8(w)
    # activations: bank r gets line j from memory word 100 + r*nl + j via a 1x1 LOAD_A per pixel
    mem[100:100 + R * nl] = u8(a.reshape(R * nl, C))
    prog = [LOAD(T.W, 0, nl * C, 0), SET(Reg.IN_H, 1000), SET(Reg.IN_W, 1000), SET(Reg.OUT_W, 1000),
            SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.STRIDE_W, 1), SET(Reg.STEP_OW, nl),
            LOAD_A(0, R, nl, 0, 0, 0, 100), SET(Reg.A_SIGNED, a_signed)]
    return a, w, mem, prog


@pytest.mark.parametrize("a_signed,out_signed,shift", [(0, 0, 9), (1, 1, 7), (0, 1, 0), (1, 0, -3), (1, 1, 15)])
def test_compute_dense_bias_requant(a_signed, out_signed, shift):
    c = cfg(rows=3, cols=4)
    rng = np.random.default_rng(shift + 20)
    nl = 3
    a, w, mem, prog = dense_setup(c, rng, nl, a_signed)
    bias = rng.integers(-40000, 40000, size=4)
    mem[400:404] = planar(bias)
    prog += [LOAD(T.B, 8, 4, 400), SET(Reg.USE_BIAS, 1), SET(Reg.SHIFT, shift), SET(Reg.OUT_SIGNED, out_signed),
             COMPUTE(Mode.DENSE, nl, b_src=2, o_dst=5), STORE(5, 3, 300), E("END")]
    r = run(c, prog, mem)
    acc = a.reshape(3, nl * 4) @ w + bias
    exp = requant_expect(acc, shift=shift, out_signed=bool(out_signed))
    np.testing.assert_array_equal(r.state["O"][5:8], exp)
    np.testing.assert_array_equal(r.memory[300:303], u8(exp))
    assert r.busy == nl * 4


def test_compute_accumulate_chain_and_wrap():
    """acc = 1 continues across COMPUTEs; the accumulator wraps at 32 bits like the hardware's."""
    c = cfg(rows=2, cols=2)
    rng = np.random.default_rng(1)
    nl = 4
    a, w, mem, prog = dense_setup(c, rng, nl, 1)
    # a huge bias drives acc + bias past int32: wraps
    bias = np.array([2**31 - 5, -(2**31) + 3])
    mem[400:404] = planar(bias)
    prog += [LOAD(T.B, 0, 4, 400), SET(Reg.USE_BIAS, 1), SET(Reg.RQ_RAW, 1),
             COMPUTE(Mode.DENSE, 1, a_base=0, w_base=0, last=0),
             COMPUTE(Mode.DENSE, 2, a_base=1, w_base=2, acc=1, last=0),
             COMPUTE(Mode.DENSE, 1, a_base=3, w_base=6, acc=1, last=1, o_dst=0),
             STORE(0, 2, 200, 4, wide=1), E("END")]
    r = run(c, prog, mem)
    acc = a.reshape(2, nl * 2) @ w + bias
    exp = ((acc + 2**31) % 2**32) - 2**31
    np.testing.assert_array_equal(r.state["O"][0:2], exp)
    for i in range(2):
        np.testing.assert_array_equal(from_planar(r.memory[200 + 4 * i:204 + 4 * i]), exp[i])


def test_compute_depthwise_skip_and_max():
    c = cfg(rows=2, cols=3)
    rng = np.random.default_rng(7)
    R, C, nl = 2, 3, 5
    a = rng.integers(0, 256, size=(R, nl, C))
    w = rng.integers(-127, 128, size=(nl, C))
    skip = rng.integers(-127, 128, size=(R, C))
    mem = np.zeros((c.mem_words, C), np.uint8)
    mem[0:nl] = u8(w)
    mem[100:100 + R * nl] = u8(a.reshape(-1, C))
    mem[50:52] = u8(skip)
    prog = [LOAD(T.W, 10, nl, 0), LOAD(T.S, 4, 2, 50), SET(Reg.IN_H, 99), SET(Reg.IN_W, 99), SET(Reg.OUT_W, 99),
            SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.STRIDE_W, 1), SET(Reg.STEP_OW, nl),
            LOAD_A(0, R, nl, 0, 0, 0, 100),
            SET(Reg.USE_SKIP, 1), SET(Reg.SKIP_SIGNED, 1), SET(Reg.ACC_LSHIFT, 2), SET(Reg.SKIP_LSHIFT, 5 + 16),
            SET(Reg.SHIFT, 6), SET(Reg.OUT_SIGNED, 1),
            COMPUTE(Mode.DEPTHWISE, nl, w_base=10, s_src=4, o_dst=0),
            SET(Reg.USE_SKIP, 0), SET(Reg.SHIFT, 0), SET(Reg.OUT_SIGNED, 0),
            COMPUTE(Mode.MAX, 2, a_base=0, last=0, w_base=999),
            COMPUTE(Mode.MAX, 3, a_base=2, acc=1, last=1, o_dst=4, w_base=999),   # W unused in MAX
            SET(Reg.A_SIGNED, 1),
            COMPUTE(Mode.MAX, nl, a_base=0, last=1, o_dst=8),
            E("END")]
    r = run(c, prog, mem)
    dw = (a * w[None]).sum(axis=1)
    exp = requant_expect(dw, shift=6, out_signed=True, skip=skip, acc_l=2, skip_l=5)  # SKIP_LSHIFT: low 4 bits
    np.testing.assert_array_equal(r.state["O"][0:2], exp)
    np.testing.assert_array_equal(r.state["O"][4:6], a.max(axis=1))
    a_s = np.where(a > 127, a - 256, a)
    np.testing.assert_array_equal(r.state["O"][8:10], np.clip(a_s.max(axis=1), 0, 255))


def test_requant_rounding_rails_and_extreme_shifts():
    """Ties to even, both rails, shifts far outside the 8-bit range (clamped like the hardware)."""
    c = cfg(rows=1, cols=8)
    vals = np.array([6, 10, -6, -10, 2**31 - 1, -(2**31), 7, 1])
    mem = np.zeros((c.mem_words, 8), np.uint8)
    mem[0:4] = planar(vals)
    out = {}
    prog = [LOAD(T.B, 0, 4, 0), SET(Reg.USE_BIAS, 1)]
    cases = [(2, 0), (2, 1), (0, 1), (-8, 1), (15, 1), (100, 1), (-100, 0), (-(2**31), 1), (2**31 - 1, 0)]
    for i, (s, sg) in enumerate(cases):
        prog += [SET(Reg.SHIFT, s), SET(Reg.OUT_SIGNED, sg), COMPUTE(Mode.DENSE, 1, o_dst=i)]
        v = vals.astype(np.int64)
        if s > 40:
            q = np.zeros(len(v), np.int64)   # |v| < 2**31: v / 2**s rounds to 0
        elif s >= 0:
            q = np.array([_rhe(int(x), s) for x in v])
        else:
            q = np.array([int(x) * 2 ** (-s) if -s < 64 else (0 if x == 0 else int(np.sign(x)) * 2**70) for x in v])
        out[i] = np.clip(q, -127 if sg else 0, 127 if sg else 255)
    prog.append(E("END"))
    r = run(c, prog, mem)
    for i in out:
        np.testing.assert_array_equal(r.state["O"][i], out[i], err_msg=str(cases[i]))
    assert list(r.state["O"][0][:4]) == [2, 2, 0, 0]  # 6/4 = 1.5 -> 2, 10/4 = 2.5 -> 2, -1.5 -> -2 -> 0 (ReLU)
    assert list(r.state["O"][1][:4]) == [2, 2, -2, -2]


def _rhe(v: int, s: int) -> int:
    """Round half to even of v / 2**s with Python's exact rationals (independent of numerics)."""
    from fractions import Fraction

    return round(Fraction(v, 2**s))


def test_dyadic_multiplier():
    c = cfg(rows=1, cols=4, requant="dyadic")
    vals = np.array([1000, -1000, 2**31 - 1, 3])
    mem = np.zeros((c.mem_words, 4), np.uint8)
    mem[0:4] = planar(vals)
    prog = [LOAD(T.B, 0, 4, 0), SET(Reg.USE_BIAS, 1), SET(Reg.RQ_MULT, 12345), SET(Reg.SHIFT, 20),
            SET(Reg.OUT_SIGNED, 1), COMPUTE(Mode.DENSE, 1), E("END")]
    r = run(c, prog, mem)
    exp = [max(-127, min(127, _rhe(int(v) * 12345, 20))) for v in vals]
    np.testing.assert_array_equal(r.state["O"][0], exp)


def test_redrain_one_zero_step():
    """A second requantization of the same accumulators (the compiler's re-drain for a second output
    format): acc = 1, one DEPTHWISE step against a zero W entry, other SET registers."""
    c = cfg(rows=2, cols=2)
    rng = np.random.default_rng(3)
    a, w, mem, prog = dense_setup(c, rng, 2, 0)
    prog += [SET(Reg.SHIFT, 4), COMPUTE(Mode.DENSE, 2, o_dst=0), SET(Reg.SHIFT, 6), SET(Reg.OUT_SIGNED, 1),
             COMPUTE(Mode.DEPTHWISE, 1, acc=1, o_dst=2, a_base=0, w_base=127), E("END")]
    r = run(c, prog, mem)
    acc = a.reshape(2, 4) @ w
    np.testing.assert_array_equal(r.state["O"][0:2], requant_expect(acc, shift=4, out_signed=False))
    np.testing.assert_array_equal(r.state["O"][2:4], requant_expect(acc, shift=6, out_signed=True))
    assert r.busy == 2 * 2 + 1


# ------------------------------------------------------------------ timing


def test_hand_computed_cycles():
    """A 2x2 array; every number below follows from docs/architecture.md "Timing" with
    FIRST_ISSUE = 2, LOAD_LATENCY = STORE_LATENCY = 2, REQUANT_LATENCY = 4, array_latency = 3.

    i0 MARK 0       issues at 2 (FIRST_ISSUE)
    i1 LOAD W       4 words: issues at 3; load_end = 3 + 4 + 2 = 9
    i2 SET KH       4
    i3 SET KW       5
    i4 LOAD_A       npix 2 x KH*KW 1 x ncb 2 = 4 words, mask A0 (bit 0): earliest 6, the LOAD unit is
                    busy until load_end 9: issues at 9 (stall 3); load_end = 9 + 4 + 2 = 15
    i5 COMPUTE      DENSE nlines 2 (2*2 = 4 steps), mask A0|W0|O0 (bits 0, 2, 6): earliest 10; the LOAD
                    holds bit 0 until 15: issues at 15 (stall 5); mac_end = 19,
                    capture = 19 + 3 = 22, drain_end = 22 + 2 rows + 4 = 28
    i6 STORE        2 lines, mask O0 (bit 6): earliest 16; the drain holds bit 6 until 28: issues at 28
                    (stall 12); store_end = 28 + 2 + 2 = 32
    i7 MARK 1       29
    i8 END          earliest 30, waits for store_end 32 (stall 2): issues at 32; cycles = 33
    stall = 3 + 5 + 12 + 2 = 22, busy = 4 (MAC steps)
    """
    c = cfg(rows=2, cols=2)
    assert (FIRST_ISSUE, LOAD_LATENCY, STORE_LATENCY, REQUANT_LATENCY, array_latency(2, 2)) == (2, 2, 2, 4, 3)
    prog = [
        E("MARK", slot=0),
        LOAD(T.W, 0, 4, 0, mask=0b100),
        SET(Reg.KH, 1),
        SET(Reg.KW, 1),
        LOAD_A(0, 2, 2, 0, 0, 0, 0, mask=0b1),
        COMPUTE(Mode.DENSE, 2, mask=0b1000101),
        STORE(0, 2, 100, mask=0b1000000),
        E("MARK", slot=1),
        E("END"),
    ]
    r = run(c, prog)
    assert list(r.issue) == [2, 3, 4, 5, 9, 15, 28, 29, 32]
    assert r.cycles == 33
    assert r.busy == 4
    assert r.stall == 22
    assert r.marks == {0: 2, 1: 29}


def test_load_overlaps_compute_with_disjoint_masks_and_waits_otherwise():
    c = cfg(rows=2, cols=2)
    setup = [SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9), SET(Reg.OUT_W, 9),
             LOAD(T.W, 0, 40, 0, mask=0b100),                  # issues at 7, load_end = 7 + 40 + 2 = 49
             LOAD_A(0, 2, 20, 0, 0, 0, 0, mask=0b1)]            # issues at 49, load_end = 49 + 40 + 2 = 91
    comp = COMPUTE(Mode.DENSE, 20, last=0, mask=0b101)           # waits for the LOAD_A (bit 0): 91, mac_end 131

    # disjoint: the LOAD into the other A half (bit 1) issues right after the COMPUTE, while it runs
    r = run(c, setup + [comp, LOAD_A(32, 2, 20, 0, 0, 0, 0, mask=0b10), E("END")])
    assert list(r.issue[5:]) == [7, 49, 91, 92, 134]   # END: max(load_end 92+40+2, mac_end 131)
    # overlapping mask: the LOAD waits for the MAC phase to end (mac_end = 91 + 40)
    r = run(c, setup + [comp, LOAD_A(32, 2, 20, 0, 0, 0, 0, mask=0b11), E("END")])
    assert list(r.issue[5:]) == [7, 49, 91, 131, 173]
    # a COMPUTE waiting on a LOAD into its half: same rule the other way round
    r = run(c, setup + [LOAD(T.W, 64, 10, 0, mask=0b1000), COMPUTE(Mode.DENSE, 1, w_base=64, last=0, mask=0b1000),
                        E("END")])
    assert list(r.issue[5:]) == [7, 49, 91, 103, 105]


def test_drain_spacing_and_drain_holder():
    """Back-to-back last-COMPUTEs: capture (t + steps + 3) must be >= the previous capture + R.

    R = 4.  i0 DEPTHWISE 1 step, mask O0: t 2, capture 6, drain_end 6 + 4 + 4 = 14.
    i1 1 step, mask O1: earliest 3, spacing t + 1 + 3 >= 6 + 4 -> t 6; capture 10, drain_end 18.
       i0's drain is still in flight at 6 (14 > 6): the drain holder is O0 | O1 until 18.
    i2 3 steps: earliest 7 (= mac_end), spacing t + 6 >= 14 -> 8; with mask S0 it issues at 8
       (capture 14, drain_end 22); with mask O1 or O0 it waits for the drain holder (18):
       capture 24, drain_end 32.
    i3 STORE 4 lines of i2's slot: waits for the drain, store_end = t + 4 + 2; END at store_end.
    """
    c = cfg(rows=4, cols=2)
    for o2, expect in ((0b10000, [2, 6, 8, 22, 28]), (0b10000000, [2, 6, 18, 32, 38]),
                       (0b1000000, [2, 6, 18, 32, 38])):
        prog = [COMPUTE(Mode.DEPTHWISE, 1, mask=0b1000000, o_dst=0),
                COMPUTE(Mode.DEPTHWISE, 1, mask=0b10000000, o_dst=4),
                COMPUTE(Mode.DEPTHWISE, 3, mask=o2, o_dst=8),
                STORE(8, 4, 100, mask=o2),
                E("END")]
        r = run(c, prog)
        assert list(r.issue) == expect
        assert r.busy == 5


def test_drain_holder_covers_every_drain_in_flight():
    """A STORE of tile i behind the last-COMPUTE of tile i+1 (other O slot) still waits for tile i's
    drain: the drain holder is the OR of the masks of all drains in flight, busy until the latest
    one ends.  R = 4, C = 2.
    i0 DENSE 3 lines (6 steps), mask O0: t 2, capture 11, drain_end 19 (O lines 0..3 written 15..18).
    i1 DEPTHWISE 1 step, mask O1: mac_end 8, spacing t + 4 >= 15 -> t 11; i0's drain is in flight:
       holder O0 | O1, capture 15, drain_end 23.
    i2 STORE O lines 0..3, mask O0: waits for the holder: t 23 (tracking only the latest drain, it
       would issue at 12 and read lines 0..3 at 15..18 while i0's drain writes them: a race).
    """
    c = cfg(rows=4, cols=2)
    prog = [COMPUTE(Mode.DENSE, 3, mask=0b1000000, o_dst=0), COMPUTE(Mode.DEPTHWISE, 1, mask=0b10000000, o_dst=4),
            STORE(0, 4, 100, mask=0b1000000), E("END")]
    r = run(c, prog)
    assert list(r.issue) == [2, 11, 23, 29]
    # once every drain has ended, a new last-COMPUTE's drain is the only holder
    # i0 mask O0|S0: t 2, drain_end 14; the STORE (O0) waits for it: 14; i1 (O1) at 15 finds no drain
    # in flight: the holder is O1 alone, and a LOAD into S with mask S0 issues at once (16); END waits
    # for i1's drain: capture 15 + 1 + 3 = 19, drain_end 19 + 4 + 4 = 27
    prog = [COMPUTE(Mode.DEPTHWISE, 1, mask=0b1010000, o_dst=0), STORE(0, 4, 100, mask=0b1000000),
            COMPUTE(Mode.DEPTHWISE, 1, mask=0b10000000, o_dst=4), LOAD(T.S, 0, 1, 0, mask=0b10000), E("END")]
    r = run(c, prog)
    assert list(r.issue) == [2, 14, 15, 16, 27]


def test_end_waits_for_every_unit_and_stall_counts():
    c = cfg()
    r = run(c, [STORE(0, 10, 100, wide=1, mask=0), E("END")])
    assert list(r.issue) == [2, 2 + 40 + STORE_LATENCY] and r.cycles == 45 and r.stall == 45 - FIRST_ISSUE - 2


# ------------------------------------------------------------------ races


def test_race_scratchpad_disjoint_masks_lie():
    """A LOAD_A into the A lines a running COMPUTE reads, with masks that do not say so: a race."""
    c = cfg(rows=2, cols=2)
    prog = [SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9), SET(Reg.OUT_W, 9),
            COMPUTE(Mode.DENSE, 10, last=0, mask=0b1),
            LOAD_A(5, 2, 4, 0, 0, 0, 0, mask=0b10), E("END")]
    with pytest.raises(IsaSimError) as e:
        run(c, prog)
    assert e.value.code == isa.ErrorCode.RACE and e.value.pc == 6 and "A bank" in str(e.value)
    run(c, prog, check_races=False)  # the check can be switched off
    # the same program with an honest mask waits and is race-free
    prog[6] = LOAD_A(5, 2, 4, 0, 0, 0, 0, mask=0b1)
    r = run(c, prog)
    assert r.issue[6] == r.issue[5] + 20


def test_race_on_drain_outputs_and_skip():
    c = cfg(rows=2, cols=2)
    with pytest.raises(IsaSimError, match="race on O lines") as e:
        run(c, [COMPUTE(Mode.DEPTHWISE, 1, o_dst=0, mask=0b1000000), STORE(1, 1, 50, mask=0b10000000), E("END")])
    assert e.value.code == isa.ErrorCode.RACE
    # a LOAD into S while the previous drain still reads it (skip): race
    with pytest.raises(IsaSimError, match="race on S lines"):
        run(c, [SET(Reg.USE_SKIP, 1), COMPUTE(Mode.DEPTHWISE, 1, s_src=0, mask=0b1000000),
                LOAD(T.S, 1, 1, 0, mask=0b1), E("END")])
    # the STORE of lines not being drained overlaps freely
    r = run(c, [COMPUTE(Mode.DEPTHWISE, 1, o_dst=0, mask=0b1000000), STORE(2, 2, 50, mask=0b10000000), E("END")])
    assert r.issue[1] == 3


def test_race_main_memory():
    """A STORE and a later LOAD of the same words not ordered by the masks."""
    c = cfg(rows=2, cols=2)
    with pytest.raises(IsaSimError, match="main-memory word 52"):
        run(c, [STORE(0, 4, 50, mask=0b1000000), LOAD(T.W, 0, 4, 52, mask=0b100), E("END")])
    # different words: no race, they overlap in time
    r = run(c, [STORE(0, 4, 50, mask=0b1000000), LOAD(T.W, 0, 4, 60, mask=0b100), E("END")])
    assert list(r.issue) == [2, 3, 9]
    # the barrier convention (the LOAD carries the STORE's bit) orders them: no race
    r = run(c, [STORE(0, 4, 50, mask=0b1000000), LOAD(T.W, 0, 4, 52, mask=0b1000100), E("END")])
    assert r.issue[1] == 2 + 4 + STORE_LATENCY


def test_no_false_race_load_a_right_after_mac_end():
    """A LOAD_A into the half a COMPUTE just finished stepping through is legal the cycle mac_end is
    reached: bank r is still read until mac_end + r, but the LOAD_A writes bank r only after
    r pixels' worth of words.  Per-bank timing must not call that a race."""
    c = cfg(rows=4, cols=2)
    prog = [SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9), SET(Reg.OUT_W, 9),
            COMPUTE(Mode.DENSE, 3, last=0, mask=0b1), LOAD_A(0, 4, 1, 0, 0, 0, 0, mask=0b1), E("END")]
    r = run(c, prog)
    assert r.issue[6] == r.issue[5] + 6


# ------------------------------------------------------------------ errors


ERRORS = {
    "opcode 0": ([0], 1, "illegal opcode 0"),
    "opcode 12": ([12], 1, "illegal opcode 12"),
    "load target": ([E("LOAD", mask=1, target=3, dst=0, count=1, addr=0, stride=1)], 1, "target"),
    "compute mode": ([COMPUTE(3, 1)], 1, "mode"),
    "load W range": ([LOAD(T.W, 120, 9, 0)], 2, "dst 120"),
    "load B range": ([LOAD(T.B, 14, 3, 0)], 2, "B"),
    "load S range": ([LOAD(T.S, 16, 1, 0)], 2, "S"),
    "npix 0": ([LOAD_A(0, 0, 1, 0, 0, 0, 0)], 2, "npix"),
    "npix > rows": ([LOAD_A(0, 5, 1, 0, 0, 0, 0)], 2, "npix"),
    "load_a lines": ([SET(Reg.KH, 3), SET(Reg.KW, 3), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9),
                      LOAD_A(60, 1, 1, 0, 0, 0, 0)], 2, "a_depth"),
    "store range": ([STORE(10, 7, 0)], 2, "o_depth"),
    "compute o_dst": ([COMPUTE(Mode.DENSE, 1, o_dst=13)], 2, "o_dst"),
    "compute a": ([COMPUTE(Mode.DEPTHWISE, 10, a_base=60, last=0)], 2, "a_base"),
    "compute w": ([COMPUTE(Mode.DENSE, 40, last=0)], 2, "w_base"),
    "compute nlines 0": ([COMPUTE(Mode.DENSE, 0, last=1)], 2, "nlines 0"),
    "compute s": ([SET(Reg.USE_SKIP, 1), COMPUTE(Mode.DENSE, 1, s_src=13)], 2, "s_src"),
    "compute b": ([SET(Reg.USE_BIAS, 1), COMPUTE(Mode.DENSE, 1, b_src=4)], 2, "b_src"),
    "mark slot": ([E("MARK", slot=8)], 2, "slot"),
    "load mem": ([LOAD(T.W, 0, 4, 510)], 3, "512"),
    "load mem wrap": ([LOAD(T.W, 0, 4, 0, -1)], 3, "4294967295"),
    "load_a mem": ([SET(Reg.KH, 1), SET(Reg.KW, 1), SET(Reg.IN_H, 9), SET(Reg.IN_W, 9),
                    LOAD_A(0, 1, 1, 0, 0, 0, 512)], 3, "512"),
    "store mem": ([STORE(0, 1, 509, wide=1)], 3, "512"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_codes(name):
    prog, code, text = ERRORS[name]
    c = cfg(rows=4, cols=4, imem_depth=64)
    with pytest.raises(IsaSimError) as e:
        run(c, prog + [E("END")])
    assert e.value.code == code, str(e.value)
    assert e.value.pc == len(prog) - 1
    assert text in str(e.value) and f"instruction {len(prog) - 1}" in str(e.value)


def test_error_fetch_no_end_and_timeout():
    c = cfg(imem_depth=16)
    with pytest.raises(IsaSimError) as e:
        run(c, [SET(Reg.KH, 1)] * 16)
    assert e.value.code == isa.ErrorCode.FETCH and e.value.pc == 16
    with pytest.raises(IsaSimError) as e:
        run(c, [SET(Reg.KH, 1)] * 3)          # past the end of the program: word 0, illegal
    assert e.value.code == isa.ErrorCode.OPCODE and e.value.pc == 3 and "no END" in str(e.value)
    with pytest.raises(IsaSimError) as e:
        run(c, [STORE(0, 16, 0, wide=1, mask=0), E("END")], max_cycles=50)
    assert e.value.code == isa.ErrorCode.TIMEOUT and e.value.pc == 1


def test_bytes_program_and_bad_memory():
    c = cfg()
    r = isasim.run(isa.to_bytes([E("MARK", slot=1), E("END")]), np.zeros((10, 4), np.uint8), c)
    assert r.marks == {1: 2} and r.cycles == 4 and r.memory.shape == (10, 4)
    with pytest.raises(Exception, match="uint8"):
        isasim.run([E("END")], np.zeros((10, 4), np.int64), c)
    with pytest.raises(Exception, match="shape"):
        isasim.run([E("END")], np.zeros((10, 3), np.uint8), c)


def test_format_trace():
    c = cfg()
    prog = [E("MARK", slot=0), STORE(0, 3, 5, mask=1), E("END")]
    r = run(c, prog)
    text = isasim.format_trace(prog, r)
    lines = text.splitlines()
    assert len(lines) == 3 and "t=2 " in lines[0] and "STORE" in lines[1] and "stall=4" in lines[2]


def test_dyadic_multiplier_before_residual_alignment():
    """docs/architecture.md: dyadic out = saturate(round_shift(((acc + bias) * RQ_MULT << ACC_LSHIFT)
    + (skip << SKIP_LSHIFT), SHIFT)): the multiplier is on the accumulator path (f8hw/hw/requant.py),
    the residual is an already-requantized int8 tensor that is only aligned."""
    c = cfg(rows=1, cols=4, requant="dyadic")
    vals = np.array([1000, -1000, 77, 3])
    skip = np.array([-5, 100, -127, 0])
    mem = np.zeros((c.mem_words, 4), np.uint8)
    mem[0:4] = planar(vals)
    mem[10] = u8(skip)
    prog = [LOAD(T.B, 0, 4, 0), LOAD(T.S, 0, 1, 10), SET(Reg.USE_BIAS, 1), SET(Reg.USE_SKIP, 1),
            SET(Reg.SKIP_SIGNED, 1), SET(Reg.ACC_LSHIFT, 1), SET(Reg.SKIP_LSHIFT, 3), SET(Reg.RQ_MULT, 300),
            SET(Reg.SHIFT, 12), SET(Reg.OUT_SIGNED, 1), COMPUTE(Mode.DENSE, 1), E("END")]
    r = run(c, prog, mem)
    exp = [max(-127, min(127, _rhe(((int(v) * 300) << 1) + (int(s) << 3), 12))) for v, s in zip(vals, skip)]
    assert exp != [max(-127, min(127, _rhe(((int(v) << 1) + (int(s) << 3)) * 300, 12))) for v, s in zip(vals, skip)]
    np.testing.assert_array_equal(r.state["O"][0], exp)


def test_load_a_tap_gather_layout():
    """A_GATHER = 3 on 8-byte words: P = 2 taps per line, bytes [0, 3) of each word, PAD_VALUE bytes at
    padded taps, zeros after P*G and in the last line's unused tap; expectations written out by hand."""
    c = cfg(rows=4, cols=8)
    mem = np.zeros((c.mem_words, 8), np.uint8)
    for p in range(4):  # 2x2 image, pixel p = y*2 + x at word 10 + p, byte b = 10*p + b + 1
        mem[10 + p] = 10 * p + np.arange(8) + 1
    marker = [SET(Reg.IN_H, 1), SET(Reg.IN_W, 1), SET(Reg.OUT_W, 1), SET(Reg.KH, 1), SET(Reg.KW, 1),
              SET(Reg.PAD_VALUE, 0x55), SET(Reg.STRIDE_H, 0)] + [LOAD_A(d, 4, 1, -1, -1, 0, 0) for d in range(8)]
    common = [SET(Reg.IN_H, 2), SET(Reg.IN_W, 2), SET(Reg.OUT_W, 2), SET(Reg.STRIDE_H, 1), SET(Reg.STRIDE_W, 1),
              SET(Reg.PAD_W, 1), SET(Reg.STEP_KH, 2), SET(Reg.STEP_KW, 1), SET(Reg.STEP_OW, 1),
              SET(Reg.STEP_WRAP, 1), SET(Reg.PAD_VALUE, 0xEE), SET(Reg.A_GATHER, 3)]
    # 2x2 kernel, pixels (0,0) and (0,1) with padding 1: windows start at (-1,-1) and (-1,0)
    prog = marker + common + [SET(Reg.KH, 2), SET(Reg.KW, 2), LOAD_A(1, 2, 1, -1, -1, 0, 10 - 3),
                              # 1x3 kernel, pixel (0,0) of a row-only pad: window (0,-1)..(0,1)
                              SET(Reg.KH, 1), SET(Reg.KW, 3), LOAD_A(5, 1, 1, 0, -1, 0, 10 - 1), E("END")]
    r = run(c, prog, mem)
    A = r.state["A"]
    EE, M = 0xEE, 0x55
    np.testing.assert_array_equal(A[0, 0], [M] * 8)                                 # below dst: untouched
    np.testing.assert_array_equal(A[0, 1], [EE, EE, EE, EE, EE, EE, 0, 0])          # taps 0, 1 padded
    np.testing.assert_array_equal(A[0, 2], [EE, EE, EE, 1, 2, 3, 0, 0])             # tap 2 pad, tap 3 = px 0
    np.testing.assert_array_equal(A[0, 3], [M] * 8)                                 # 2 lines per pixel only
    np.testing.assert_array_equal(A[1, 1], [EE, EE, EE, EE, EE, EE, 0, 0])
    np.testing.assert_array_equal(A[1, 2], [1, 2, 3, 11, 12, 13, 0, 0])             # px 0, px 1
    np.testing.assert_array_equal(A[0, 5], [EE, EE, EE, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(A[0, 6], [11, 12, 13, 0, 0, 0, 0, 0])             # last line: 1 tap
    np.testing.assert_array_equal(A[0, 7], [M] * 8)
    np.testing.assert_array_equal(A[2:, :8], np.full((2, 8, 8), M, np.uint8))        # banks >= npix
    # words read (timing) are unchanged: the load unit ends at issue + words + LOAD_LATENCY
    assert r.units_end["load"] == r.issue[-2] + 3 + LOAD_LATENCY


@pytest.mark.parametrize("g", [0, -1, 9, 1 << 20])
def test_load_a_gather_off_values(g):
    """A_GATHER outside 1..C is off; A_GATHER = C is the same as off."""
    c = cfg(rows=2, cols=8)
    mem = np.zeros((c.mem_words, 8), np.uint8)
    mem[:16] = np.arange(128).reshape(16, 8)
    base = [SET(Reg.IN_H, 4), SET(Reg.IN_W, 4), SET(Reg.OUT_W, 3), SET(Reg.KH, 2), SET(Reg.KW, 2),
            SET(Reg.STRIDE_H, 1), SET(Reg.STRIDE_W, 1), SET(Reg.STEP_KH, 4), SET(Reg.STEP_KW, 1),
            SET(Reg.STEP_OW, 1), SET(Reg.STEP_WRAP, 2)]
    ref = run(c, base + [LOAD_A(0, 2, 1, 0, 0, 0, 0), E("END")], mem)
    for v in (g, 8):
        r = run(c, base + [SET(Reg.A_GATHER, v), LOAD_A(0, 2, 1, 0, 0, 0, 0), E("END")], mem)
        np.testing.assert_array_equal(r.state["A"], ref.state["A"])


def test_load_a_gather_line_range_error():
    """With gather the line count is ceil(words / P): 9 taps at P = 2 need 5 lines."""
    c = cfg(rows=2, cols=8, a_depth=16)
    base = [SET(Reg.IN_H, 3), SET(Reg.IN_W, 3), SET(Reg.OUT_W, 1), SET(Reg.KH, 3), SET(Reg.KW, 3),
            SET(Reg.STEP_KH, 3), SET(Reg.STEP_KW, 1), SET(Reg.A_GATHER, 4)]
    run(c, base + [LOAD_A(11, 1, 1, 0, 0, 0, 0), E("END")])
    with pytest.raises(IsaSimError) as ei:
        run(c, base + [LOAD_A(12, 1, 1, 0, 0, 0, 0), E("END")])
    assert ei.value.code == isa.ErrorCode.SPAD


def _diag_mem(c, H, W, ncb, base=10):
    """Word (y, x, cb) at base + (y*W + x)*ncb + cb; its bytes are v, v+1, ... with v = 40*y + 4*x + cb + 1
    (so every position of the image is told apart)."""
    mem = np.zeros((c.mem_words, c.cols), np.uint8)
    for y in range(H):
        for x in range(W):
            for cb in range(ncb):
                mem[base + (y * W + x) * ncb + cb] = 40 * y + 4 * x + cb + 1 + np.arange(c.cols)
    return mem


@pytest.mark.parametrize("sw,KH,KW,npix,ncb", [(1, 2, 3, 5, 1), (2, 2, 3, 3, 2), (1, 1, 1, 4, 1), (3, 1, 3, 2, 1)])
def test_load_a_diag_layout(sw, KH, KW, npix, ncb):
    """A_DIAG window reuse: pixels iw0 + sw*r of one output row (padding at the top, left and right),
    bank r line (kh*KW + kw)*ncb + cb = input (ih0 + kh, iw0 + sw*r + kw, cb) or PAD_VALUE; the words read
    are KH*ncb*(sw*(npix-1) + KW), each input word once.  Expectations from the definition, plus literals."""
    H, W, PV, M = 2, 5, 0xEE, 0x55
    c = cfg(rows=5, cols=4)
    mem = _diag_mem(c, H, W, ncb)
    ih0, iw0, dst = -1, -1, 3
    marker = [SET(Reg.IN_H, 1), SET(Reg.IN_W, 1), SET(Reg.OUT_W, 1), SET(Reg.KH, 1), SET(Reg.KW, 1),
              SET(Reg.PAD_VALUE, M), SET(Reg.STRIDE_H, 0)] + [LOAD_A(d, 5, 1, -1, -1, 0, 0) for d in range(40)]
    addr = 10 + (ih0 * W + iw0) * ncb
    prog = marker + [SET(Reg.IN_H, H), SET(Reg.IN_W, W), SET(Reg.OUT_W, 2),  # OUT_W is ignored by A_DIAG
                     SET(Reg.KH, KH), SET(Reg.KW, KW), SET(Reg.STRIDE_H, 7), SET(Reg.STRIDE_W, sw),
                     SET(Reg.PAD_W, 9), SET(Reg.STEP_KH, W * ncb), SET(Reg.STEP_KW, ncb), SET(Reg.STEP_OW, 999),
                     SET(Reg.STEP_WRAP, 999), SET(Reg.PAD_VALUE, PV), SET(Reg.A_DIAG, 1),
                     LOAD_A(dst, npix, ncb, ih0, iw0, 3, addr), E("END")]
    r = run(c, prog, mem)
    A = r.state["A"]
    L = KH * KW * ncb
    for b in range(5):
        for line in range(40):
            if b >= npix or not dst <= line < dst + L:
                exp = [M] * 4
            else:
                i = line - dst
                kh, kw, cb = i // (KW * ncb), (i // ncb) % KW, i % ncb
                y, x = ih0 + kh, iw0 + sw * b + kw
                exp = [PV] * 4 if not (0 <= y < H and 0 <= x < W) else 40 * y + 4 * x + cb + 1 + np.arange(4)
            np.testing.assert_array_equal(A[b, line], exp, err_msg=f"bank {b} line {line}")
    if (sw, KH, KW, npix, ncb) == (1, 2, 3, 5, 1):
        np.testing.assert_array_equal(A[0, 3 + 3], [PV] * 4)                # kh 1, kw 0: column -1 (left pad)
        np.testing.assert_array_equal(A[0, 3 + 4], [1, 2, 3, 4])            # (0, 0)
        np.testing.assert_array_equal(A[4, 3 + 4], [17, 18, 19, 20])        # bank 4, kw 1: (0, 4)
        np.testing.assert_array_equal(A[4, 3 + 5], [PV] * 4)                # bank 4, kw 2: column 5 (right pad)
        np.testing.assert_array_equal(A[2, 3 + 1], [PV] * 4)                # kh 0: row -1 (top pad)
    if (sw, KH, KW, npix, ncb) == (2, 2, 3, 3, 2):
        np.testing.assert_array_equal(A[1, 3 + (3 + 0) * 2 + 1], [6, 7, 8, 9])     # bank 1 kh 1 kw 0 cb 1: (0, 1)
        np.testing.assert_array_equal(A[2, 3 + (3 + 2) * 2 + 0], [PV] * 4)         # bank 2 kw 2: column 5
        np.testing.assert_array_equal(A[2, 3 + (3 + 1) * 2 + 1], [18, 19, 20, 21])  # bank 2 kw 1 cb 1: (0, 4)
    words = KH * ncb * (sw * (npix - 1) + KW)
    assert r.units_end["load"] == r.issue[-2] + words + LOAD_LATENCY


@pytest.mark.parametrize("case", ["gather", "sw0", "sw_gt_kw", "off"])
def test_load_a_diag_not_applicable(case):
    """A_DIAG does not apply (plain LOAD_A, same lines and timing) with tap gather on (A_GATHER in 1..C-1),
    STRIDE_W < 1 or STRIDE_W > KW, or A_DIAG = 0."""
    c = cfg(rows=3, cols=4)
    mem = _diag_mem(c, 3, 6, 1)
    sw = {"sw0": 0, "sw_gt_kw": 3}.get(case, 1)
    base = [SET(Reg.IN_H, 3), SET(Reg.IN_W, 6), SET(Reg.OUT_W, 6), SET(Reg.KH, 2), SET(Reg.KW, 2),
            SET(Reg.STRIDE_H, 1), SET(Reg.STRIDE_W, sw), SET(Reg.STEP_KH, 6), SET(Reg.STEP_KW, 1),
            SET(Reg.STEP_OW, sw), SET(Reg.STEP_WRAP, 1)] + ([SET(Reg.A_GATHER, 2)] if case == "gather" else [])
    la = [LOAD_A(0, 3, 1, 0, 0, 0, 10), E("END")]
    ref = run(c, base + la, mem)
    r = run(c, base + [SET(Reg.A_DIAG, 0 if case == "off" else -5)] + la, mem)
    np.testing.assert_array_equal(r.state["A"], ref.state["A"])
    assert r.units_end["load"] - r.issue[-2] == ref.units_end["load"] - ref.issue[-2] == 3 * 4 + LOAD_LATENCY


@pytest.mark.parametrize("dst,ok", [(60, True), (61, False)])
def test_load_a_diag_line_range_error(dst, ok):
    """A_DIAG writes the same lines as LOAD_A (KH*KW*ncb per bank): a line past a_depth is error 2."""
    c = cfg(rows=2, cols=4, a_depth=64)
    prog = [SET(Reg.IN_H, 3), SET(Reg.IN_W, 3), SET(Reg.OUT_W, 1), SET(Reg.KH, 2), SET(Reg.KW, 2),
            SET(Reg.STRIDE_W, 1), SET(Reg.STEP_KH, 3), SET(Reg.STEP_KW, 1), SET(Reg.A_DIAG, 1),
            LOAD_A(dst, 2, 1, 0, 0, 0, 0), E("END")]
    if ok:
        run(c, prog)
    else:
        with pytest.raises(IsaSimError) as ei:
            run(c, prog)
        assert ei.value.code == isa.ErrorCode.SPAD

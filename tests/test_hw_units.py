"""Unit tests of the RTL blocks in Amaranth's simulator: requantizer lanes (against
f8hw.numerics), PE, MAC array (non-square, 1xN, Nx1), and the multiplier inventory
of the synthesized accelerator (yosys)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from f8hw import numerics as N
from f8hw.arch import PE_LATENCY, ArchConfig, ArchError
from f8hw.hw.array import MacArray
from f8hw.hw.pe import PE
from f8hw.hw.requant import LATENCY, RequantLane, rq_cfg_value

ROOT = Path(__file__).resolve().parent.parent


def lane_ref(c, dyadic=False):
    """The lane's expected output from f8hw.numerics.requant_lane (the spec's one executable model,
    also the ISA simulator's), with the SET register values rebuilt from the lane configuration."""
    cfg = c["cfg"]
    v = N.wrap_int32(c["acc"] + (c["bias"] if cfg["use_bias"] else 0))
    out = N.requant_lane(np.array([v]), np.array([c["skip"]], np.uint8) if cfg["use_skip"] else None,
                         raw=cfg["raw"], out_signed=cfg["out_signed"], skip_signed=cfg["skip_signed"],
                         acc_lshift=cfg["acc_lshift"], skip_lshift=cfg["skip_lshift"],
                         shift=-cfg["shift_mag"] if cfg["shift_neg"] else cfg["shift_mag"],
                         mult=cfg["mult"] if dyadic else None)
    return int(out[0])


def run_lane(cases, dyadic=False):
    dut = RequantLane(dyadic)
    outs = []

    async def tb(ctx):
        for c in cases + [cases[-1]] * LATENCY:
            ctx.set(dut.in_valid, 1)
            ctx.set(dut.acc, c["acc"])
            ctx.set(dut.bias, c["bias"])
            ctx.set(dut.skip, c["skip"])
            ctx.set(dut.cfg, c["cfg"])
            await ctx.tick()
            if ctx.get(dut.out_valid):
                outs.append(ctx.get(dut.out))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return outs[:len(cases)]


def lane_cases(seed=0, n_per_shift=24, shifts=range(N.SHIFT_MIN - 2, N.SHIFT_MAX + 3), mult=None):
    rng = random.Random(seed)
    cases = []
    for s in shifts:
        for i in range(n_per_shift):
            signed = i % 2 == 0
            use_skip = i % 3 == 0
            if i % 4 == 0 and s > 0:   # exact ties: odd multiple of 2^(s-1)
                acc = (2 * rng.randint(-300, 300) + 1) << (s - 1)
            elif i % 4 == 1:           # around both rails
                rail = rng.choice([127, -127, 255, 0, 128, -128, 256])
                acc = (rail << max(s, 0)) + rng.randint(-(1 << max(s, 0)), 1 << max(s, 0))
            else:
                acc = rng.randint(-2**31, 2**31 - 1) >> rng.randint(0, 31)
            cases.append(dict(acc=acc, bias=rng.randint(-2**12, 2**12) if i % 5 else 0, skip=rng.randint(0, 255),
                              cfg=rq_cfg_value(shift=s, use_bias=int(i % 5 != 0), out_signed=int(signed),
                                               use_skip=int(use_skip), skip_signed=rng.randint(0, 1),
                                               acc_lshift=rng.randint(0, 8) if use_skip else 0,
                                               skip_lshift=rng.randint(0, 15) if use_skip else 0,
                                               mult=1 if mult is None else mult(rng))))
    # corner cases: int32 extremes (bias wraps), raw mode, biggest alignments
    for acc in (2**31 - 1, -2**31, 0, -1, 1):
        for raw in (0, 1):
            cases.append(dict(acc=acc, bias=2**31 - 1, skip=255,
                              cfg=rq_cfg_value(shift=3, raw=raw, use_bias=1, out_signed=1, mult=1)))
            cases.append(dict(acc=acc, bias=-5, skip=128,
                              cfg=rq_cfg_value(shift=15, raw=raw, use_bias=1, use_skip=1, skip_signed=1,
                                               acc_lshift=15, skip_lshift=15, mult=1)))
    return cases


def test_requant_shift_lane_every_shift():
    cases = lane_cases()
    outs = run_lane(cases)
    bad = [(c, o, lane_ref(c)) for c, o in zip(cases, outs) if o != lane_ref(c)]
    assert not bad, bad[:5]
    assert len(outs) == len(cases)


def test_requant_ties_round_half_even():
    cases = []
    for s in range(1, N.SHIFT_MAX + 1):
        for q in range(-6, 7):
            v = (2 * q + 1) << (s - 1)   # exactly q + 0.5 after the shift
            cases.append(dict(acc=v, bias=0, skip=0, cfg=rq_cfg_value(shift=s, out_signed=1)))
    outs = run_lane(cases)
    for c, o in zip(cases, outs):
        q = c["acc"] >> c["cfg"]["shift_mag"]   # floor
        assert o == (q if q % 2 == 0 else q + 1)  # half to even
        assert o == lane_ref(c)


def test_requant_saturation_rails_dense():
    """Every value next to the four rails (127, -127, 255, 0) after right shifts, with and without the
    rounding increment, for both output kinds: stage 4 decides over/under from reductions of q0's bits."""
    cases = []
    qs = [*range(-133, -122), *range(-4, 4), *range(122, 133), *range(250, 262)]
    for sh in (0, 1, 2, 5):
        fracs = sorted({0, 1 << max(sh - 1, 0), (1 << max(sh - 1, 0)) + 1, (1 << sh) - 1}) if sh else [0]
        for q in qs:
            for f in fracs:
                for sig in (0, 1):
                    cases.append(dict(acc=(q << sh) + f, bias=0, skip=0, cfg=rq_cfg_value(shift=sh, out_signed=sig)))
    outs = run_lane(cases)
    bad = [(c, o, lane_ref(c)) for c, o in zip(cases, outs) if o != lane_ref(c)]
    assert not bad, bad[:5]
    assert len(outs) == len(cases) and {-127, 0, 127, 255} <= set(outs)


def test_requant_large_shifts_clamp_exactly():
    """Shifts beyond the lane width (right) or beyond 9 (left) are clamped without changing results."""
    cases = []
    for s in (-100, -40, -10, -9, 40, 47, 48, 49, 63, 127, 200):
        for acc in (0, 1, -1, 2**31 - 1, -2**31, 12345, -77):
            for sig in (0, 1):
                cases.append(dict(acc=acc, bias=0, skip=200, cfg=rq_cfg_value(
                    shift=s, out_signed=sig, use_skip=1, skip_signed=1, acc_lshift=15, skip_lshift=15)))
    outs = run_lane(cases)
    for c, o in zip(cases, outs):
        assert o == lane_ref(c), c


def test_dyadic_lane_mult_one_equals_shift_lane():
    cases = lane_cases(seed=1, n_per_shift=8)
    assert run_lane(cases, dyadic=True) == run_lane(cases, dyadic=False)


def test_dyadic_lane_random_mult():
    cases = lane_cases(seed=2, n_per_shift=6, shifts=range(0, 40, 3),
                       mult=lambda rng: rng.randint(-2**31, 2**31 - 1) >> rng.randint(0, 31))
    for c in cases:
        c["acc"] >>= 8
    outs = run_lane(cases, dyadic=True)
    bad = [(c, o) for c, o in zip(cases, outs) if o != lane_ref(c, dyadic=True)]
    assert not bad, bad[:3]


def test_dyadic_lane_residual_matches_numerics():
    """Dyadic lane with the residual add on (RQ_MULT != 1, every alignment): the RTL multiplies
    acc + bias by RQ_MULT *before* the alignment; f8hw.numerics.requant_lane must do the same (the two orders give
    different results here, so they cannot drift apart again)."""
    rng = random.Random(5)
    cases = []
    for i in range(300):
        mult = rng.choice([3, -7, 300, 12345, -2**31, 2**31 - 1]) if i % 3 else rng.randint(-2**31, 2**31 - 1)
        acc = rng.randint(-2**31, 2**31 - 1) >> rng.randint(0, 31)
        bias = rng.randint(-2**20, 2**20)
        acc_l, skip_l = rng.randint(0, 15), rng.randint(0, 15)
        # half the cases: a shift that keeps the result near the 8-bit range (no saturation)
        mag = ((acc + bias) * mult << acc_l).bit_length()
        shift = max(0, mag - 7) if i % 2 else rng.randint(-12, 80)
        cases.append(dict(acc=acc, bias=bias, skip=rng.randint(0, 255),
                          cfg=rq_cfg_value(shift=shift, use_bias=1, out_signed=i % 4 < 2, use_skip=1,
                                           skip_signed=rng.randint(0, 1), acc_lshift=acc_l,
                                           skip_lshift=skip_l, mult=mult)))
    outs = run_lane(cases, dyadic=True)
    bad = [(c, o) for c, o in zip(cases, outs) if o != lane_ref(c, dyadic=True)]
    assert not bad, bad[:3]

    # multiply-after-alignment would differ: the test discriminates the two orders
    def after(c):
        g = c["cfg"]
        sk = c["skip"] - 256 if g["skip_signed"] and c["skip"] > 127 else c["skip"]
        v = (((c["acc"] + c["bias"] + 2**31) % 2**32) - 2**31 << g["acc_lshift"]) + (sk << g["skip_lshift"])
        s = -g["shift_mag"] if g["shift_neg"] else g["shift_mag"]
        return int(N.saturate(N.round_shift(v * g["mult"], s), bool(g["out_signed"])))
    assert sum(o != after(c) for c, o in zip(cases, outs)) >= 20


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_requant_parameter_validation():
    with pytest.raises(ArchError):
        RequantLane(dyadic="yes")
    with pytest.raises(ArchError):
        MacArray(0, 4)
    with pytest.raises(ArchError):
        MacArray(4, 65)


def test_pe_random_sequences():
    dut = PE()
    rng = random.Random(3)
    seq = []
    for _ in range(300):
        seq.append(dict(a=rng.randint(-256, 255) >> rng.randint(0, 1), w=rng.randint(-128, 127),
                        valid=int(rng.random() < 0.9), first=int(rng.random() < 0.15),
                        last=int(rng.random() < 0.15), max_mode=int(rng.random() < 0.3)))
    got = []

    async def tb(ctx):
        for s in seq:
            for k, v in s.items():
                ctx.set(getattr(dut, k), v)
            await ctx.tick()
            got.append((ctx.get(dut.acc), ctx.get(dut.shadow), ctx.get(dut.w_out)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    acc = sh = 0
    states = []
    for s in seq:
        if s["valid"]:
            if s["max_mode"]:
                nxt = s["a"] if s["first"] else max(acc, s["a"])
            else:
                nxt = s["a"] * s["w"] + (0 if s["first"] else acc)
                nxt = ((nxt + 2**31) % 2**32) - 2**31
            acc = nxt
            if s["last"]:
                sh = nxt
        states.append((acc, sh))
    # after the tick of cycle i: steps up to i - (PE_LATENCY - 1) accumulated (multiply, then accumulate)
    for i, (s, g) in enumerate(zip(seq, got)):
        j = i - (PE_LATENCY - 1)
        assert g == (*(states[j] if j >= 0 else (0, 0)), s["w"]), i


def run_array(R, C, mode, a_signed, K, rng):
    """Drive the array the way the compute unit does: row r runs step k at cycle k + r."""
    dut = MacArray(R, C)
    if mode == "dense":
        a = rng.integers(-127 if a_signed else 0, 128 if a_signed else 256, size=(R, K))
        lines = np.zeros((R, K, C), np.int64)
        for k in range(K):
            lines[:, k, k % C] = a[:, k]
    else:
        lines = rng.integers(-127 if a_signed else 0, 128 if a_signed else 256, size=(R, K, C))
    w = rng.integers(-127, 128, size=(K, C))
    T = K + R + 2

    async def tb(ctx):
        for t in range(T):
            for c in range(C):
                ctx.set(dut.w_in[c], int(w[t, c]) if t < K else 0)
            for r in range(R):
                k = t - r
                ok = 0 <= k < K
                ctx.set(dut.ctl[r], {"valid": int(ok), "first": int(ok and k == 0), "last": int(ok and k == K - 1),
                                     "dense": int(mode == "dense"), "max": int(mode == "max"), "a_signed": a_signed,
                                     "byte": (k % C) if ok else 0})
                ln = lines[r, k] if ok else np.zeros(C, np.int64)
                ctx.set(dut.line[r], int.from_bytes(bytes((ln & 0xFF).astype(np.uint8)), "little"))
            # w moves down one row per cycle: feed row 0 now; PE rows below get it from their neighbour
            await ctx.tick()
        res = np.zeros((R, C), np.int64)
        for r in range(R):
            ctx.set(dut.drain_sel, 1 << r)
            for c in range(C):
                res[r, c] = ctx.get(dut.drain_out[c])
        out["res"] = res

    out = {}
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    if mode == "dense":
        exp = a @ w
    elif mode == "dw":
        exp = (lines * w[None]).sum(axis=1)
    else:
        exp = lines.max(axis=1)
    return out["res"], exp


@pytest.mark.parametrize("R,C", [(1, 1), (1, 5), (5, 1), (3, 4), (4, 3), (2, 7)])
@pytest.mark.parametrize("mode", ["dense", "dw", "max"])
def test_array_random_tiles(R, C, mode):
    rng = np.random.default_rng(R * 100 + C)
    for a_signed in (0, 1):
        res, exp = run_array(R, C, mode, a_signed, K=2 * C + 3 if mode == "dense" else 6, rng=rng)
        np.testing.assert_array_equal(res, exp)


@pytest.mark.parametrize("requant", ["shift", "dyadic", "flexible"])
def test_multiplier_inventory(requant):
    """yosys: exactly R*C multipliers, each 9-bit signed x 8-bit signed -> 17 bits (the A operand is
    an int8 *or* uint8 activation, selected at run time by A_SIGNED, so it is sign- or zero-extended to
    9 bits; the weight is int8; on a flexible build the same multiplier takes the significands).  No
    other multiplier anywhere in shift mode (INT8 or flexible: the FP8 lanes and the wide INT8 lanes
    have none); the dyadic baseline adds exactly C 32 x 32 -> 64-bit signed ones (one per lane)."""
    from f8hw.hw.build import SPAD_FILE, _packaged, accel_verilog, count_multipliers

    R, C = 2, 3
    kw = dict(formats=("int8", "e2m5", "e3m4", "e4m3")) if requant == "flexible" else dict(requant=requant)
    cfg = ArchConfig(rows=R, cols=C, a_depth=64, w_depth=64, b_depth=4, s_depth=4, o_depth=4, mem_words=256,
                     imem_depth=64, mark_depth=4, **kw)
    wd = ROOT / "build" / "test_hw_units" / f"mul_{requant}"
    muls = count_multipliers({SPAD_FILE: _packaged(SPAD_FILE), "f8hw_accel.v": accel_verilog(cfg)}, "f8hw_accel",
                             wd, blackbox=(SPAD_FILE,))
    kinds = Counter((m["A_WIDTH"], m["A_SIGNED"], m["B_WIDTH"], m["B_SIGNED"], m["Y_WIDTH"]) for m in muls)
    expect = {(9, 1, 8, 1, 17): R * C}
    if requant == "dyadic":
        expect[(32, 1, 32, 1, 64)] = C
    assert dict(kinds) == expect


def test_synth_pe_generic():
    """The synthesis flow of the area report runs (generic cells of one PE; the full report,
    iCE40/ECP5 and the dyadic lane, is `f8hw build --report`, cached under ~/.cache/f8hw)."""
    from f8hw.hw.build import _convert, synth_component

    r = synth_component("pe", _convert(PE(), "f8hw_pe"), "f8hw_pe", ROOT / "build" / "test_hw_units",
                        flows=("generic",))
    assert 200 < r["cells"] < 5000

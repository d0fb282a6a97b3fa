"""Unit level: requantizer lanes, the PE and MAC arrays of the generator, on Verilator and Icarus.

Stimulus and expected values are computed here (the requantizer's from
f8hw.numerics.requant_lane, the spec's executable model; the PE's and arrays' from
plain integer arithmetic); the RTL is driven cycle by cycle by
tb_stream.py.  Seeds are printed; on a mismatch the first differing vector is
named and a waveform is written (its path is in the failure message).
"""

from __future__ import annotations

import numpy as np
import pytest

from f8hw import numerics
from f8hw.arch import PE_LATENCY
from f8hw.arch import REQUANT_LATENCY as LATENCY  # the requantizer lane's registers (= f8hw.hw.requant.LATENCY)
from unitlib import ARRAY_SIZES, run_stream, to_signed, to_unsigned

from conftest import SIMULATORS_UNIT

SHIFTS = range(-12, 50)  # beyond SHIFT_MIN..SHIFT_MAX on purpose: the lane clamps internally


def _rq_cfg(**kw) -> int:
    from f8hw.hw.requant import RQ_CFG, rq_cfg_value

    return RQ_CFG.const(rq_cfg_value(**kw)).as_value().value


def _wrap32(v: int) -> int:
    return to_signed(v, 32)


def rq_expected(acc, bias, skip, raw=0, out_signed=0, use_bias=0, use_skip=0, skip_signed=0, acc_lshift=0,
                skip_lshift=0, shift=0, mult=1, dyadic=False):
    """docs/architecture.md COMPUTE requantization: f8hw.numerics.requant_lane (the spec's executable model;
    dyadic: RQ_MULT multiplies acc + bias before the residual alignment)."""
    from f8hw.numerics import requant_lane

    v = _wrap32(acc + (bias if use_bias else 0))
    out = requant_lane(np.array([v]), np.array([skip & 0xFF], np.uint8) if use_skip else None, raw=raw,
                       out_signed=out_signed, skip_signed=skip_signed, acc_lshift=acc_lshift,
                       skip_lshift=skip_lshift, shift=shift, mult=mult if dyadic else None)
    return int(out[0])


def rq_vectors(rng: np.random.Generator, dyadic: bool) -> list[dict]:
    """Every shift amount, ties, both rails, residual alignment, signed/unsigned, raw."""
    vec = []
    for shift in SHIFTS:
        for out_signed in (0, 1):
            hi, lo = numerics.qrange(bool(out_signed))
            targets = [hi, hi + 1, hi - 1, lo, lo - 1, lo + 1, 0, 1, -1, 2, -2, 3, -3]
            for t in targets:
                base = t << shift if shift >= 0 else t >> (-shift)
                cands = [base]
                if shift > 0:
                    half = 1 << (shift - 1)
                    cands += [base + half, base - half, base + half - 1, base + half + 1]  # ties and neighbours
                for v in cands:
                    if not numerics.INT32_MIN <= v <= numerics.INT32_MAX:
                        continue
                    bias = int(rng.integers(-(1 << 20), 1 << 20))
                    vec.append(dict(acc=_wrap32(v - bias), bias=bias, skip=0, use_bias=1, out_signed=out_signed,
                                    shift=shift))
            for _ in range(6):
                acc = int(rng.integers(numerics.INT32_MIN, numerics.INT32_MAX + 1))
                vec.append(dict(acc=acc, bias=0, skip=0, use_bias=0, out_signed=out_signed, shift=shift))
    # residual alignment: every shift pair, both skip signednesses
    for _ in range(400):
        al, sl = int(rng.integers(0, 9)), int(rng.integers(0, 9))
        if rng.random() < 0.5:
            al = 0
        else:
            sl = 0
        shift = int(rng.integers(-8, 16))
        acc = int(rng.integers(-(1 << 20), 1 << 20)) if rng.random() < 0.7 else int(rng.integers(-(1 << 31), 1 << 31))
        vec.append(dict(acc=acc, bias=int(rng.integers(-4096, 4096)), skip=int(rng.integers(0, 256)), use_bias=1,
                        use_skip=1, skip_signed=int(rng.integers(2)), acc_lshift=al, skip_lshift=sl,
                        out_signed=int(rng.integers(2)), shift=shift))
    # raw (int32 logits): acc + bias wraps at 32 bits
    for acc, bias in [(numerics.INT32_MAX, 1), (numerics.INT32_MIN, -1), (5, -7), (0, 0)] + [
            (int(rng.integers(-(1 << 31), 1 << 31)), int(rng.integers(-(1 << 31), 1 << 31))) for _ in range(20)]:
        vec.append(dict(acc=acc, bias=bias, skip=0, raw=1, use_bias=1, shift=int(rng.integers(-8, 16))))
    if dyadic:
        for _ in range(200):
            mult = int(rng.integers(-(1 << 16), 1 << 16))
            vec.append(dict(acc=int(rng.integers(-(1 << 14), 1 << 14)), bias=0, skip=0, mult=mult,
                            out_signed=int(rng.integers(2)), shift=int(rng.integers(0, 40))))
    else:
        for v in vec:
            v["mult"] = 1
    for v in vec:
        v.setdefault("mult", 1)
    return vec


@pytest.mark.parametrize("dyadic", [False, True], ids=["shift", "dyadic"])
@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_requant_lane(simulator, dyadic, seed, tmp_path):
    rng = np.random.default_rng(seed)
    vec = rq_vectors(rng, dyadic)
    if simulator == "icarus":  # slower: a deterministic subset (still every shift and rail)
        vec = vec[::3]
    n = len(vec)
    cfg_keys = ("raw", "out_signed", "use_bias", "use_skip", "skip_signed", "acc_lshift", "skip_lshift", "shift", "mult")
    inputs = {
        "in_valid": [1] * n + [0],
        "acc": [to_unsigned(v["acc"], 32) for v in vec],
        "bias": [to_unsigned(v["bias"], 32) for v in vec],
        "skip": [v["skip"] & 0xFF for v in vec],
        "cfg": [_rq_cfg(**{k: v[k] for k in cfg_keys if k in v}) for v in vec],
    }
    unit = "rqd" if dyadic else "rq"
    out = run_stream(simulator, unit, inputs, ["out", "out_valid"], n + LATENCY + 1, tmp_path)
    for i, v in enumerate(vec):
        got_valid = out["out_valid"][i + LATENCY]
        got = to_signed(out["out"][i + LATENCY], 32)
        exp = rq_expected(**v, dyadic=dyadic)
        if got_valid != 1 or got != exp:
            _fail_with_waves(simulator, unit, inputs, ["out", "out_valid"], n + LATENCY + 1, tmp_path,
                             f"requantizer ({unit}) vector {i} of {n}: {v} -> got {got} (valid {got_valid}), "
                             f"expected {exp}")


def _fail_with_waves(simulator, unit, inputs, outputs, cycles, tmp_path, msg):
    wdir = tmp_path / "waves"
    try:
        run_stream(simulator, unit, inputs, outputs, cycles, wdir, waves=True)
        where = f"; waveform in {wdir}"
    except Exception as e:  # noqa: BLE001  the failure itself matters more than the waves
        where = f"; (waveform failed: {e})"
    pytest.fail(msg + where)


# ------------------------------------------------------------------ PE


def pe_model(stim):
    """(acc, shadow, w_out) before each cycle: a step reaches acc/shadow PE_LATENCY cycles after its inputs
    (multiply, then accumulate), the weight register one cycle after."""
    acc = shadow = 0
    w_reg = 0
    states = []
    for s in stim:
        a, w = s["a"], s["w"]
        if s["valid"]:
            if s["max_mode"]:
                nxt = a if (s["first"] or a > acc) else acc
            else:
                nxt = a * w if s["first"] else _wrap32(acc + a * w)
            acc = nxt
            if s["last"]:
                shadow = nxt
        states.append((acc, shadow))
    outs = []
    for i, s in enumerate(stim):
        j = i - PE_LATENCY
        outs.append((*(states[j] if j >= 0 else (0, 0)), w_reg))
        w_reg = s["w"]
    return outs


@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_pe(simulator, seed, tmp_path):
    rng = np.random.default_rng(seed)
    n = 600 if simulator == "verilator" else 200
    stim = []
    for i in range(n):
        stim.append(dict(a=int(rng.integers(-128, 256)), w=int(rng.integers(-128, 128)),
                         valid=int(rng.random() < 0.85), first=int(rng.random() < 0.15),
                         last=int(rng.random() < 0.2), max_mode=int(rng.random() < 0.25)))
    # long accumulations towards the int32 wrap
    for i in range(200 if simulator == "verilator" else 50):
        stim.append(dict(a=255, w=-128, valid=1, first=int(i == 0), last=int(i % 50 == 49), max_mode=0))
    inputs = {k: [to_unsigned(s[k], 9 if k == "a" else 8 if k == "w" else 1) for s in stim]
              for k in ("a", "w", "valid", "first", "last", "max_mode")}
    out = run_stream(simulator, "pe", inputs, ["acc", "shadow", "w_out"], len(stim), tmp_path)
    exp = pe_model(stim)
    for i, (ea, es, ew) in enumerate(exp):
        got = (to_signed(out["acc"][i], 32), to_signed(out["shadow"][i], 32), to_signed(out["w_out"][i], 8))
        if got != (ea, es, ew):
            _fail_with_waves(simulator, "pe", inputs, ["acc", "shadow", "w_out"], len(stim), tmp_path,
                             f"PE cycle {i}: (acc, shadow, w_out) = {got}, expected {(ea, es, ew)}; "
                             f"inputs {stim[max(0, i - 1)]}")


# ------------------------------------------------------------------ array


def _ctl(cols: int, **kw) -> int:
    from f8hw.hw.array import row_ctl_layout

    lay = row_ctl_layout(cols)
    return lay.const(kw).as_value().value


def array_tiles(rng, R, C, ntiles):
    """Random tiles: (mode, a_signed, A lines (R, K, C) bytes, W (K, C) int8, byte select per step)."""
    tiles = []
    for _ in range(ntiles):
        mode = str(rng.choice(["dense", "dw", "max"]))
        K = int(rng.integers(R, 3 * C + R + 1))  # >= R: the compute unit never drains two rows at once
        a_signed = int(rng.integers(2))
        lines = rng.integers(0, 256, size=(R, K, C))
        lines[rng.random(size=lines.shape) < 0.05] = 0x80
        lines[rng.random(size=lines.shape) < 0.05] = 0x7F
        lines[rng.random(size=lines.shape) < 0.05] = 0xFF
        w = rng.integers(-127, 128, size=(K, C))
        w[rng.random(size=w.shape) < 0.05] = -127
        byte = rng.integers(0, C, size=K)
        tiles.append((mode, a_signed, lines, w, byte))
    return tiles


def array_expected(R, C, tile):
    mode, a_signed, lines, w, byte = tile
    a = lines.astype(np.int64)
    if a_signed:
        a = np.where(a >= 128, a - 256, a)
    K = w.shape[0]
    P = np.zeros((R, C), np.int64)
    for k in range(K):
        if mode == "dense":
            ak = np.repeat(a[:, k, byte[k]][:, None], C, axis=1)
        else:
            ak = a[:, k, :]
        if mode == "max":
            P = ak if k == 0 else np.maximum(P, ak)
        else:
            P = P + ak * w[k][None, :]
    return ((P + (1 << 31)) % (1 << 32)) - (1 << 31)


@pytest.mark.parametrize("size", [f"{r}x{c}" for r, c in ARRAY_SIZES])
@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_mac_array(simulator, size, seed, tmp_path):
    """Back-to-back tiles (no gap): each tile's rows are drained while the next accumulates."""
    R, C = map(int, size.split("x"))
    rng = np.random.default_rng(seed)
    tiles = array_tiles(rng, R, C, 6 if simulator == "verilator" else 3)
    total_k = sum(t[3].shape[0] for t in tiles)
    ncyc = total_k + R + 1 + PE_LATENCY
    w_in = [0] * ncyc
    line = [[0] * ncyc for _ in range(R)]
    ctl = [[0] * ncyc for _ in range(R)]
    drain = [0] * ncyc
    sample_at = []  # (tile index, row, cycle)
    t0 = 0
    for ti, (mode, a_signed, lines, w, byte) in enumerate(tiles):
        K = w.shape[0]
        for k in range(K):
            w_in[t0 + k] = sum(to_unsigned(int(w[k, c]), 8) << (8 * c) for c in range(C))
            for r in range(R):
                cyc = t0 + k + r
                line[r][cyc] = sum(int(lines[r, k, c]) << (8 * c) for c in range(C))
                ctl[r][cyc] = _ctl(C, valid=1, first=int(k == 0), last=int(k == K - 1), dense=int(mode == "dense"),
                                   max=int(mode == "max"), a_signed=a_signed, byte=int(byte[k]))
        for r in range(R):   # row r's last step enters at t0 + K - 1 + r, its shadow is valid PE_LATENCY later
            sample_at.append((ti, r, t0 + K - 1 + PE_LATENCY + r))
            drain[t0 + K - 1 + PE_LATENCY + r] |= 1 << r
        t0 += K
    inputs = {
        "w_in": w_in,
        "line": [sum(line[r][i] << (8 * C * r) for r in range(R)) for i in range(ncyc)],
        "ctl": [sum(ctl[r][i] << (len(_ctl_bits(C)) * r) for r in range(R)) for i in range(ncyc)],
        "drain_sel": drain,
    }
    out = run_stream(simulator, f"arr{R}x{C}", inputs, ["drain_out"], ncyc, tmp_path)
    exp = [array_expected(R, C, t) for t in tiles]
    for ti, r, cyc in sample_at:
        word = out["drain_out"][cyc]
        got = [to_signed(word >> (32 * c), 32) for c in range(C)]
        if got != [int(x) for x in exp[ti][r]]:
            mode = tiles[ti][0]
            _fail_with_waves(simulator, f"arr{R}x{C}", inputs, ["drain_out"], ncyc, tmp_path,
                             f"{size} array, tile {ti} ({mode}, K={tiles[ti][3].shape[0]}, "
                             f"a_signed={tiles[ti][1]}), row {r}: got {got}, expected {list(exp[ti][r])}")


def _ctl_bits(cols):
    from f8hw.hw.array import row_ctl_layout

    return range(row_ctl_layout(cols).size)

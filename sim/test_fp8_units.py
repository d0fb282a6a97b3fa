"""Unit level, flexible formats: the flexible PE and the FP8 requantizer lane on Verilator and Icarus.

Expected values come from f8hw.numerics (to_integer for the operands' integer
forms, encode_int for the lane); the RTL is driven cycle by cycle by
tb_stream.py through a bank of FPE_BANK flexible PEs (one product each per
cycle).  PE product: exhaustive over every pair of finite codes for
e4m3 x e4m3 and INT8 (signed and unsigned) x e3m4, random on every other
format pair; accumulation and MAX tiles against an exact Python model.
Icarus runs a deterministic subset.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from functools import lru_cache

import numpy as np
import pytest

from f8hw import numerics
from f8hw.arch import PE_LATENCY
from unitlib import FPE_BANK, FPE_FORMATS, LANE_BANK, run_stream, to_signed, to_unsigned

from conftest import SIMULATORS_UNIT

CTL = ("valid", "first", "last", "max_mode")


def _codes(fmt: str) -> np.ndarray:
    """Every valid code of an operand format (INT8: all 256; FP8: the finite ones)."""
    return np.arange(256) if fmt == "int8" else np.flatnonzero(numerics.finite_mask(fmt))


@lru_cache(maxsize=None)
def _int_forms(fmt: str, weight: bool, a_signed: bool) -> tuple:
    """Integer form of each code as the PE multiplies it: INT8 the 9-bit activation / int8 weight, FP8 to_integer
    (None for NaN/Inf codes)."""
    if fmt == "int8":
        return tuple(to_signed(c, 8) if (weight or a_signed) else c for c in range(256))
    ok = numerics.finite_mask(fmt)
    n = numerics.to_integer(np.flatnonzero(ok), fmt).tolist()
    it = iter(n)
    return tuple(next(it) if ok[c] else None for c in range(256))


def int_form(code: int, fmt: str, weight: bool, a_signed: bool) -> int:
    return _int_forms(fmt, weight, bool(a_signed and fmt == "int8"))[code]


@lru_cache(maxsize=None)
def _cfg(a_fmt, w_fmt, a_signed) -> int:
    from f8hw.hw.fpe import fpe_cfg_layout, fpe_cfg_value

    return fpe_cfg_layout(FPE_FORMATS).const(fpe_cfg_value(FPE_FORMATS, a_fmt, w_fmt, a_signed)).as_value().value


def _acc_bits() -> int:
    from f8hw.hw.fpe import acc_bits

    return acc_bits(FPE_FORMATS)


def run_bank(simulator, steps, tmp_path, outputs=("acc", "shadow", "w_out")):
    """steps: one dict per cycle (a, w: FPE_BANK codes each; cfg; valid/first/last/max_mode).
    Returns the per-cycle (acc, shadow, w_out) tuples of every PE, sampled as tb_stream does (outputs
    not read are 0), for len(steps) + PE_LATENCY cycles: the last one shows every step accumulated."""
    aw = _acc_bits()
    inputs = {"a": [sum(c << (8 * i) for i, c in enumerate(s["a"])) for s in steps],
              "w": [sum(c << (8 * i) for i, c in enumerate(s["w"])) for s in steps],
              "cfg": [s["cfg"] for s in steps], **{k: [s[k] for s in steps] for k in CTL}}
    n = len(steps) + PE_LATENCY
    out = run_stream(simulator, "fpe", inputs, list(outputs), n, tmp_path, group="fp8")
    zero = [0] * n
    acc, shadow, w_out = (out.get(k, zero) for k in ("acc", "shadow", "w_out"))
    return [[(to_signed(acc[t] >> (aw * i), aw), to_signed(shadow[t] >> (aw * i), aw), (w_out[t] >> (8 * i)) & 0xFF)
             for i in range(FPE_BANK)] for t in range(n)]


def product_steps(a_fmt, w_fmt, a_signed, pairs):
    """One cycle per FPE_BANK code pairs, each a one-step MAC tile (first = last = 1): acc = the product."""
    cfg = _cfg(a_fmt, w_fmt, a_signed)
    steps = []
    for j in range(0, len(pairs), FPE_BANK):
        chunk = pairs[j:j + FPE_BANK]
        chunk = chunk + [chunk[-1]] * (FPE_BANK - len(chunk))
        steps.append(dict(a=[int(a) for a, _ in chunk], w=[int(w) for _, w in chunk], cfg=cfg, valid=1, first=1,
                          last=1, max_mode=0))
    return steps


def check_products(simulator, jobs, tmp_path):
    """jobs: (a_fmt, w_fmt, a_signed, [(a_code, w_code), ...]); every product against to_integer's."""
    steps, meta = [], []
    for a_fmt, w_fmt, a_signed, pairs in jobs:
        s = product_steps(a_fmt, w_fmt, a_signed, pairs)
        for k, st in enumerate(s):
            meta.append((a_fmt, w_fmt, a_signed, st))
        steps += s
    got = run_bank(simulator, steps, tmp_path, outputs=("acc",))
    for t, (a_fmt, w_fmt, a_signed, st) in enumerate(meta):
        for i in range(FPE_BANK):
            a, w = st["a"][i], st["w"][i]
            exp = int_form(a, a_fmt, False, a_signed) * int_form(w, w_fmt, True, a_signed)
            acc = got[t + PE_LATENCY][i][0]   # multiply, then accumulate
            if acc != exp:
                pytest.fail(f"{a_fmt}{'(signed)' if a_fmt == 'int8' and a_signed else ''} x {w_fmt}: codes "
                            f"0x{a:02x} x 0x{w:02x} -> {acc}, expected {exp}")
    return len(steps)


@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_fpe_products_exhaustive(simulator, tmp_path):
    """Every finite e4m3 x e4m3 pair and every INT8 (both signednesses) x finite e3m4 pair."""
    jobs = [("e4m3", "e4m3", 0, list(itertools.product(_codes("e4m3"), _codes("e4m3"))))]
    for a_signed in (0, 1):
        jobs.append(("int8", "e3m4", a_signed, list(itertools.product(_codes("int8"), _codes("e3m4")))))
    if simulator == "icarus":  # slower: every third pair of the e4m3 x e4m3 table
        jobs = [(a, w, s, p[::3]) for a, w, s, p in jobs[:1]]
    check_products(simulator, jobs, tmp_path)


@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_fpe_products_random(simulator, seed, tmp_path):
    """Random valid codes (with every extreme code) on every activation x weight format pair."""
    rng = np.random.default_rng(seed)
    n = 512 if simulator == "verilator" else 64
    jobs = []
    for a_fmt, w_fmt in itertools.product(FPE_FORMATS, FPE_FORMATS):
        for a_signed in ((0, 1) if a_fmt == "int8" else (0,)):
            ca, cw = _codes(a_fmt), _codes(w_fmt)
            ext_a = [int(ca[0]), int(ca[-1]), int(ca[len(ca) // 2 - 1]), int(ca[len(ca) // 2])]
            ext_w = [int(cw[0]), int(cw[-1]), int(cw[len(cw) // 2 - 1]), int(cw[len(cw) // 2])]
            pairs = list(itertools.product(ext_a, ext_w))
            pairs += list(zip(rng.choice(ca, n).tolist(), rng.choice(cw, n).tolist()))
            jobs.append((a_fmt, w_fmt, a_signed, pairs))
    check_products(simulator, jobs, tmp_path)


def tile_steps(rng, n_tiles):
    """Back-to-back MAC and MAX tiles with random formats, lengths, bubbles (valid 0) and codes."""
    steps = []
    for _ in range(n_tiles):
        a_fmt, w_fmt = (str(x) for x in rng.choice(FPE_FORMATS, 2))
        a_signed = int(rng.integers(2))
        mode = int(rng.random() < 0.3)
        k = int(rng.integers(1, 40))
        cfg = _cfg(a_fmt, w_fmt, a_signed)
        ca, cw = _codes(a_fmt), _codes(w_fmt)
        # mostly large codes: the sums then reach far into the accumulator's width
        big_a, big_w = ca[ca % 128 >= 96], cw[cw % 128 >= 96]
        for j in range(k):
            while True:
                valid = int(rng.random() < 0.85)
                if valid or j not in (0, k - 1):
                    break
            pick_a = big_a if rng.random() < 0.5 and len(big_a) else ca
            pick_w = big_w if rng.random() < 0.5 and len(big_w) else cw
            steps.append(dict(a=rng.choice(pick_a, FPE_BANK).tolist(), w=rng.choice(pick_w, FPE_BANK).tolist(),
                              cfg=cfg, fmts=(a_fmt, w_fmt, a_signed), valid=1 if j in (0, k - 1) else valid,
                              first=int(j == 0), last=int(j == k - 1), max_mode=mode))
    return steps


def bank_model(steps):
    """Exact reference of every PE: (acc, shadow, w_out) before each of len(steps) + PE_LATENCY cycles: a step
    reaches acc/shadow PE_LATENCY cycles after its inputs (multiply, accumulate), w_out one cycle after (the
    stream holds the last inputs)."""
    aw = _acc_bits()
    state = [(0, 0, 0)] * FPE_BANK
    states = []
    for s in steps:
        a_fmt, w_fmt, a_signed = s["fmts"]
        nxt_state = []
        for i, (acc, shadow, _) in enumerate(state):
            x = int_form(s["a"][i], a_fmt, False, a_signed)
            if s["valid"]:
                if s["max_mode"]:
                    acc = x if (s["first"] or x > acc) else acc
                else:
                    p = x * int_form(s["w"][i], w_fmt, True, a_signed)
                    acc = p if s["first"] else to_signed(acc + p, aw)
                if s["last"]:
                    shadow = acc
            nxt_state.append((acc, shadow, s["w"][i]))
        state = nxt_state
        states.append(state)
    outs = []
    for t in range(len(steps) + PE_LATENCY):
        j = t - PE_LATENCY
        w_prev = steps[min(t - 1, len(steps) - 1)]["w"] if t else [0] * FPE_BANK
        outs.append([(*(states[j][i][:2] if j >= 0 else (0, 0)), w_prev[i]) for i in range(FPE_BANK)])
    return outs


@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_fpe_tiles(simulator, seed, tmp_path):
    """Accumulation and MAX sequences (first/last/shadow, bubbles, w_out) against the exact model."""
    rng = np.random.default_rng(seed)
    steps = tile_steps(rng, 60 if simulator == "verilator" else 12)
    got = run_bank(simulator, steps, tmp_path)
    exp = bank_model(steps)
    assert len(got) == len(exp)
    for t in range(len(exp)):
        if got[t] != exp[t]:
            i = next(i for i in range(FPE_BANK) if got[t][i] != exp[t][i])
            pytest.fail(f"cycle {t}, PE {i}: (acc, shadow, w_out) = {got[t][i]}, expected {exp[t][i]}; "
                        f"step {dict((k, v) for k, v in steps[min(max(t - 1, 0), len(steps) - 1)].items() if k not in ('a', 'w'))}")


# ------------------------------------------------------------------ FP8 requantizer lane


def lane_vectors(rng, formats, limit_bits):
    """(kind, shift, relu, use_bias, acc, bias) vectors: every representable value of each kind at several
    shifts, the ties between neighbours and their neighbours, saturation, subnormals, zero, negatives,
    and random magnitudes and shifts over the whole SHIFT field."""
    from f8hw.hw.fp8requant import shift_bits
    from f8hw.hw.fpe import acc_bits

    kinds = [f for f in formats if f != "int8"]
    vbits = min(acc_bits(formats) - 1, limit_bits)
    smax = (1 << (shift_bits(formats) - 1)) - 1
    vec = []

    def add(kind, s, v, relu=0):
        if abs(v) < (1 << vbits):
            bias = int(rng.integers(-(1 << 12), 1 << 12))
            if abs(v - bias) >= 1 << vbits:   # acc itself must fit the accumulator
                bias = 0
            vec.append((kind, s, relu, 1, v - bias, bias))

    for kind in kinds:
        f = numerics.fp8_format(kind)
        ns = numerics.to_integer(np.arange(f.max_code + 1), kind).tolist()
        for s in (1, 7, 30):   # v / 2**s at half-unit resolution: the values, the ties and their neighbours
            for n0, n1 in zip(ns, ns[1:] + [2 * ns[-1] - ns[-2]]):
                for h in {2 * n0, n0 + n1 - 1, n0 + n1, n0 + n1 + 1}:
                    add(kind, s, h << (s - 1))
                    add(kind, s, -(h << (s - 1)), int(rng.random() < 0.5))
        for s in (-(f.man_bits + 3), -1, 0):   # left shifts: exact values and one unit above
            for n0 in ns:
                for v in {n0 >> -s, (n0 >> -s) + 1}:
                    add(kind, s, v)
                    add(kind, s, -v, int(rng.random() < 0.5))
        for s in (-smax - 1, -40, -f.man_bits, 0, 60, smax):
            for v in (0, 1, -1, (1 << vbits) - 1, -((1 << vbits) - 1), f.max_int, -f.max_int):
                add(kind, s, v, 0)
                add(kind, s, v, 1)
        for _ in range(300):
            nb = int(rng.integers(0, vbits))
            v = int(rng.integers(-(1 << nb), (1 << nb) + 1))
            s = int(rng.integers(-smax - 1, smax + 1)) if rng.random() < 0.3 else int(rng.integers(-12, nb + 4))
            add(kind, s, v, int(rng.random() < 0.3))
    # use_bias = 0: the bias input is ignored
    vec += [(k, s, r, 0, acc, int(rng.integers(-(1 << 20), 1 << 20))) for k, s, r, _, acc, _ in vec[::17]]
    acc_lim = 1 << (acc_bits(formats) - 1)
    assert all(-acc_lim <= v[4] < acc_lim and -acc_lim <= v[5] < acc_lim for v in vec)
    return vec


def lane_expected(vec) -> list[int]:
    """numerics.encode_int of every vector (after the bias and the ReLU), batched per (kind, shift)."""
    groups = defaultdict(list)
    for i, (kind, s, relu, use_bias, acc, bias) in enumerate(vec):
        v = acc + (bias if use_bias else 0)
        groups[kind, s].append((i, max(v, 0) if relu else v))
    out = [0] * len(vec)
    for (kind, s), items in groups.items():
        codes = numerics.encode_int(np.array([v for _, v in items], np.int64), s + numerics.fp8_format(kind).q,
                                    kind, 0)
        for (i, _), c in zip(items, codes.tolist()):
            out[i] = c
    return out


@pytest.mark.parametrize("unit,formats", [("frq", FPE_FORMATS), ("frq5", ("int8", "e5m2"))], ids=["set", "e5m2"])
@pytest.mark.parametrize("simulator", SIMULATORS_UNIT)
def test_fp8_requant_lane(simulator, unit, formats, seed, tmp_path):
    """Codes equal numerics.encode_int (values, ties to even, subnormals, saturation, zero, ReLU, never -0)."""
    from f8hw.hw.fp8requant import LATENCY, fp8_rq_cfg_layout, fp8_rq_cfg_value
    from f8hw.hw.fpe import acc_bits

    rng = np.random.default_rng(seed)
    vec = lane_vectors(rng, formats, limit_bits=62)   # the int64 reference stays exact
    if simulator == "icarus":
        vec = vec[::5]
    lay = fp8_rq_cfg_layout(formats)
    aw, cw = acc_bits(formats), lay.size
    cfg_word = lru_cache(maxsize=None)(lambda *c: lay.const(fp8_rq_cfg_value(formats, *c)).as_value().value)
    vec += [vec[-1]] * (-len(vec) % LANE_BANK)
    n = len(vec) // LANE_BANK   # cycles: vector j on lane j % LANE_BANK at cycle j // LANE_BANK

    def packed(values, width):
        return [sum(to_unsigned(x, width) << (width * i) for i, x in enumerate(values[t * LANE_BANK:(t + 1) * LANE_BANK]))
                for t in range(n)]

    inputs = {"in_valid": [(1 << LANE_BANK) - 1] * n + [0],
              "acc": packed([v[4] for v in vec], aw), "bias": packed([v[5] for v in vec], aw),
              "cfg": packed([cfg_word(k, s, r, b) for k, s, r, b, *_ in vec], cw)}
    out = run_stream(simulator, unit, inputs, ["out", "out_valid"], n + LATENCY + 1, tmp_path, group="fp8")
    expected = lane_expected(vec)
    for j, (v, exp) in enumerate(zip(vec, expected)):
        t, i = j // LANE_BANK + LATENCY, j % LANE_BANK
        got, valid = (out["out"][t] >> (8 * i)) & 0xFF, (out["out_valid"][t] >> i) & 1
        if valid != 1 or got != exp:
            pytest.fail(f"FP8 lane ({unit}) vector {j} of {len(vec)}: kind {v[0]} shift {v[1]} relu {v[2]} "
                        f"use_bias {v[3]} acc {v[4]} bias {v[5]} -> 0x{got:02x} (valid {valid}), expected 0x{exp:02x}")

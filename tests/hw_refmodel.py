"""A small reference model of docs/architecture.md (functional + timing), for the RTL tests.

Independent of f8hw/hw: written from the spec text.  Executes each instruction
at its issue cycle in program order (valid for race-free programs).
"""

from __future__ import annotations

import math

import numpy as np

from f8hw import isa, numerics
from f8hw.arch import FIRST_ISSUE, LOAD_LATENCY, REQUANT_LATENCY, STORE_LATENCY, ArchConfig, array_latency

Reg = isa.Reg


class RefError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def run_ref(cfg: ArchConfig, program: list[int], mem: np.ndarray):
    R, C = cfg.rows, cfg.cols
    mem = np.zeros((cfg.mem_words, C), np.int64) if mem is None else np.array(mem, dtype=np.int64).copy()
    regs = {r: 0 for r in Reg}
    regs[Reg.RQ_MULT] = 1
    A = np.zeros((R, cfg.a_depth, C), np.int64)
    W = np.zeros((cfg.w_depth, C), np.int64)
    B = np.zeros((cfg.b_depth, C), np.int64)
    S = np.zeros((cfg.s_depth, C), np.int64)
    O = np.zeros((cfg.o_depth, C), np.int64)
    P = np.zeros((R, C), np.int64)
    load_end = store_end = mac_end = drain_end = 0
    capture = -10**9
    hold = {"load": 0, "store": 0, "mac": 0, "drain": 0}
    ends = lambda: {"load": load_end, "store": store_end, "mac": mac_end, "drain": drain_end}  # noqa: E731
    t_prev = None
    stall = busy = 0
    marks = {}
    result = dict(error=False, error_code=0)

    def rd(addr):
        addr &= 0xFFFFFFFF
        if addr >= cfg.mem_words:
            raise RefError(3)
        return mem[addr]

    try:
        for i in range(cfg.imem_depth + 1):
            if i >= cfg.imem_depth:
                raise RefError(4)
            word = program[i] if i < len(program) else 0
            earliest = FIRST_ISSUE if t_prev is None else t_prev + 1
            try:
                op, f = isa.decode(word)
            except isa.IsaError:
                raise RefError(1)
            name = op.name
            t = earliest
            mask = f.get("mask", 0)

            def conflict_end(*units):
                e = 0
                for u in units:
                    if mask & hold[u]:
                        e = max(e, ends()[u])
                return e

            if name == "END":
                t = max(t, load_end, store_end, mac_end, drain_end)
                stall += t - earliest
                return dict(result, done=True, cycles=t + 1, busy=busy, stall=stall, mem=mem, marks=marks,
                            O=O, P=P)
            elif name in ("SET", "MARK"):
                if name == "MARK" and f["slot"] >= cfg.mark_depth:
                    raise RefError(2)
            elif name in ("LOAD", "LOAD_A"):
                if name == "LOAD":
                    if f["target"] not in (0, 1, 2):
                        raise RefError(1)
                    depth = {0: cfg.w_depth, 1: 4 * cfg.b_depth, 2: cfg.s_depth}[f["target"]]
                    if f["dst"] + f["count"] > depth:
                        raise RefError(2)
                    words = f["count"]
                else:
                    if not 1 <= f["npix"] <= R:
                        raise RefError(2)
                    words = f["npix"] * regs[Reg.KH] * regs[Reg.KW] * f["ncb"]
                t = max(t, load_end, conflict_end("store", "mac", "drain"))
                load_end = t + words + LOAD_LATENCY
                hold["load"] = mask
            elif name == "STORE":
                if f["src"] + f["count"] > cfg.o_depth:
                    raise RefError(2)
                words = f["count"] * (4 if f["wide"] else 1)
                t = max(t, store_end, conflict_end("load", "mac", "drain"))
                store_end = t + words + STORE_LATENCY
                hold["store"] = mask
            elif name == "COMPUTE":
                if f["mode"] not in (0, 1, 2):
                    raise RefError(1)
                steps = f["nlines"] * (C if f["mode"] == isa.Mode.DENSE else 1)
                if (f["nlines"] == 0 or f["a_base"] + f["nlines"] > cfg.a_depth
                        or (f["mode"] != isa.Mode.MAX and f["w_base"] + steps > cfg.w_depth)
                        or f["o_dst"] + R > cfg.o_depth
                        or (f["last"] and regs[Reg.USE_SKIP] and not regs[Reg.RQ_RAW]
                            and f["s_src"] + R > cfg.s_depth)
                        or (f["last"] and regs[Reg.USE_BIAS] and f["b_src"] >= cfg.b_depth)):
                    raise RefError(2)
                t = max(t, mac_end, conflict_end("load", "store", "drain"))
                if f["last"]:
                    t = max(t, capture + R - steps - array_latency(R, C))
                mac_end = t + steps
                hold["mac"] = mask & 0x0F
                busy += steps
                if f["last"]:
                    capture = t + steps + array_latency(R, C)
                    drain_end = capture + R + REQUANT_LATENCY
                    hold["drain"] = mask & 0xF0
            stall += t - earliest
            t_prev = t
            # ---- functional effect
            if name == "SET":
                if f["reg"] in set(int(r) for r in Reg):
                    regs[Reg(f["reg"])] = f["value"]
            elif name == "MARK":
                marks[f["slot"]] = t
            elif name == "LOAD":
                for j in range(f["count"]):
                    w = rd(f["addr"] + j * f["stride"])
                    d = f["dst"] + j
                    if f["target"] == 0:
                        W[d] = w
                    elif f["target"] == 2:
                        S[d] = w
                    else:
                        e, p = d // 4, d % 4
                        u = (B[e] & 0xFFFFFFFF) & ~(0xFF << (8 * p)) | (w << (8 * p))
                        B[e] = np.where(u >= 2**31, u - 2**32, u)
            elif name == "LOAD_A":
                KH, KW, ncb = regs[Reg.KH], regs[Reg.KW], f["ncb"]
                ih, iw, ow, pa = f["ih0"], f["iw0"], f["ow0"], f["addr"]
                for r in range(f["npix"]):
                    for kh in range(KH):
                        for kw in range(KW):
                            for cb in range(ncb):
                                j = (kh * KW + kw) * ncb + cb
                                line = f["dst"] + j
                                if line >= cfg.a_depth:
                                    raise RefError(2)
                                if 0 <= ih + kh < regs[Reg.IN_H] and 0 <= iw + kw < regs[Reg.IN_W]:
                                    A[r, line] = rd(pa + kh * regs[Reg.STEP_KH] + kw * regs[Reg.STEP_KW] + cb)
                                else:
                                    A[r, line] = regs[Reg.PAD_VALUE] & 0xFF
                    ow += 1
                    if ow == regs[Reg.OUT_W]:
                        ow, ih, iw, pa = 0, ih + regs[Reg.STRIDE_H], -regs[Reg.PAD_W], pa + regs[Reg.STEP_WRAP]
                    else:
                        iw, pa = iw + regs[Reg.STRIDE_W], pa + regs[Reg.STEP_OW]
            elif name == "COMPUTE":
                a = A.copy()
                if regs[Reg.A_SIGNED]:
                    a = np.where(a > 127, a - 256, a)
                w = np.where(W > 127, W - 256, W)
                mode, ab, wb, nl = f["mode"], f["a_base"], f["w_base"], f["nlines"]
                if mode == isa.Mode.DENSE:
                    lin = a[:, ab:ab + nl, :].reshape(R, nl * C)
                    val = lin @ w[wb:wb + nl * C]
                    P = val if not f["acc"] else P + val
                elif mode == isa.Mode.DEPTHWISE:
                    val = (a[:, ab:ab + nl, :] * w[wb:wb + nl][None]).sum(axis=1)
                    P = val if not f["acc"] else P + val
                else:
                    val = a[:, ab:ab + nl, :].max(axis=1)
                    P = val if not f["acc"] else np.maximum(P, val)
                P = ((P + 2**31) % 2**32) - 2**31
                if f["last"]:
                    for r in range(R):
                        v = P[r] + (B[f["b_src"]] if regs[Reg.USE_BIAS] else 0)
                        v = ((v + 2**31) % 2**32) - 2**31
                        if regs[Reg.RQ_RAW]:
                            O[f["o_dst"] + r] = v
                            continue
                        if regs[Reg.USE_SKIP]:
                            sk = S[f["s_src"] + r]
                            if regs[Reg.SKIP_SIGNED]:
                                sk = np.where(sk > 127, sk - 256, sk)
                            v = (v << regs[Reg.ACC_LSHIFT]) + (sk << regs[Reg.SKIP_LSHIFT])
                        if cfg.requant == "dyadic":
                            v = v * regs[Reg.RQ_MULT]
                        O[f["o_dst"] + r] = numerics.saturate(numerics.round_shift(v, regs[Reg.SHIFT]),
                                                              bool(regs[Reg.OUT_SIGNED]))
            elif name == "STORE":
                for j in range(f["count"]):
                    line = O[f["src"] + j] & 0xFFFFFFFF
                    base = (f["addr"] + j * f["stride"]) & 0xFFFFFFFF
                    if f["wide"]:
                        for p in range(4):
                            if base + p >= cfg.mem_words:
                                raise RefError(3)
                            mem[base + p] = (line >> (8 * p)) & 0xFF
                    else:
                        if base >= cfg.mem_words:
                            raise RefError(3)
                        mem[base] = line & 0xFF
        raise RefError(4)  # unreachable
    except RefError as e:
        return dict(done=False, error=True, error_code=e.code, mem=mem, marks=marks)


def ceil_div(a, b):
    return math.ceil(a / b)

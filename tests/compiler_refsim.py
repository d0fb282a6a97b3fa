"""A minimal reference interpreter of docs/architecture.md, used by the compiler tests
(only until/unless f8hw.isasim is available; the tests prefer the real one).

Functional model: executes instructions in program order (correct when the
program has no scratchpad race, which this model checks: every scratchpad
access is an interval in time; two overlapping accesses of different
instructions to the same lines with one writing are a race).  Timing model: the
issue rules, unit ends and resource-mask hazards of the spec.
"""

from __future__ import annotations

import numpy as np

from f8hw import isa
from f8hw.arch import FIRST_ISSUE, LOAD_LATENCY, REQUANT_LATENCY, STORE_LATENCY, ArchConfig, array_latency
from f8hw.isa import LoadTarget, Mode, Reg
from f8hw.numerics import round_shift, saturate


class SimError(Exception):
    pass


def run(arch: ArchConfig, program: list[int], memory: np.ndarray, check_races: bool = True,
        max_instr: int = 10_000_000, trace: list | None = None) -> dict:
    R, C = arch.rows, arch.cols
    lat = array_latency(R, C)
    mem = np.array(memory, dtype=np.uint8, copy=True)
    A = np.zeros((R, arch.a_depth, C), np.uint8)
    W = np.zeros((arch.w_depth, C), np.uint8)
    B = np.zeros((arch.b_depth, 4, C), np.uint8)
    S = np.zeros((arch.s_depth, C), np.uint8)
    O = np.zeros((arch.o_depth, C), np.int64)
    P = np.zeros((R, C), np.int64)
    regs = {int(r): 0 for r in Reg}
    marks = {}
    load_end = store_end = mac_end = drain_end = 0
    capture = -10**9
    load_mask = store_mask = mac_mask = drain_mask = 0
    active = []  # (t0, t1, spad, lo, hi, write, idx)
    races = []
    t_prev = FIRST_ISSUE - 1
    busy = 0

    def access(t0, t1, spad, lo, hi, write, idx):
        if not check_races or t1 <= t0 or hi <= lo:
            return
        for (a0, a1, sp, l2, h2, w2, i2) in active:
            if sp == spad and i2 != idx and (write or w2) and a0 < t1 and t0 < a1 and l2 < hi and lo < h2:
                races.append((idx, i2, spad, (lo, hi), (l2, h2)))
        active.append((t0, t1, spad, lo, hi, write, idx))

    def rng(spad, lo, n, depth):
        if lo < 0 or lo + n > depth:
            raise SimError(f"scratchpad range: {spad} {lo}+{n} > {depth}")

    def rd(addr):
        if not 0 <= addr < len(mem):
            raise SimError(f"main-memory range: read {addr}")
        return mem[addr]

    for idx, word in enumerate(program):
        if idx > max_instr:
            raise SimError("too many instructions")
        op, f = isa.decode(word)
        t = FIRST_ISSUE if idx == 0 else t_prev + 1
        m = f.get("mask", 0)

        def conflicts(t, units):
            for u in units:
                end, msk = {"load": (load_end, load_mask), "store": (store_end, store_mask),
                            "mac": (mac_end, mac_mask), "drain": (drain_end, drain_mask)}[u]
                if m & msk:
                    t = max(t, end)
            return t

        if op.name in ("SET", "MARK"):
            if op.name == "SET":
                regs[f["reg"]] = f["value"]
            else:
                marks[f["slot"]] = t
        elif op.name == "END":
            t = max(t, load_end, store_end, mac_end, drain_end)
            if trace is not None:
                trace.append((idx, op.name, t))
            t_prev = t
            return dict(memory=mem, cycles=t + 1, marks=marks, busy=busy, races=races, instrs=idx + 1)
        elif op.name in ("LOAD", "LOAD_A"):
            t = conflicts(max(t, load_end), ("store", "mac", "drain"))
            if op.name == "LOAD":
                tgt, n = f["target"], f["count"]
                words = [rd(f["addr"] + i * f["stride"]) for i in range(n)]
                if tgt == LoadTarget.W:
                    rng("W", f["dst"], n, arch.w_depth)
                    W[f["dst"]:f["dst"] + n] = words if n else W[f["dst"]:f["dst"]]
                    spad, lo, hi = "W", f["dst"], f["dst"] + n
                elif tgt == LoadTarget.S:
                    rng("S", f["dst"], n, arch.s_depth)
                    S[f["dst"]:f["dst"] + n] = words if n else S[f["dst"]:f["dst"]]
                    spad, lo, hi = "S", f["dst"], f["dst"] + n
                elif tgt == LoadTarget.B:
                    rng("B", 0, (f["dst"] + n + 3) // 4, arch.b_depth)
                    for i, wd in enumerate(words):
                        B[(f["dst"] + i) // 4, (f["dst"] + i) % 4] = wd
                    spad, lo, hi = "B", f["dst"] // 4, (f["dst"] + n + 3) // 4
                else:
                    raise SimError("illegal load target")
                nw = n
            else:
                kh, kw, ncb, npix = regs[Reg.KH], regs[Reg.KW], f["ncb"], f["npix"]
                L = kh * kw * ncb
                if not 1 <= npix <= R:
                    raise SimError("npix")
                rng("A", f["dst"], L, arch.a_depth)
                ih, iw, pa, ow = f["ih0"], f["iw0"], f["addr"], f["ow0"]
                pad = np.full(C, regs[Reg.PAD_VALUE] & 0xFF, np.uint8)
                for r in range(npix):
                    for a in range(kh):
                        for b in range(kw):
                            inside = 0 <= ih + a < regs[Reg.IN_H] and 0 <= iw + b < regs[Reg.IN_W]
                            for cb in range(ncb):
                                j = (a * kw + b) * ncb + cb
                                if inside:
                                    ad = (pa + a * regs[Reg.STEP_KH] + b * regs[Reg.STEP_KW] + cb) % (1 << 32)
                                    A[r, f["dst"] + j] = rd(ad)
                                else:
                                    A[r, f["dst"] + j] = pad
                    ow += 1
                    if ow == regs[Reg.OUT_W]:
                        ow, ih, iw = 0, ih + regs[Reg.STRIDE_H], -regs[Reg.PAD_W]
                        pa += regs[Reg.STEP_WRAP]
                    else:
                        iw += regs[Reg.STRIDE_W]
                        pa += regs[Reg.STEP_OW]
                nw = npix * L
                spad, lo, hi = "A", f["dst"], f["dst"] + L
            load_end = t + nw + LOAD_LATENCY
            load_mask = m
            access(t, load_end, spad, lo, hi, True, idx)
        elif op.name == "STORE":
            t = conflicts(max(t, store_end), ("load", "mac", "drain"))
            n = f["count"]
            rng("O", f["src"], n, arch.o_depth)
            for i in range(n):
                lane = O[f["src"] + i]
                base = f["addr"] + i * f["stride"]
                if f["wide"]:
                    u = lane & 0xFFFFFFFF
                    for j in range(4):
                        if not 0 <= base + j < len(mem):
                            raise SimError(f"main-memory range: write {base + j}")
                        mem[base + j] = (u >> (8 * j)) & 0xFF
                else:
                    if not 0 <= base < len(mem):
                        raise SimError(f"main-memory range: write {base}")
                    mem[base] = lane & 0xFF
            store_end = t + n * (4 if f["wide"] else 1) + STORE_LATENCY
            store_mask = m
            access(t, store_end, "O", f["src"], f["src"] + n, False, idx)
        elif op.name == "COMPUTE":
            mode, nl = f["mode"], f["nlines"]
            steps = nl * C if mode == Mode.DENSE else nl
            t = conflicts(max(t, mac_end), ("load", "store", "drain"))
            if f["last"]:
                t = max(t, capture + R - steps - lat)
            sg = regs[Reg.A_SIGNED]
            rng("A", f["a_base"], nl, arch.a_depth)
            a = A[:, f["a_base"]:f["a_base"] + nl].astype(np.int64)
            if sg:
                a = np.where(a >= 128, a - 256, a)
            if mode == Mode.DENSE:
                rng("W", f["w_base"], nl * C, arch.w_depth)
                w = W[f["w_base"]:f["w_base"] + nl * C].view(np.int8).astype(np.int64)
                s = a.reshape(R, nl * C) @ w
                P = (P if f["acc"] else 0) + s
                wr = (f["w_base"], f["w_base"] + nl * C)
            elif mode == Mode.DEPTHWISE:
                rng("W", f["w_base"], nl, arch.w_depth)
                w = W[f["w_base"]:f["w_base"] + nl].view(np.int8).astype(np.int64)
                s = np.einsum("rkc,kc->rc", a, w)
                P = (P if f["acc"] else 0) + s
                wr = (f["w_base"], f["w_base"] + nl)
            elif mode == Mode.MAX:
                if nl:
                    mx = a.max(axis=1)
                    P = np.maximum(P, mx) if f["acc"] else mx
                elif not f["acc"]:
                    raise SimError("MAX with acc=0 and no lines")
                wr = None
            else:
                raise SimError("illegal mode")
            if np.abs(P).max(initial=0) > 2**31 - 1:
                raise SimError(f"accumulator overflow at instruction {idx}")
            busy += steps
            access(t, t + steps, "A", f["a_base"], f["a_base"] + nl, False, idx)
            if wr:
                access(t, t + steps, "W", wr[0], wr[1], False, idx)
            mac_end = t + steps
            mac_mask = m & 0x0F
            if f["last"]:
                capture = t + steps + lat
                drain_end = capture + R + REQUANT_LATENCY
                drain_mask = m & 0xF0
                if f["o_dst"] + R > arch.o_depth:
                    raise SimError("o_dst + R > o_depth")
                v = P.copy()
                if regs[Reg.USE_BIAS]:
                    rng("B", f["b_src"], 1, arch.b_depth)
                    bb = B[f["b_src"]].astype(np.int64)
                    bias = (bb[0] | bb[1] << 8 | bb[2] << 16 | bb[3] << 24)
                    bias = np.where(bias >= 2**31, bias - 2**32, bias)
                    v = v + bias[None, :]
                    access(capture, drain_end, "B", f["b_src"], f["b_src"] + 1, False, idx)
                if regs[Reg.RQ_RAW]:
                    out = ((v + 2**31) % 2**32) - 2**31
                else:
                    if regs[Reg.USE_SKIP]:
                        rng("S", f["s_src"], R, arch.s_depth)
                        sk = S[f["s_src"]:f["s_src"] + R].astype(np.int64)
                        if regs[Reg.SKIP_SIGNED]:
                            sk = np.where(sk >= 128, sk - 256, sk)
                        v = (v << regs[Reg.ACC_LSHIFT]) + (sk << regs[Reg.SKIP_LSHIFT])
                        access(capture, drain_end, "S", f["s_src"], f["s_src"] + R, False, idx)
                    out = saturate(round_shift(v, regs[Reg.SHIFT]), bool(regs[Reg.OUT_SIGNED]))
                O[f["o_dst"]:f["o_dst"] + R] = out
                access(capture, drain_end, "O", f["o_dst"], f["o_dst"] + R, True, idx)
        else:
            raise SimError(f"illegal opcode {op.name}")
        if trace is not None:
            trace.append((idx, op.name, t))
        if check_races:
            active[:] = [x for x in active if x[1] > t]
        t_prev = t
    raise SimError("program ended without END")

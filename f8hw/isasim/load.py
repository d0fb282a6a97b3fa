"""LOAD and LOAD_A: strided copies into W/B/S, and the LOAD_A address generator (im2col with padding,
tap gather, window reuse), with their errors in access order and their accesses for the race checker."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from f8hw.isa import ErrorCode, LoadTarget, Reg
from f8hw.isasim.machine import M32, Machine
from f8hw.isasim.races import Access
from f8hw.isasim.result import op_error

__all__ = ["load", "load_a", "load_a_words"]


def _gather(v: int, C: int) -> tuple[int, int]:
    """A_GATHER register -> (G, P): G bytes kept per word, P words per A line (off: (C, 1))."""
    return (v, C // v) if 1 <= v <= C else (C, 1)


def _diag(regs, KW: int, C: int) -> int:
    """LOAD_A window reuse: STRIDE_W if A_DIAG is on and applies (gather off, 1 <= STRIDE_W <= KW), else 0."""
    if regs[Reg.A_DIAG] == 0 or 1 <= regs[Reg.A_GATHER] < C:
        return 0
    sw = regs[Reg.STRIDE_W]
    return sw if 1 <= sw <= KW else 0


def _eff16(v: int) -> int:
    """Kernel extent as the LOAD_A counters see it (16-bit 'last' counter; 0 = empty)."""
    return 0 if v == 0 else ((v - 1) & 0xFFFF) + 1


def load_a_words(regs: dict, f: dict, C: int) -> int:
    """Main-memory words a LOAD_A reads (the load unit's busy time)."""
    KH, KW = _eff16(regs[Reg.KH]), _eff16(regs[Reg.KW])
    sw = _diag(regs, KW, C)
    if sw:
        return KH * f["ncb"] * (sw * (f["npix"] - 1) + KW) if KW else 0
    return f["npix"] * KH * KW * f["ncb"]


@lru_cache(maxsize=256)
def _grid(KH: int, KW: int, ncb: int, step_kh: int, step_kw: int):
    """(kh, kw, word offset) of the KH*KW*ncb words of one window, in access order (read-only arrays)."""
    kh = np.repeat(np.arange(KH, dtype=np.int64), KW * ncb)
    kw = np.tile(np.repeat(np.arange(KW, dtype=np.int64), ncb), KH)
    cb = np.tile(np.arange(ncb, dtype=np.int64), KH * KW)
    off = kh * step_kh + kw * step_kw + cb
    for a in (kh, kw, off):
        a.flags.writeable = False
    return kh, kw, off


def load(m: Machine, pc: int, f: dict, t: int) -> None:
    n = f["count"]
    if n == 0:
        return
    addrs = (f["addr"] + np.arange(n, dtype=np.int64) * f["stride"]) & M32
    m.mem_check(addrs, pc, "LOAD", t + 1)      # word i addresses memory at t+1+i
    rows = m.mem[addrs]
    dst, tgt = f["dst"], f["target"]
    if tgt == LoadTarget.W:
        m.W[dst:dst + n] = rows
        what, l0, l1 = "W", dst, dst + n
    elif tgt == LoadTarget.S:
        m.S[dst:dst + n] = rows
        what, l0, l1 = "S", dst, dst + n
    else:
        pos = dst + np.arange(n)
        m.B8[pos // 4, :, pos % 4] = rows
        what, l0, l1 = "B", dst // 4, (dst + n - 1) // 4 + 1
    if m.races is not None:
        # word i: memory read at t+1+i, scratchpad write at t+2+i
        m.races.add(Access(pc, "mem", False, 0, 1, int(addrs.min()), int(addrs.max()) + 1, t + 1, 0, t + n, 0,
                            addrs, t + 1 + np.arange(n, dtype=np.int64)))
        m.races.add(Access(pc, what, True, 0, 1, l0, l1, t + 2, 0, t + n + 1, 0))


def _load_a_first_error(pc: int, t: int, i_mem: int | None, i_line: int | None, mem_msg, line_msg) -> None:
    """Raise LOAD_A's first error in access order: word i's memory read fails at t+1+i, a write of
    word i past a_depth at t+2+i, so the memory error wins a tie (i_mem <= i_line + 1)."""
    if i_mem is not None and (i_line is None or i_mem <= i_line + 1):
        raise op_error(ErrorCode.MEM, pc, "LOAD_A", mem_msg(), t + 2 + i_mem)
    if i_line is not None:
        raise op_error(ErrorCode.SPAD, pc, "LOAD_A", line_msg(), t + 3 + i_line)


def load_a(m: Machine, pc: int, f: dict, t: int) -> None:
    regs = m.regs
    arch = m.arch
    KH, KW, ncb = _eff16(regs[Reg.KH]), _eff16(regs[Reg.KW]), f["ncb"]
    L = KH * KW * ncb
    if L == 0:
        return
    npix, dst = f["npix"], f["dst"]
    sw = _diag(regs, KW, m.C)
    if sw:
        _load_a_diag(m, pc, f, t, KH, KW, ncb, sw)
        return
    G, P = _gather(regs[Reg.A_GATHER], m.C)
    NL = -(-L // P)                         # A lines per pixel
    in_h, in_w, out_w = regs[Reg.IN_H], regs[Reg.IN_W], regs[Reg.OUT_W]
    # pixel walk (scalar; npix <= rows)
    ih, iw, ow, pa = f["ih0"], f["iw0"], f["ow0"], f["addr"]
    ihs, iws, pas = [], [], []
    out_w_u = out_w & M32
    for _ in range(npix):
        ihs.append(ih)
        iws.append(iw)
        pas.append(pa)
        ow = (ow + 1) & M32
        if ow == out_w_u:
            ow, ih, iw, pa = 0, ih + regs[Reg.STRIDE_H], -regs[Reg.PAD_W], pa + regs[Reg.STEP_WRAP]
        else:
            iw, pa = iw + regs[Reg.STRIDE_W], pa + regs[Reg.STEP_OW]
    kh, kw, off = _grid(KH, KW, ncb, regs[Reg.STEP_KH], regs[Reg.STEP_KW])
    ih_a = np.asarray(ihs, dtype=np.int64)[:, None] + kh[None, :]
    iw_a = np.asarray(iws, dtype=np.int64)[:, None] + kw[None, :]
    valid = (ih_a >= 0) & (ih_a < in_h) & (iw_a >= 0) & (iw_a < in_w)        # (npix, L)
    addrs = (np.asarray(pas, dtype=np.int64)[:, None] + off[None, :]) & M32  # (npix, L)
    all_valid = bool(valid.all())
    # errors in access order (pixel, kh, kw, cb): a memory error at access i is seen at t+1+i, a line
    # past a_depth at access i at t+2+i (data phase); the earlier one stops the run (memory on a tie)
    i_mem = None
    bad_mem = addrs >= arch.mem_words
    if not all_valid:
        bad_mem &= valid
    if bad_mem.any():
        i_mem = int(np.flatnonzero(bad_mem.reshape(-1))[0])
    i_line = None
    if dst + NL > arch.a_depth:
        i_line = max(0, arch.a_depth - dst) * P   # first word whose line is past a_depth
    _load_a_first_error(
        pc, t, i_mem, i_line,
        lambda: f"access {i_mem} (pixel {i_mem // L}) reads main-memory word "
                f"{int(addrs.reshape(-1)[i_mem])} >= mem_words {arch.mem_words}",
        lambda: f"dst {dst} + {NL} lines (KH*KW*ncb = {KH}*{KW}*{ncb} words, {P} per line) > a_depth {arch.a_depth}")
    if all_valid:
        m.ensure(int(addrs.max()) + 1)
        data = m.mem[addrs]                                                   # (npix, L, C)
    elif valid.any():
        m.ensure(int(addrs[valid].max()) + 1)
        data = m.mem[np.where(valid, addrs, int(addrs[valid][0]))]
        data[~valid] = regs[Reg.PAD_VALUE] & 0xFF
    else:
        data = np.full((npix, L, m.C), regs[Reg.PAD_VALUE] & 0xFF, np.uint8)
    if P > 1 or G < m.C:
        # tap gather: bytes [0, G) of word i -> line i // P, bytes (i % P) * G ..; the rest of a line is 0
        g = np.zeros((npix, NL * P, G), np.uint8)
        g[:, :L] = data[:, :, :G]
        data = np.zeros((npix, NL, m.C), np.uint8)
        data[:, :, :P * G] = g.reshape(npix, NL, P * G)
    m.A[:npix, dst:dst + NL] = data
    if m.races is not None:
        if valid.any():
            seq = t + 1 + np.arange(npix * L, dtype=np.int64).reshape(npix, L)
            ra, rt = (addrs.reshape(-1), seq.reshape(-1)) if all_valid else (addrs[valid], seq[valid])
            m.races.add(Access(pc, "mem", False, 0, 1, int(ra.min()), int(ra.max()) + 1, int(rt.min()), 0,
                                int(rt.max()), 0, ra, rt))
        # bank r (pixel r) is written at t+2+r*L .. t+1+(r+1)*L
        # (tap gather: a line is written at its last word, inside the same window)
        m.races.add(Access(pc, "A", True, 0, npix, dst, dst + NL, t + 2, L, t + 1 + L, L))


def _load_a_diag(m: Machine, pc: int, f: dict, t: int, KH: int, KW: int, ncb: int, sw: int) -> None:
    """LOAD_A with window reuse (A_DIAG): words (kh, j, cb), j in 0..J-1, J = sw*(npix-1) + KW, are read
    once each (word i at t+1+i) and written at t+2+i to every bank r < npix with 0 <= j - sw*r < KW,
    line dst + (kh*KW + j - sw*r)*ncb + cb."""
    regs, arch, C = m.regs, m.arch, m.C
    npix, dst = f["npix"], f["dst"]
    J = sw * (npix - 1) + KW
    n = KH * J * ncb
    kh = np.repeat(np.arange(KH, dtype=np.int64), J * ncb)
    j = np.tile(np.repeat(np.arange(J, dtype=np.int64), ncb), KH)
    cb = np.tile(np.arange(ncb, dtype=np.int64), KH * J)
    ih = f["ih0"] + kh
    iw = f["iw0"] + j
    valid = (ih >= 0) & (ih < regs[Reg.IN_H]) & (iw >= 0) & (iw < regs[Reg.IN_W])
    addrs = (f["addr"] + kh * regs[Reg.STEP_KH] + j * regs[Reg.STEP_KW] + cb) & M32
    # bank r of word i: relative column k = j - sw*r in [0, KW) -> line dst + (kh*KW + k)*ncb + cb
    r = np.arange(npix, dtype=np.int64)
    k = j[:, None] - sw * r[None, :]                                          # (n, npix)
    hit = (k >= 0) & (k < KW)
    lines = dst + (kh[:, None] * KW + k) * ncb + cb[:, None]
    # errors in access order: memory at t+1+i, a line past a_depth at t+2+i (memory on a tie)
    bad_mem = valid & (addrs >= arch.mem_words)
    i_mem = int(np.flatnonzero(bad_mem)[0]) if bad_mem.any() else None
    bad_line = (hit & (lines >= arch.a_depth)).any(axis=1)
    i_line = int(np.flatnonzero(bad_line)[0]) if bad_line.any() else None
    _load_a_first_error(
        pc, t, i_mem, i_line,
        lambda: f"access {i_mem} (A_DIAG) reads main-memory word {int(addrs[i_mem])} >= mem_words {arch.mem_words}",
        lambda: f"A_DIAG word {i_line} writes a line past a_depth {arch.a_depth} "
                f"(dst {dst} + KH*KW*ncb = {KH}*{KW}*{ncb} lines)")
    data = np.full((n, C), regs[Reg.PAD_VALUE] & 0xFF, np.uint8)
    if valid.any():
        m.ensure(int(addrs[valid].max()) + 1)
        data[valid] = m.mem[addrs[valid]]
    wi, wr = np.nonzero(hit)
    m.A[wr, lines[wi, wr]] = data[wi]
    if m.races is not None:
        if valid.any():
            seq = t + 1 + np.arange(n, dtype=np.int64)
            ra, rt = addrs[valid], seq[valid]
            m.races.add(Access(pc, "mem", False, 0, 1, int(ra.min()), int(ra.max()) + 1, int(rt.min()), 0,
                                int(rt.max()), 0, ra, rt))
        # bank r is written from word (0, sw*r, 0) to word (KH-1, sw*r + KW-1, ncb-1):
        # t+2+r*sw*ncb .. t+1+((KH-1)*J + KW)*ncb + r*sw*ncb
        d = sw * ncb
        m.races.add(Access(pc, "A", True, 0, npix, dst, dst + KH * KW * ncb, t + 2, d,
                            t + 1 + ((KH - 1) * J + KW) * ncb, d))

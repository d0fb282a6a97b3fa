"""STORE: output lines -> main memory (low bytes, or 32/64-bit lanes byte-planar), and its accesses."""

from __future__ import annotations

import numpy as np

from f8hw.isa import store_planes
from f8hw.isasim.machine import M32, Machine
from f8hw.isasim.races import Access

__all__ = ["store"]


def store(m: Machine, pc: int, f: dict, t: int) -> None:
    n = f["count"]
    if n == 0:
        return
    src, planes = f["src"], store_planes(f, m.arch.flexible)
    base = (f["addr"] + np.arange(n, dtype=np.int64) * f["stride"]) & M32
    O8 = m.O[src:src + n].view(np.uint8).reshape(n, m.C, 8)   # little-endian bytes of each lane
    if planes > 1:
        addrs = ((base[:, None] + np.arange(planes, dtype=np.int64)[None, :]) & M32).reshape(-1)
        data = O8[:, :, :planes].transpose(0, 2, 1).reshape(planes * n, m.C)
    else:
        addrs = base
        data = O8[:, :, 0]
    m.mem_check(addrs, pc, "STORE", t + 2)     # word i is written at t+2+i
    m.mem[addrs] = data
    if m.races is not None:
        words = len(addrs)
        # word i: O line read at t+1+i (per line), memory write at t+2+i
        m.races.add(Access(pc, "O", False, 0, 1, src, src + n, t + 1, 0, t + words, 0))
        m.races.add(Access(pc, "mem", True, 0, 1, int(addrs.min()), int(addrs.max()) + 1, t + 2, 0, t + words + 1, 0,
                            addrs, t + 2 + np.arange(words, dtype=np.int64)))

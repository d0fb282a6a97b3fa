"""The ISA simulator's machine state: scratchpads, registers, accumulators and main memory."""

from __future__ import annotations

import numpy as np

from f8hw.arch import ArchConfig, array_latency
from f8hw.errors import F8Error
from f8hw.isa import FORMAT_REGS, ErrorCode, Reg
from f8hw.isasim.races import RaceChecker
from f8hw.isasim.result import IsaSimError

__all__ = ["Machine", "M32"]

M32 = 0xFFFFFFFF
"""Main-memory addresses and LOAD_A counters wrap at 32 bits."""


class Machine:
    """Scratchpads, registers and main memory of one run (main memory grows on demand up to mem_words)."""

    def __init__(self, memory: np.ndarray, arch: ArchConfig, check_races: bool):
        if not isinstance(arch, ArchConfig):
            raise TypeError("arch must be an ArchConfig")
        R, C = arch.rows, arch.cols
        mem = np.asarray(memory)
        if mem.ndim != 2 or mem.shape[1] != C:
            raise F8Error(f"memory image must have shape (words, {C}), got {mem.shape}")
        if mem.dtype != np.uint8:
            raise F8Error(f"memory image must be uint8, got {mem.dtype}")
        if len(mem) > arch.mem_words:
            raise F8Error(f"memory image has {len(mem)} words, the accelerator's main memory {arch.mem_words}")
        self.arch = arch
        self.R, self.C = R, C
        self.mem = np.array(mem, dtype=np.uint8, order="C", copy=True)
        self.A = np.zeros((R, arch.a_depth, C), np.uint8)
        self.W = np.zeros((arch.w_depth, C), np.uint8)
        self.B8 = np.zeros((arch.b_depth, C, 4), np.uint8)      # little-endian bytes of the int32 lanes
        self.S = np.zeros((arch.s_depth, C), np.uint8)
        self.O = np.zeros((arch.o_depth, C), np.int64)           # lanes (int32 values; acc_bits when flexible)
        self.P = np.zeros((R, C), np.int64)                       # accumulators (arch.acc_bits-bit values)
        self.regs = {int(r): 0 for r in Reg}
        self.regs[int(Reg.RQ_MULT)] = 1
        self.valid_regs = frozenset(int(r) for r in Reg if arch.flexible or r not in FORMAT_REGS)
        self.lat = array_latency(R, C)
        self.races = RaceChecker() if check_races else None

    # ---- main memory
    def ensure(self, hi: int) -> None:
        """Grow the memory array so that word hi-1 exists (zeros: the rest of main memory)."""
        n = len(self.mem)
        if hi > n:
            new = min(self.arch.mem_words, max(hi, 2 * n, 1024))
            grown = np.zeros((new, self.C), np.uint8)
            grown[:n] = self.mem
            self.mem = grown

    def mem_check(self, addrs: np.ndarray, pc: int, what: str, seen0: int, valid=None) -> None:
        """Raise error 3 at the first access >= mem_words (access k is seen at cycle seen0 + k)."""
        if addrs.size == 0:
            return
        bad = addrs >= self.arch.mem_words
        if valid is not None:
            bad &= valid
        if bad.any():
            k = int(np.flatnonzero(bad.reshape(-1))[0])
            raise IsaSimError(ErrorCode.MEM, pc, f"{what}: access {k} at main-memory word "
                                                 f"{int(addrs.reshape(-1)[k])} >= mem_words {self.arch.mem_words}",
                              seen0 + k + 1)
        top = int(addrs.max() if valid is None else (addrs[valid].max() if valid.any() else -1)) + 1
        self.ensure(top)

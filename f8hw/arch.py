"""Accelerator configuration and its timing model: the one place both derive from.

The generator (f8hw.hw), the compiler and the ISA simulator all take an
``ArchConfig``.  The timing constants below are those of the generated
microarchitecture; the ISA simulator computes cycles from them and the RTL is
verified to take exactly that many cycles (docs/architecture.md, "Timing").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from f8hw.errors import F8Error


class ArchError(F8Error):
    """An accelerator parameter is out of range; the message names it."""


MAX_DIM = 64          # largest rows or cols of the MAC array
MAX_DEPTH = 1 << 16   # largest scratchpad depth (lines / entries)
ADDR_BITS = 32        # main-memory word address width

# --- timing (cycles); see docs/architecture.md "Timing" -----------------------
FIRST_ISSUE = 1        # instruction 0 can issue at cycle 1 (cycle 0 fetches it)
LOAD_LATENCY = 2       # a LOAD/LOAD_A of n words issued at t ends at t + n + LOAD_LATENCY
STORE_LATENCY = 2      # a STORE of n words issued at t ends at t + n + STORE_LATENCY
REQUANT_LATENCY = 4    # a drain captured at t ends at t + rows + REQUANT_LATENCY (the lane's pipeline registers)


def array_latency(rows: int, cols: int) -> int:
    """Cycles from a COMPUTE's MAC-phase end (mac_end = t + steps) to its capture.

    Microarchitecture (f8hw/hw/compute.py): the sequencer issues step k at
    t + 1 + k; the scratchpads answer one cycle later, so PE row 0 performs its
    last step at t + steps + 1 and its shadow registers hold the result from
    t + steps + 2 = capture.  Weights move down one row per cycle and the
    activations are broadcast along a row, so row r finishes r cycles later and
    the drain reads it at capture + r, exactly when it becomes valid: the
    latency is 2 whatever the array size.
    """
    return 2


@dataclass(frozen=True)
class ArchConfig:
    """Every parameter of one generated accelerator."""

    rows: int = 16            # R: MAC array rows (output pixels of a tile)
    cols: int = 16            # C: MAC array columns (output channels of a tile)
    a_depth: int = 1024       # lines (of bus_bytes) per activation bank; one bank per row
    w_depth: int = 4096       # weight entries (cols bytes each)
    b_depth: int = 64         # bias entries (cols x int32 each)
    s_depth: int = 64         # skip lines (cols bytes each)
    o_depth: int = 64         # output lines (cols x 32 bit each)
    mem_words: int = 1 << 20  # main-memory words (bus_bytes each) of the sim-only top
    imem_depth: int = 1 << 16  # instruction words of the sim-only top
    mark_depth: int = 256     # MARK cycle-stamp slots
    requant: str = "shift"    # "shift" (F8Net) or "dyadic" (INT32-multiplier baseline)

    def __post_init__(self):
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v <= MAX_DIM:
                raise ArchError(f"{name} must be an integer in 1..{MAX_DIM}, got {v!r}")
        for name in ("a_depth", "w_depth", "b_depth", "s_depth", "o_depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 2 <= v <= MAX_DEPTH or v & (v - 1):
                raise ArchError(f"{name} must be a power of two in 2..{MAX_DEPTH}, got {v!r}")
        if self.o_depth < self.rows or self.s_depth < self.rows:
            raise ArchError(f"o_depth and s_depth must hold at least one tile ({self.rows} rows)")
        for name, hi in (("mem_words", 1 << ADDR_BITS), ("imem_depth", 1 << 24), ("mark_depth", 1 << 16)):
            v = getattr(self, name)
            if not isinstance(v, int) or not 2 <= v <= hi or v & (v - 1):
                raise ArchError(f"{name} must be a power of two in 2..{hi}, got {v!r}")
        if self.requant not in ("shift", "dyadic"):
            raise ArchError(f"requant must be 'shift' or 'dyadic', got {self.requant!r}")

    @property
    def bus_bytes(self) -> int:
        """Bytes per main-memory word = channel-block size = cols."""
        return self.cols

    @property
    def array(self) -> str:
        return f"{self.rows}x{self.cols}"

    def to_dict(self) -> dict:
        return asdict(self)


def parse_array(text: str) -> tuple[int, int]:
    """'16x16' -> (16, 16), with a one-line error for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise ArchError(f"--array must look like RxC (e.g. 16x16), got {text!r}")
    rows, cols = int(m.group(1)), int(m.group(2))
    for name, v in (("rows", rows), ("cols", cols)):
        if not 1 <= v <= MAX_DIM:
            raise ArchError(f"--array {text}: {name} must be in 1..{MAX_DIM}, got {v}")
    return rows, cols

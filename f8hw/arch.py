"""Accelerator configuration and its timing model: the one place both derive from.

The generator (f8hw.hw), the compiler and the ISA simulator all take an
``ArchConfig``.  The timing constants below are those of the generated
microarchitecture; the ISA simulator computes cycles from them and the RTL is
verified to take exactly that many cycles (docs/architecture.md, "Timing").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property

from f8hw.errors import F8Error


class ArchError(F8Error):
    """An accelerator parameter is out of range; the message names it."""


MAX_DIM = 64          # largest rows or cols of the MAC array
MAX_DEPTH = 1 << 16   # largest scratchpad depth (lines / entries)
ADDR_BITS = 32        # main-memory word address width

# --- timing (cycles); see docs/architecture.md "Timing" -----------------------
FIRST_ISSUE = 2        # instruction 0 can issue at cycle 2 (cycle 0 fetches it, cycle 1 predecodes it)
LOAD_LATENCY = 2       # a LOAD/LOAD_A of n words issued at t ends at t + n + LOAD_LATENCY
STORE_LATENCY = 2      # a STORE of n words issued at t ends at t + n + STORE_LATENCY
REQUANT_LATENCY = 4    # a drain captured at t ends at t + rows + REQUANT_LATENCY (every lane: INT8 and FP8)
PE_LATENCY = 2         # PE stages from operands to accumulator: multiply (product register), accumulate

INT8_ONLY = ("int8",)
FLEX_LSHIFT_BITS = 7
"""Alignment shifts (ACC_LSHIFT, SKIP_LSHIFT) of a flexible build: unit differences reach
2 * (31 + 9) + 16 = 96 (fl ranges of f8hw.numerics), so 7 bits; an INT8-only build keeps 4."""


def array_latency(rows: int, cols: int) -> int:
    """Cycles from a COMPUTE's MAC-phase end (mac_end = t + steps) to its capture.

    Microarchitecture (f8hw/hw/compute.py): the sequencer issues step k at
    t + 1 + k; the scratchpads answer one cycle later (t + 2 + k), where PE row 0
    multiplies; the PE's PE_LATENCY stages (multiply, accumulate) put the last
    step's result into its shadow registers from t + steps + 1 + PE_LATENCY =
    capture.  Weights move down one row per cycle and the activations are
    broadcast along a row, so row r finishes r cycles later and the drain reads
    it at capture + r, exactly when it becomes valid: the latency is
    1 + PE_LATENCY = 3 whatever the array size.
    """
    return 1 + PE_LATENCY


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
    formats: tuple[str, ...] = INT8_ONLY  # operand/output formats (f8hw.hw.fpe.check_formats), INT8 first

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
        if self.formats != INT8_ONLY:
            from f8hw.hw.fpe import check_formats  # the one validator (imports amaranth: only when flexible)

            object.__setattr__(self, "formats", check_formats(self.formats))
            if self.requant != "shift":
                raise ArchError("formats other than int8 need requant 'shift' (the dyadic baseline is INT8 only)")
            from f8hw.numerics import MIXED_ACC_BITS

            if self.acc_bits > MIXED_ACC_BITS:
                raise ArchError(f"formats {','.join(self.formats)} need a {self.acc_bits}-bit accumulator, beyond the "
                                f"{MIXED_ACC_BITS} bits of the exact mixed-format contract (leave out e5m2)")

    @property
    def flexible(self) -> bool:
        """True when the build supports a format beside INT8 (format registers, wide accumulators)."""
        return self.formats != INT8_ONLY

    @cached_property
    def acc_bits(self) -> int:
        """Accumulator width: numerics.ACC_BITS (32) for INT8, f8hw.hw.fpe.acc_bits(formats) when flexible."""
        if not self.flexible:
            from f8hw.numerics import ACC_BITS

            return ACC_BITS
        from f8hw.hw.fpe import acc_bits

        return acc_bits(self.formats)

    @cached_property
    def fp8_shift_bits(self) -> int:
        """Signed width of the FP8 lane's SHIFT (f8hw.hw.fp8requant.shift_bits); 0 without an FP8 format."""
        if not self.flexible:
            return 0
        from f8hw.hw.fp8requant import shift_bits

        return shift_bits(self.formats)

    @property
    def lshift_bits(self) -> int:
        """Bits of ACC_LSHIFT / SKIP_LSHIFT the lanes use (INT8: numerics.LSHIFT_BITS = 4)."""
        from f8hw.numerics import LSHIFT_BITS

        return FLEX_LSHIFT_BITS if self.flexible else LSHIFT_BITS

    @property
    def bus_bytes(self) -> int:
        """Bytes per main-memory word = channel-block size = cols."""
        return self.cols

    @property
    def array(self) -> str:
        return f"{self.rows}x{self.cols}"

    def to_dict(self) -> dict:
        """The parameters; formats only when not the default (so INT8 manifests keep their bytes)."""
        d = asdict(self)
        if not self.flexible:
            del d["formats"]
        else:
            d["formats"] = list(self.formats)
        return d


def parse_formats(text: str) -> tuple[str, ...]:
    """'int8,e2m5' -> ("int8", "e2m5"), validated by check_formats (one-line ArchError otherwise)."""
    names = tuple(t.strip().lower() for t in str(text).split(",") if t.strip())
    if names == INT8_ONLY:
        return INT8_ONLY
    from f8hw.hw.fpe import check_formats

    try:
        return check_formats(names)
    except ArchError as e:
        raise ArchError(f"--formats {text}: {e}") from None


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

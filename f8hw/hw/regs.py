"""The SET configuration registers as one struct (names and numbers from isa.Reg)."""

from amaranth.hdl import signed
from amaranth.lib import data

from f8hw import isa

REGS = data.StructLayout({r.name.lower(): signed(32) for r in isa.Reg if r not in isa.FORMAT_REGS})
"""The INT8 build's registers; a flexible build has FMT_REGS beside them (so INT8 Verilog keeps its bytes)."""
FMT_REGS = data.StructLayout({r.name.lower(): signed(32) for r in isa.Reg if r in isa.FORMAT_REGS})
"""The format registers of a flexible build (A_FMT, W_FMT, SKIP_FMT, OUT_FMT, BIAS64)."""

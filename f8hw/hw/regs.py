"""The SET configuration registers as one struct (names and numbers from isa.Reg)."""

from amaranth.hdl import signed
from amaranth.lib import data

from f8hw import isa

REGS = data.StructLayout({r.name.lower(): signed(32) for r in isa.Reg if r not in isa.FORMAT_REGS})
"""The INT8 build's registers (the format registers come with the flexible RTL)."""

"""Scratchpads (A banks, W, B, S, O): simple dual-port RAMs, 1-cycle synchronous read.

Two interchangeable implementations behind one set of port signals:
* ``"amaranth"``: lib.memory.Memory (used by Amaranth's simulator in the tests);
* ``"verilog"``: an instance of the hand-written ``f8hw_spad.v`` (used for the
  emitted Verilog: Amaranth would otherwise unroll the zero initialization of
  every scratchpad word into the netlist, which dominated generation time and
  size -- 2.3 MB / 18 s for 16x16).  Both read the old word on a same-cycle write.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import memory

from f8hw.arch import ArchError
from f8hw.hw.common import clog2

SPAD_MODULE = "f8hw_spad"
IMPLS = ("amaranth", "verilog")


class SpadPorts:
    """raddr/rdata (read port) and waddr/wdata/wen (write port, one enable per gran bits)."""

    def __init__(self, name: str, width: int, depth: int, gran: int | None = None):
        self.width, self.depth = width, depth
        self.gran = width if gran is None else gran
        if self.width % self.gran:
            raise ArchError(f"scratchpad {name}: width {width} is not a multiple of {self.gran}")
        ab = clog2(depth)
        self.name = name
        self.raddr = Signal(ab, name=f"{name}_raddr")
        self.rdata = Signal(width, name=f"{name}_rdata")
        self.waddr = Signal(ab, name=f"{name}_waddr")
        self.wdata = Signal(width, name=f"{name}_wdata")
        self.wen = Signal(width // self.gran, name=f"{name}_wen")


def add_spad(m: Module, impl: str, name: str, width: int, depth: int, gran: int | None = None) -> SpadPorts:
    if impl not in IMPLS:
        raise ArchError(f"scratchpad implementation must be one of {IMPLS}, got {impl!r}")
    p = SpadPorts(name, width, depth, gran)
    if impl == "amaranth":
        mem = memory.Memory(shape=width, depth=depth, init=[])
        m.submodules[name] = mem
        wp = mem.write_port(granularity=p.gran if p.gran != width else None)
        rp = mem.read_port()
        m.d.comb += [wp.addr.eq(p.waddr), wp.data.eq(p.wdata), wp.en.eq(p.wen),
                     rp.addr.eq(p.raddr), p.rdata.eq(rp.data)]
    else:
        m.submodules[name] = Instance(
            SPAD_MODULE, p_WIDTH=width, p_DEPTH=depth, p_ABITS=clog2(depth), p_GRAN=p.gran,
            i_clk=ClockSignal(), i_raddr=p.raddr, o_rdata=p.rdata, i_waddr=p.waddr, i_wdata=p.wdata, i_wen=p.wen)
    return p

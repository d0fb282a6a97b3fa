"""STORE unit: output lines -> main memory (low byte of each lane, or 4 byte-planar words).

Issue at t; word i reads its O line at t + 1 + i and is written to main
memory at t + 2 + i (visible from t + 3 + i): busy t+1 .. t+words+1,
store_end = t + words + STORE_LATENCY (2).  A flexible build's O lanes are 64-bit and
``wide64`` stores all 8 bytes of each lane (8 planes per line).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from f8hw import isa
from f8hw.arch import ADDR_BITS, ArchConfig
from f8hw.hw.common import clog2
from f8hw.hw.isadec import field


class StoreUnit(wiring.Component):
    def __init__(self, cfg: ArchConfig):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("StoreUnit needs an ArchConfig")
        self.cfg = cfg
        C = cfg.cols
        self.lane_bytes = 8 if cfg.flexible else 4
        super().__init__({
            "issue": In(1),
            "instr": In(isa.INSTR_BITS),
            "o_raddr": Out(clog2(cfg.o_depth)),
            "o_rdata": In(8 * self.lane_bytes * C),
            "mem_waddr": Out(ADDR_BITS),
            "mem_wdata": Out(8 * C),
            "mem_wen": Out(1),
            "busy": Out(1),
            "err": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C = cfg.cols
        ins = self.instr
        memw = clog2(cfg.mem_words)
        pulse, active, wide = Signal(), Signal(), Signal()
        wide64 = Signal() if cfg.flexible else None
        line = Signal(clog2(cfg.o_depth))
        left = Signal(17)
        NB = self.lane_bytes
        j = Signal(clog2(NB))
        line_addr = Signal(ADDR_BITS)
        addr = Signal(ADDR_BITS)
        stride = Signal(ADDR_BITS)
        d_valid, d_wide = Signal(), Signal()
        d_j = Signal(clog2(NB))
        d_addr = Signal(ADDR_BITS)
        m.d.comb += self.o_raddr.eq(line)
        m.d.sync += [pulse.eq(0), d_valid.eq(active), d_wide.eq(wide), d_j.eq(j), d_addr.eq(addr)]
        with m.If(active):
            nline = (line_addr + stride)[:ADDR_BITS]
            last_word = ~wide | (j == Mux(wide64, 7, 3)) if cfg.flexible else ~wide | (j == 3)
            with m.If(last_word):
                m.d.sync += [j.eq(0), line.eq(line + 1), line_addr.eq(nline), addr.eq(nline), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [j.eq(j + 1), addr.eq(addr + 1)]
        with m.If(self.issue):
            cnt = field(ins, "STORE", "count")
            a0 = field(ins, "STORE", "addr")
            m.d.sync += [
                pulse.eq(1), active.eq(cnt != 0), wide.eq(field(ins, "STORE", "wide")),
                line.eq(field(ins, "STORE", "src")), left.eq(cnt), j.eq(0),
                line_addr.eq(a0), addr.eq(a0), stride.eq(field(ins, "STORE", "stride")),
            ]
            if cfg.flexible:
                m.d.sync += wide64.eq(field(ins, "STORE", "wide64"))
        lanes = [self.o_rdata[8 * NB * c:8 * NB * (c + 1)] for c in range(C)]
        err = Signal()
        if memw < ADDR_BITS:
            m.d.comb += err.eq(d_valid & (d_addr[memw:] != 0))
        m.d.comb += [
            self.mem_waddr.eq(d_addr),
            self.mem_wdata.eq(Cat(*[Mux(d_wide, Array([ln[8 * i:8 * i + 8] for i in range(NB)])[d_j], ln[:8]) for ln in lanes])),
            self.mem_wen.eq(d_valid & ~err),
            self.busy.eq(pulse | active | d_valid),
            self.err.eq(err),
        ]
        return m

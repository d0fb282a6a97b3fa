"""Run the accelerator in Amaranth's Python simulator with small on-chip memories (tests only).

Big memories belong in the sim-only top (simtop.py); this harness is for
small configurations and short programs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import memory
from amaranth.sim import Simulator

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.hw.top import Accelerator


@dataclass
class HarnessResult:
    done: bool
    error: bool
    error_code: int
    cycles: int
    busy: int
    stall: int
    mem: np.ndarray       # (mem_words, cols) uint8
    marks: dict[int, int]  # slot -> cycle
    sim_cycles: int


class _Wrap(Elaboratable):
    def __init__(self, cfg: ArchConfig, program: list[int], mem_init: np.ndarray):
        self.acc = Accelerator(cfg)
        self.cfg = cfg
        C = cfg.cols
        self.imem = memory.Memory(shape=isa.INSTR_BITS, depth=cfg.imem_depth, init=list(program))
        words = [int.from_bytes(bytes(row.astype(np.uint8)), "little") for row in mem_init]
        self.mem = memory.Memory(shape=8 * C, depth=cfg.mem_words, init=words)

    def elaborate(self, platform):
        m = Module()
        m.submodules.acc = acc = self.acc
        m.submodules.imem = self.imem
        m.submodules.mem = self.mem
        irp = self.imem.read_port()
        rp = self.mem.read_port()
        wp = self.mem.write_port()
        aw = (self.cfg.imem_depth - 1).bit_length()
        mw = (self.cfg.mem_words - 1).bit_length()
        m.d.comb += [
            irp.addr.eq(acc.imem_addr[:aw]), acc.imem_data.eq(irp.data),
            rp.addr.eq(acc.mem_raddr[:mw]), rp.en.eq(acc.mem_ren), acc.mem_rdata.eq(rp.data),
            wp.addr.eq(acc.mem_waddr[:mw]), wp.data.eq(acc.mem_wdata), wp.en.eq(acc.mem_wen),
        ]
        return m


def run_program(cfg: ArchConfig, program: list[int], mem_init: np.ndarray, max_cycles: int = 20000,
                vcd: str | None = None) -> HarnessResult:
    """Simulate until done or error (or max_cycles); return flags, counters, memory and MARK stamps."""
    C = cfg.cols
    mem_init = np.zeros((cfg.mem_words, C), np.uint8) if mem_init is None else np.asarray(mem_init)
    w = _Wrap(cfg, program, mem_init)
    acc = w.acc
    out = {}

    async def tb(ctx):
        marks = {}
        n = 0
        while n < max_cycles:
            if ctx.get(acc.mark_en):
                marks[ctx.get(acc.mark_slot)] = ctx.get(acc.mark_value)
            await ctx.tick()
            n += 1
            if ctx.get(acc.done) or ctx.get(acc.error):
                break
        mem = np.zeros((cfg.mem_words, C), np.uint8)
        for i in range(cfg.mem_words):
            v = ctx.get(w.mem.data[i])
            mem[i] = np.frombuffer(int(v).to_bytes(C, "little"), np.uint8)
        out.update(done=bool(ctx.get(acc.done)), error=bool(ctx.get(acc.error)),
                   error_code=ctx.get(acc.error_code), cycles=ctx.get(acc.cycles), busy=ctx.get(acc.busy),
                   stall=ctx.get(acc.stall), mem=mem, marks=marks, sim_cycles=n)

    sim = Simulator(w)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return HarnessResult(**out)

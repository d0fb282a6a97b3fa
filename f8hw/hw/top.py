"""The accelerator: front end, LOAD / STORE / COMPUTE units and the scratchpads.

Ports (see docs/architecture.md, "Sim-only top" for how they are used):
  imem_addr -> / imem_data <-    instruction memory, 1-cycle read latency
  mem_raddr, mem_ren -> / mem_rdata <-   main-memory read port, 1-cycle latency
  mem_waddr, mem_wdata, mem_wen ->       main-memory write port
  mark_en, mark_slot, mark_value ->      MARK slot writes (the slot storage is outside)
  done, error, error_code, cycles, busy, stall ->  status and counters
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from f8hw import isa
from f8hw.arch import ADDR_BITS, ArchConfig, ArchError, require_rtl
from f8hw.hw.common import clog2
from f8hw.hw.compute import ComputeUnit
from f8hw.hw.frontend import COUNTER_BITS, FrontEnd
from f8hw.hw.load import LoadUnit
from f8hw.hw.spad import IMPLS, add_spad
from f8hw.hw.store import StoreUnit


def port_list(cfg: ArchConfig) -> dict[str, tuple[str, int]]:
    """name -> (direction, width) of the accelerator's ports (besides clk, rst)."""
    pcw = clog2(cfg.imem_depth) + 1
    mslot = isa.OP_BY_NAME["MARK"].fields[0].width
    return {
        "imem_addr": ("out", pcw), "imem_data": ("in", isa.INSTR_BITS),
        "mem_raddr": ("out", ADDR_BITS), "mem_ren": ("out", 1), "mem_rdata": ("in", 8 * cfg.cols),
        "mem_waddr": ("out", ADDR_BITS), "mem_wdata": ("out", 8 * cfg.cols), "mem_wen": ("out", 1),
        "mark_en": ("out", 1), "mark_slot": ("out", mslot), "mark_value": ("out", COUNTER_BITS),
        "done": ("out", 1), "error": ("out", 1), "error_code": ("out", isa.ERROR_CODE_BITS),
        "cycles": ("out", COUNTER_BITS), "busy": ("out", COUNTER_BITS), "stall": ("out", COUNTER_BITS),
    }


class Accelerator(wiring.Component):
    def __init__(self, cfg: ArchConfig, spad: str = "amaranth"):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("Accelerator needs an ArchConfig")
        if spad not in IMPLS:
            raise ArchError(f"spad must be one of {IMPLS}, got {spad!r}")
        require_rtl(cfg, "Accelerator")
        self.cfg = cfg
        self.spad = spad
        sig = {}
        for name, (d, w) in port_list(cfg).items():
            sig[name] = (In if d == "in" else Out)(w)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        m.submodules.fe = fe = FrontEnd(cfg)
        m.submodules.ld = ld = LoadUnit(cfg)
        m.submodules.st = st = StoreUnit(cfg)
        m.submodules.cu = cu = ComputeUnit(cfg)

        # scratchpads
        impl = self.spad
        a_banks = [add_spad(m, impl, f"a_bank{r}", 8 * C, cfg.a_depth) for r in range(R)]
        w_sp = add_spad(m, impl, "w_spad", 8 * C, cfg.w_depth)
        b_sp = add_spad(m, impl, "b_spad", 32 * C, cfg.b_depth, gran=8)
        s_sp = add_spad(m, impl, "s_spad", 8 * C, cfg.s_depth)
        o_sp = add_spad(m, impl, "o_spad", 32 * C, cfg.o_depth)

        m.d.comb += [
            # front end
            self.imem_addr.eq(fe.imem_addr), fe.imem_data.eq(self.imem_data),
            fe.load_busy.eq(ld.busy), fe.store_busy.eq(st.busy),
            fe.mac_busy.eq(cu.mac_busy), fe.drain_busy.eq(cu.drain_busy), fe.drain_wait.eq(cu.drain_wait),
            fe.step.eq(cu.step),
            fe.unit_err.eq(ld.err | st.err),
            fe.unit_err_code.eq(ld.err_code | (st.err.replicate(isa.ERROR_CODE_BITS) & int(isa.ErrorCode.MEM))),
            self.mark_en.eq(fe.mark_en), self.mark_slot.eq(fe.mark_slot), self.mark_value.eq(fe.mark_value),
            self.done.eq(fe.done), self.error.eq(fe.error), self.error_code.eq(fe.error_code),
            self.cycles.eq(fe.cycles), self.busy.eq(fe.busy), self.stall.eq(fe.stall),
            # load unit
            ld.issue.eq(fe.issue_load | fe.issue_loada), ld.is_a.eq(fe.issue_loada),
            ld.instr.eq(fe.instr), ld.regs.eq(fe.regs),
            self.mem_raddr.eq(ld.mem_raddr), self.mem_ren.eq(ld.mem_ren), ld.mem_rdata.eq(self.mem_rdata),
            w_sp.wen.eq(ld.w_wen), w_sp.waddr.eq(ld.w_waddr), w_sp.wdata.eq(ld.w_wdata),
            s_sp.wen.eq(ld.s_wen), s_sp.waddr.eq(ld.s_waddr), s_sp.wdata.eq(ld.s_wdata),
            b_sp.wen.eq(ld.b_wen), b_sp.waddr.eq(ld.b_waddr), b_sp.wdata.eq(ld.b_wdata),
            # store unit
            st.issue.eq(fe.issue_store), st.instr.eq(fe.instr),
            o_sp.raddr.eq(st.o_raddr), st.o_rdata.eq(o_sp.rdata),
            self.mem_waddr.eq(st.mem_waddr), self.mem_wdata.eq(st.mem_wdata), self.mem_wen.eq(st.mem_wen),
            # compute unit
            cu.issue.eq(fe.issue_compute), cu.instr.eq(fe.instr), cu.regs.eq(fe.regs),
            w_sp.raddr.eq(cu.w_raddr), cu.w_rdata.eq(w_sp.rdata),
            b_sp.raddr.eq(cu.b_raddr), cu.b_rdata.eq(b_sp.rdata),
            s_sp.raddr.eq(cu.s_raddr), cu.s_rdata.eq(s_sp.rdata),
            o_sp.wen.eq(cu.o_wen), o_sp.waddr.eq(cu.o_waddr), o_sp.wdata.eq(cu.o_wdata),
        ]
        for r, sp in enumerate(a_banks):
            m.d.comb += [
                sp.wen.eq(ld.a_wen[r]), sp.waddr.eq(ld.a_waddr[r]), sp.wdata.eq(ld.a_wdata),
                sp.raddr.eq(cu.a_raddr[r]), cu.a_rdata[r].eq(sp.rdata),
            ]
        return m

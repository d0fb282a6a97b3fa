"""Fetch, decode, issue, hazard check, SET registers, MARK, counters and errors.

Fetch: the instruction memory has a 1-cycle read latency; the address of the
next fetch is ``pc + issue`` (combinational), so a new instruction is on the
decode port every cycle and instructions can issue back to back.  Cycle 0
fetches instruction 0, which can issue at cycle 1 (FIRST_ISSUE).

Issue (in order, at most one per cycle) follows docs/architecture.md "Timing":
unit conditions from the units' busy flags, resource-mask hazards against the
holders of the other units (LOAD, STORE, MAC phase = mask bits 0..3 of the
latest COMPUTE, drain = mask bits 4..7 of every COMPUTE with last whose drain
is in flight), the
drain-spacing rule for a COMPUTE with last (steps >= drain_wait), END waiting
for every unit.  Errors found at decode (illegal opcode / LOAD target /
COMPUTE mode, scratchpad ranges, npix, fetch past imem_depth) stop the run
when the instruction reaches the decode port; the units report per-access
errors (main-memory range, LOAD_A line range).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.hw.common import clog2, mul_const
from f8hw.hw.isadec import code, field, opcode
from f8hw.hw.regs import REGS

COUNTER_BITS = 32


class FrontEnd(wiring.Component):
    def __init__(self, cfg: ArchConfig):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("FrontEnd needs an ArchConfig")
        self.cfg = cfg
        self.pcw = clog2(cfg.imem_depth) + 1
        R = cfg.rows
        super().__init__({
            "imem_addr": Out(self.pcw),
            "imem_data": In(isa.INSTR_BITS),
            "instr": Out(isa.INSTR_BITS),
            "regs": Out(REGS),
            "issue_load": Out(1),
            "issue_loada": Out(1),
            "issue_store": Out(1),
            "issue_compute": Out(1),
            "load_busy": In(1),
            "store_busy": In(1),
            "mac_busy": In(1),
            "drain_busy": In(1),
            "drain_wait": In(range(R + 1)),
            "step": In(1),
            "unit_err": In(1),
            "unit_err_code": In(isa.ERROR_CODE_BITS),
            "mark_en": Out(1),
            "mark_slot": Out(isa.OP_BY_NAME["MARK"].fields[0].width),
            "mark_value": Out(COUNTER_BITS),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(isa.ERROR_CODE_BITS),
            "cycles": Out(COUNTER_BITS),
            "busy": Out(COUNTER_BITS),
            "stall": Out(COUNTER_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        ins = self.imem_data
        pc = Signal(self.pcw)
        ivalid = Signal()
        done, error = Signal(), Signal()
        error_code = Signal(isa.ERROR_CODE_BITS)
        cycles, busy, stall = (Signal(COUNTER_BITS, name=n) for n in ("cycles", "busy_ctr", "stall"))
        halted = done | error
        head = Signal()
        m.d.comb += head.eq(ivalid & ~halted)
        op = opcode(ins)
        is_ = {o.name: Signal(name=f"is_{o.name.lower()}") for o in isa.OPS}
        for name, s in is_.items():
            m.d.comb += s.eq(op == code(name))
        legal_op = Signal()
        m.d.comb += legal_op.eq(Cat_any(list(is_.values())))

        # ---- holders (masks) of the units
        load_mask, store_mask = Signal(isa.MASK_BITS), Signal(isa.MASK_BITS)
        mac_mask, drain_mask = Signal(isa.MASK_BITS), Signal(isa.MASK_BITS)

        def conflicts(mask, *holders):
            return Cat_any([(mask & hm).any() & hb for hm, hb in holders])

        H_load = (load_mask, self.load_busy)
        H_store = (store_mask, self.store_busy)
        H_mac = (mac_mask, self.mac_busy)
        H_drain = (drain_mask, self.drain_busy)

        # ---- per-op decode, checks and conditions
        err_code_now = Signal(isa.ERROR_CODE_BITS)
        can = Signal()
        # LOAD
        l_mask = field(ins, "LOAD", "mask")
        l_tgt = field(ins, "LOAD", "target")
        l_end = Signal(19)
        m.d.comb += l_end.eq(field(ins, "LOAD", "dst") + field(ins, "LOAD", "count"))
        l_bad_tgt = ~((l_tgt == isa.LoadTarget.W) | (l_tgt == isa.LoadTarget.B) | (l_tgt == isa.LoadTarget.S))
        l_range = Mux(l_tgt == isa.LoadTarget.W, l_end > cfg.w_depth,
                      Mux(l_tgt == isa.LoadTarget.S, l_end > cfg.s_depth, l_end > 4 * cfg.b_depth))
        # LOAD_A
        la_mask = field(ins, "LOAD_A", "mask")
        npix = field(ins, "LOAD_A", "npix")
        la_range = (npix == 0) | (npix > R)
        # STORE
        st_mask = field(ins, "STORE", "mask")
        st_end = Signal(18)
        m.d.comb += st_end.eq(field(ins, "STORE", "src") + field(ins, "STORE", "count"))
        st_range = st_end > cfg.o_depth
        # COMPUTE
        c_mask = field(ins, "COMPUTE", "mask")
        c_mode = field(ins, "COMPUTE", "mode")
        c_last = field(ins, "COMPUTE", "last")
        nl = field(ins, "COMPUTE", "nlines")
        c_dense = c_mode == isa.Mode.DENSE
        c_bad_mode = ~((c_mode == isa.Mode.DENSE) | (c_mode == isa.Mode.DEPTHWISE) | (c_mode == isa.Mode.MAX))
        a_end, w_end, o_end, s_end = Signal(18), Signal(24), Signal(18), Signal(18)
        m.d.comb += [
            a_end.eq(field(ins, "COMPUTE", "a_base") + nl),
            w_end.eq(field(ins, "COMPUTE", "w_base") + Mux(c_dense, mul_const(nl, C, 24), nl)),
            o_end.eq(field(ins, "COMPUTE", "o_dst") + R),
            s_end.eq(field(ins, "COMPUTE", "s_src") + R),
        ]
        # every register resets to 0 except RQ_MULT = 1 (the dyadic lane then equals the shift lane)
        regs = Signal(REGS, init={"rq_mult": 1})
        raw = regs.rq_raw != 0
        c_range = ((nl == 0) | (a_end > cfg.a_depth) | ((c_mode != isa.Mode.MAX) & (w_end > cfg.w_depth))
                   | (o_end > cfg.o_depth)
                   | (c_last & ~raw & (regs.use_skip != 0) & (s_end > cfg.s_depth))
                   | (c_last & (regs.use_bias != 0) & (field(ins, "COMPUTE", "b_src") >= cfg.b_depth)))
        # drain spacing: t + steps + array_latency >= capture_prev + R  <=>  steps >= drain_wait
        need = Array([Const(math.ceil(w / C), 17) for w in range(R + 1)])
        steps_ok = Mux(c_dense, nl >= need[self.drain_wait], nl >= self.drain_wait)
        # MARK
        mk_slot = field(ins, "MARK", "slot")
        mk_range = mk_slot >= cfg.mark_depth

        with m.If(pc >= cfg.imem_depth):
            m.d.comb += err_code_now.eq(int(isa.ErrorCode.FETCH))
        with m.Elif(~legal_op):
            m.d.comb += err_code_now.eq(int(isa.ErrorCode.OPCODE))
        with m.Elif(is_["LOAD"] & l_bad_tgt):
            m.d.comb += err_code_now.eq(int(isa.ErrorCode.OPCODE))
        with m.Elif(is_["COMPUTE"] & c_bad_mode):
            m.d.comb += err_code_now.eq(int(isa.ErrorCode.OPCODE))
        with m.Elif((is_["LOAD"] & l_range) | (is_["LOAD_A"] & la_range) | (is_["STORE"] & st_range)
                    | (is_["COMPUTE"] & c_range) | (is_["MARK"] & mk_range)):
            m.d.comb += err_code_now.eq(int(isa.ErrorCode.SPAD))

        with m.If(is_["END"]):
            m.d.comb += can.eq(~(self.load_busy | self.store_busy | self.mac_busy | self.drain_busy))
        with m.Elif(is_["SET"] | is_["MARK"]):
            m.d.comb += can.eq(1)
        with m.Elif(is_["LOAD"]):
            m.d.comb += can.eq(~self.load_busy & ~conflicts(l_mask, H_store, H_mac, H_drain))
        with m.Elif(is_["LOAD_A"]):
            m.d.comb += can.eq(~self.load_busy & ~conflicts(la_mask, H_store, H_mac, H_drain))
        with m.Elif(is_["STORE"]):
            m.d.comb += can.eq(~self.store_busy & ~conflicts(st_mask, H_load, H_mac, H_drain))
        with m.Elif(is_["COMPUTE"]):
            m.d.comb += can.eq(~self.mac_busy & (~c_last | steps_ok) & ~conflicts(c_mask, H_load, H_store, H_drain))

        issue = Signal()
        m.d.comb += issue.eq(head & (err_code_now == 0) & can)
        next_pc = Signal(self.pcw)
        m.d.comb += [next_pc.eq(pc + issue), self.imem_addr.eq(next_pc)]
        m.d.sync += [pc.eq(next_pc), ivalid.eq(1)]

        m.d.comb += [
            self.instr.eq(ins),
            self.issue_load.eq(issue & is_["LOAD"]),
            self.issue_loada.eq(issue & is_["LOAD_A"]),
            self.issue_store.eq(issue & is_["STORE"]),
            self.issue_compute.eq(issue & is_["COMPUTE"]),
        ]
        with m.If(issue & is_["LOAD"]):
            m.d.sync += load_mask.eq(l_mask)
        with m.If(issue & is_["LOAD_A"]):
            m.d.sync += load_mask.eq(la_mask)
        with m.If(issue & is_["STORE"]):
            m.d.sync += store_mask.eq(st_mask)
        with m.If(issue & is_["COMPUTE"]):
            m.d.sync += mac_mask.eq(c_mask[:isa.MAC_MASK_BITS])
            with m.If(c_last):
                # the drain holder is the OR of the masks of every drain in flight (drain_busy: one
                # has not ended; the new drain ends after all of them)
                m.d.sync += drain_mask.eq(Mux(self.drain_busy, drain_mask, 0)
                                          | (c_mask[isa.MAC_MASK_BITS:] << isa.MAC_MASK_BITS))

        # ---- SET registers
        s_reg = field(ins, "SET", "reg")
        s_val = field(ins, "SET", "value")
        with m.If(issue & is_["SET"]):
            with m.Switch(s_reg):
                for r in isa.Reg:
                    if r in isa.FORMAT_REGS:
                        continue
                    with m.Case(int(r)):
                        m.d.sync += getattr(regs, r.name.lower()).eq(s_val)
        m.d.comb += self.regs.eq(regs)

        # ---- MARK
        m.d.comb += [self.mark_en.eq(issue & is_["MARK"]), self.mark_slot.eq(mk_slot), self.mark_value.eq(cycles)]

        # ---- counters, done, errors
        with m.If(~halted):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(self.step):
                m.d.sync += busy.eq(busy + 1)
            with m.If(head & ~issue & (err_code_now == 0)):
                m.d.sync += stall.eq(stall + 1)
            with m.If(issue & is_["END"]):
                m.d.sync += done.eq(1)
            with m.If(head & (err_code_now != 0)):
                m.d.sync += [error.eq(1), error_code.eq(err_code_now)]
            with m.Elif(self.unit_err):
                m.d.sync += [error.eq(1), error_code.eq(self.unit_err_code)]
        m.d.comb += [
            self.done.eq(done), self.error.eq(error), self.error_code.eq(error_code),
            self.cycles.eq(cycles), self.busy.eq(busy), self.stall.eq(stall),
        ]
        return m


def Cat_any(values):
    return Cat(*values).any() if values else Const(0, 1)

"""Fetch, predecode, issue, hazard check, SET registers, MARK, counters and errors.

Fetch and predecode: the instruction memory has a 1-cycle read latency.  The
instruction at the head (the next to issue) sits decoded in a register D: its
word, op flags, the error code its fields alone imply (FETCH, OPCODE, static
scratchpad ranges) and the comparisons its COMPUTE checks need.  The word on
the memory's read port is always the one after the head, so when the head
issues, D loads it and the fetch address moves on (``Mux(issue, pc + 2,
pc + 1)``, both registers): back-to-back issue, and the issue decision only
reads registers.  Cycle 0 fetches instruction 0, cycle 1 predecodes it, and
it can issue at cycle 2 (FIRST_ISSUE).

Issue (in order, at most one per cycle) follows docs/architecture.md "Timing":
unit conditions from the units' busy flags, resource-mask hazards against the
holders of the other units (LOAD, STORE, MAC phase = mask bits 0..3 of the
latest COMPUTE, drain = mask bits 4..7 of every COMPUTE with last whose drain
is in flight), the drain-spacing rule for a COMPUTE with last (steps >=
drain_wait), END waiting for every unit.  Errors stop the run when the
instruction reaches the head: D's static code, or for a COMPUTE the checks
that depend on SET registers (skip / bias ranges, format indices), which read
one-bit flags written with each SET.  The units report per-access errors
(main-memory range, LOAD_A line range).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.hw.common import clog2, mul_const
from f8hw.hw.isadec import code, field, opcode
from f8hw.hw.regs import FMT_REGS, REGS

COUNTER_BITS = 32
MASKED_OPS = tuple(o.name for o in isa.OPS if any(f.name == "mask" for f in o.fields))
"""The ops that carry a resource mask (hazard check), from the ISA."""


class FrontEnd(wiring.Component):
    def __init__(self, cfg: ArchConfig):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("FrontEnd needs an ArchConfig")
        self.cfg = cfg
        self.pcw = clog2(cfg.imem_depth) + 1
        R = cfg.rows
        sig = {
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
        }
        if cfg.flexible:
            sig["fregs"] = Out(FMT_REGS)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        done, error = Signal(), Signal()
        error_code = Signal(isa.ERROR_CODE_BITS)
        cycles, busy, stall = (Signal(COUNTER_BITS, name=n) for n in ("cycles", "busy_ctr", "stall"))
        halted = done | error

        # ---- fetch: fa = address of the word on imem_data (the one after the head), fa1 = fa + 1
        fa, fa1 = Signal(self.pcw), Signal(self.pcw, init=1)
        ivalid, dvalid = Signal(), Signal()
        issue, adv = Signal(), Signal()
        m.d.comb += adv.eq(issue | (ivalid & ~dvalid))    # D takes the word on the port: at issue, and at boot
        m.d.comb += self.imem_addr.eq(Mux(adv, fa1, fa))
        m.d.sync += ivalid.eq(1)
        with m.If(adv):
            m.d.sync += [fa.eq(fa1), fa1.eq(fa1 + 1), dvalid.eq(1)]

        # ---- predecode of the word on the port into D (loaded at adv)
        pre = _predecode(m, cfg, self.imem_data, fa >= cfg.imem_depth)
        d = {k: Signal.like(v, name=f"d_{k}") for k, v in pre.items()}
        with m.If(adv):
            m.d.sync += [d[k].eq(v) for k, v in pre.items()]
        ins = d["instr"]
        is_ = {o.name: d["op"][i] for i, o in enumerate(isa.OPS)}
        head = Signal()
        m.d.comb += head.eq(dvalid & ~halted)

        # ---- SET registers and their one-bit flags (the live COMPUTE checks read only the flags)
        regs = Signal(REGS, init={"rq_mult": 1})   # all 0 except RQ_MULT = 1 (dyadic lane = shift lane)
        fregs = Signal(FMT_REGS) if cfg.flexible else None
        flag = {n: Signal(name=f"{n}_set") for n in ("rq_raw", "use_skip", "use_bias", "bias64")}
        fmt_bad = {n: Signal(name=f"{n}_bad") for n in ("a_fmt", "w_fmt", "skip_fmt", "out_fmt")}
        s_val = field(ins, "SET", "value")
        set_ok = head & d["set_ok"]              # a SET always issues when it is at the head without error
        for r in isa.Reg:
            if r in isa.FORMAT_REGS and not cfg.flexible:
                continue
            name = r.name.lower()
            with m.If(set_ok & d["set_sel"][int(r)]):
                m.d.sync += getattr(fregs if r in isa.FORMAT_REGS else regs, name).eq(s_val)
                if name in flag:
                    m.d.sync += flag[name].eq(s_val != 0)
                if name in fmt_bad:
                    m.d.sync += fmt_bad[name].eq(s_val.as_unsigned() >= len(cfg.formats))
        m.d.comb += self.regs.eq(regs)
        if cfg.flexible:
            m.d.comb += self.fregs.eq(fregs)

        # ---- errors found at the head: D's static code, then the COMPUTE checks that read SET flags
        c_last = d["c_last"]   # a COMPUTE with last
        b_over = Mux(flag["bias64"], d["b_over1"], d["b_over0"]) if cfg.flexible else d["b_over0"]
        spad_bad = c_last & ((~flag["rq_raw"] & flag["use_skip"] & d["s_over"]) | (flag["use_bias"] & b_over))
        fmt_bad_now = Const(0)
        if cfg.flexible:
            # a COMPUTE whose format registers name no format of cfg.formats (the ones it uses, as
            # f8hw.isasim.flex.fmt_reg checks them: an illegal COMPUTE, after the range checks)
            fmt_bad_now = is_["COMPUTE"] & (
                fmt_bad["a_fmt"] | (~d["is_max"] & fmt_bad["w_fmt"])
                | (c_last & ~flag["rq_raw"] & ((flag["use_skip"] & fmt_bad["skip_fmt"]) | fmt_bad["out_fmt"])))
        err_code = Signal(isa.ERROR_CODE_BITS)
        m.d.comb += err_code.eq(Mux(~d["ok"], d["code"], Mux(spad_bad, int(isa.ErrorCode.SPAD),
                                                               Mux(fmt_bad_now, int(isa.ErrorCode.OPCODE), 0))))
        go = Signal()     # the head can issue if its unit condition holds
        m.d.comb += go.eq(head & d["ok"] & ~spad_bad & ~fmt_bad_now)

        # ---- holders (masks) of the units and the issue conditions (flat over the one-hot op)
        load_mask, store_mask = Signal(isa.MASK_BITS), Signal(isa.MASK_BITS)
        mac_mask, drain_mask = Signal(isa.MASK_BITS), Signal(isa.MASK_BITS)
        mask = d["mask"]

        def free(*holders):
            return ~Cat(*[(mask & hm).any() & hb for hm, hb in holders]).any()

        H_load, H_store = (load_mask, self.load_busy), (store_mask, self.store_busy)
        H_mac, H_drain = (mac_mask, self.mac_busy), (drain_mask, self.drain_busy)
        # drain spacing: t + steps + array_latency >= capture_prev + R  <=>  steps >= drain_wait
        steps_ok = d["steps"] >= self.drain_wait
        can = {
            "END": ~(self.load_busy | self.store_busy | self.mac_busy | self.drain_busy),
            "SET": Const(1), "MARK": Const(1),
            "LOAD": ~self.load_busy & free(H_store, H_mac, H_drain),
            "STORE": ~self.store_busy & free(H_load, H_mac, H_drain),
            "COMPUTE": ~self.mac_busy & (~c_last | steps_ok) & free(H_load, H_store, H_drain),
        }
        can["LOAD_A"] = can["LOAD"]
        go_op = {name: Signal(name=f"issue_{name.lower()}") for name in is_}
        for name, g in go_op.items():
            m.d.comb += g.eq(go & is_[name] & can[name])
        m.d.comb += issue.eq(Cat(*go_op.values()).any())

        m.d.comb += [
            self.instr.eq(ins),
            self.issue_load.eq(go_op["LOAD"]),
            self.issue_loada.eq(go_op["LOAD_A"]),
            self.issue_store.eq(go_op["STORE"]),
            self.issue_compute.eq(go_op["COMPUTE"]),
        ]
        with m.If(go_op["LOAD"] | go_op["LOAD_A"]):
            m.d.sync += load_mask.eq(mask)
        with m.If(go_op["STORE"]):
            m.d.sync += store_mask.eq(mask)
        with m.If(go_op["COMPUTE"]):
            m.d.sync += mac_mask.eq(mask[:isa.MAC_MASK_BITS])
            with m.If(c_last):
                # the drain holder is the OR of the masks of every drain in flight (drain_busy: one
                # has not ended; the new drain ends after all of them)
                m.d.sync += drain_mask.eq(Mux(self.drain_busy, drain_mask, 0)
                                          | (mask[isa.MAC_MASK_BITS:] << isa.MAC_MASK_BITS))

        # ---- MARK (always issues when at the head without error)
        m.d.comb += [self.mark_en.eq(head & d["mark_ok"]), self.mark_slot.eq(field(ins, "MARK", "slot")),
                     self.mark_value.eq(cycles)]

        # ---- counters, done, errors
        with m.If(~halted):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(self.step):
                m.d.sync += busy.eq(busy + 1)
            with m.If(go & ~issue):
                m.d.sync += stall.eq(stall + 1)
            with m.If(go_op["END"]):
                m.d.sync += done.eq(1)
            with m.If(head & ~go):
                m.d.sync += [error.eq(1), error_code.eq(err_code)]
            with m.Elif(self.unit_err):
                m.d.sync += [error.eq(1), error_code.eq(self.unit_err_code)]
        m.d.comb += [
            self.done.eq(done), self.error.eq(error), self.error_code.eq(error_code),
            self.cycles.eq(cycles), self.busy.eq(busy), self.stall.eq(stall),
        ]
        return m


def _predecode(m: Module, cfg: ArchConfig, ins, fetch_past_end) -> dict:
    """Everything about an instruction word that its fields alone decide, as combinational signals
    named by the D-register field they load: the word, one-hot op, mask, the static error code
    (FETCH > OPCODE > SPAD range), SET / MARK "issues when at the head", the SET register select,
    and for a COMPUTE its drain-spacing steps (capped at rows) and the range comparisons whose
    error depends on SET registers."""
    R, C = cfg.rows, cfg.cols
    op = opcode(ins)
    is_ = {o.name: op == code(o.name) for o in isa.OPS}
    legal_op = Cat(*is_.values()).any()
    # LOAD
    l_tgt = field(ins, "LOAD", "target")
    l_end = Signal(19)
    m.d.comb += l_end.eq(field(ins, "LOAD", "dst") + field(ins, "LOAD", "count"))
    l_bad_tgt = ~((l_tgt == isa.LoadTarget.W) | (l_tgt == isa.LoadTarget.B) | (l_tgt == isa.LoadTarget.S))
    l_range = Mux(l_tgt == isa.LoadTarget.W, l_end > cfg.w_depth,
                  Mux(l_tgt == isa.LoadTarget.S, l_end > cfg.s_depth, l_end > 4 * cfg.b_depth))
    # LOAD_A
    npix = field(ins, "LOAD_A", "npix")
    la_range = (npix == 0) | (npix > R)
    # STORE
    st_end = Signal(18)
    m.d.comb += st_end.eq(field(ins, "STORE", "src") + field(ins, "STORE", "count"))
    st_range = st_end > cfg.o_depth
    # COMPUTE
    c_mode = field(ins, "COMPUTE", "mode")
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
    c_range = ((nl == 0) | (a_end > cfg.a_depth) | ((c_mode != isa.Mode.MAX) & (w_end > cfg.w_depth))
               | (o_end > cfg.o_depth))
    b_src = field(ins, "COMPUTE", "b_src")   # the last B entry the drain reads (+1 with BIAS64)
    # MAC steps capped at R (drain_wait <= R): DENSE runs nlines * cols steps
    steps = Signal(range(R + 1))
    dense_cap = -(-R // C)
    m.d.comb += steps.eq(Mux(c_dense, Mux(nl >= dense_cap, R, mul_const(nl[:clog2(dense_cap + 1)], C, 16)),
                             Mux(nl >= R, R, nl)))
    # MARK
    mk_range = field(ins, "MARK", "slot") >= cfg.mark_depth

    static_code = Signal(isa.ERROR_CODE_BITS)
    with m.If(fetch_past_end):
        m.d.comb += static_code.eq(int(isa.ErrorCode.FETCH))
    with m.Elif(~legal_op | (is_["LOAD"] & l_bad_tgt) | (is_["COMPUTE"] & c_bad_mode)):
        m.d.comb += static_code.eq(int(isa.ErrorCode.OPCODE))
    with m.Elif((is_["LOAD"] & l_range) | (is_["LOAD_A"] & la_range) | (is_["STORE"] & st_range)
                | (is_["COMPUTE"] & c_range) | (is_["MARK"] & mk_range)):
        m.d.comb += static_code.eq(int(isa.ErrorCode.SPAD))

    mask = Signal(isa.MASK_BITS)
    for name in MASKED_OPS:
        with m.If(is_[name]):
            m.d.comb += mask.eq(field(ins, name, "mask"))
    s_reg = field(ins, "SET", "reg")
    return {
        "instr": ins,
        "op": Cat(*is_.values()),
        "mask": mask,
        "code": static_code,
        "ok": static_code == 0,
        "c_last": is_["COMPUTE"] & field(ins, "COMPUTE", "last"),
        "set_ok": is_["SET"] & ~fetch_past_end,
        "set_sel": Cat(*[s_reg == i for i in range(1 << s_reg.shape().width)]),
        "mark_ok": is_["MARK"] & ~fetch_past_end & ~mk_range,
        "is_max": c_mode == isa.Mode.MAX,
        "steps": steps,
        "s_over": s_end > cfg.s_depth,
        "b_over0": b_src >= cfg.b_depth,
        "b_over1": b_src + 1 >= cfg.b_depth,
    }

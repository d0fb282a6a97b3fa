"""COMPUTE unit: MAC-phase sequencer, the array, and the drain through the requantizer lanes.

Timing of a COMPUTE issued at t with S steps (S = nlines*C for DENSE, nlines
otherwise), row r of the array, P = PE_LATENCY (2: multiply, accumulate):
  t+1+k        sequencer step k: W address w_base+k, row-0 A address (ctl[0])
  t+1+k+r      bank r is addressed (the control moves down one row per cycle)
  t+2+k+r      PE row r multiplies step k (W data moved down r rows)
  t+1+P+k+r    PE row r accumulates step k (P-1 cycles after its multiply)
  t+S+P+r      row r's last step; its result goes into the shadow registers
  L0 = t+S+P   drain address phase of row 0 (S line s_src+r, B entry b_src)
  L0+1+r       = capture + r: row r's shadows enter the requantizer lanes
  L0+4+r       lane output written to O line o_dst + r (visible one cycle later)
So capture = t + S + array_latency with array_latency = 1 + P = 3, and the drain
ends (last O write visible) at capture + R + REQUANT_LATENCY (4).  The drain is
started at t+S (the last step) and its start is delayed array_latency - 2
cycles (``d_go``) with the tile's snapshot.  mac_end = t + S: the sequencer's
last step is at cycle t+S, where the next COMPUTE may issue.

A flexible build (f8hw/isasim/flex.py): the array decodes A_FMT / W_FMT (snapshotted at issue);
the drain adds the bias (32-bit, or BIAS64: entries b_src, b_src + 1) at acc_bits once per
column, decodes the residual per SKIP_FMT into its integer form, and feeds both the widened INT8
lane and the FP8 lane (same LATENCY); OUT_FMT (snapshotted) picks the lane written to O (64-bit).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw import isa
from f8hw.arch import ArchConfig, array_latency
from f8hw.hw.array import MacArray, row_ctl_layout
from f8hw.hw.common import clog2
from f8hw.hw.fp8requant import Fp8RequantLane, fp8_rq_cfg_layout
from f8hw.hw.fpe import OperandDecoder, activation_bits, fpe_cfg_layout
from f8hw.hw.isadec import field
from f8hw.hw.regs import FMT_REGS, REGS
from f8hw.hw.requant import FLEX_RQ_CFG, LATENCY, RQ_CFG, RequantLane
from f8hw.numerics import MIXED_ACC_BITS, SHIFT_MAG_BITS


def flex_drain_layout(cfg: ArchConfig) -> data.StructLayout:
    """A flexible build's drain configuration beside the INT8 lane's: residual format, FP8 lane on,
    its config, BIAS64."""
    return data.StructLayout({"skip_fmt": fpe_cfg_layout(cfg.formats).members["a_fmt"], "fp8": 1,
                              "fp8_cfg": fp8_rq_cfg_layout(cfg.formats), "bias64": 1})


def flex_cfg_from_regs(m: Module, cfg: ArchConfig, regs, fregs) -> Signal:
    """Decode the format registers into the drain's flexible configuration (snapshot at issue)."""
    c = Signal(flex_drain_layout(cfg))
    sel = len(c.skip_fmt)
    m.d.comb += [
        c.skip_fmt.eq(fregs.skip_fmt[:sel]),
        c.fp8.eq((fregs.out_fmt != 0) & (regs.rq_raw == 0)),
        c.fp8_cfg.kind.eq(fregs.out_fmt - 1),
        c.fp8_cfg.shift.eq(regs.shift[:cfg.fp8_shift_bits].as_signed()),
        c.fp8_cfg.relu.eq(regs.out_signed == 0),
        c.fp8_cfg.use_bias.eq(0),   # the bias is added once per column, before both lanes
        c.bias64.eq(fregs.bias64 != 0),
    ]
    return c


def rq_cfg_from_regs(m: Module, regs, layout=RQ_CFG) -> Signal:
    """Decode the SET registers into the lanes' RQ_CFG (a snapshot is taken of this at issue)."""
    lbits = layout.members["acc_lshift"].width
    c = Signal(layout)
    mag = Signal(32)
    m.d.comb += mag.eq(Mux(regs.shift < 0, -regs.shift, regs.shift))
    lim = (1 << SHIFT_MAG_BITS) - 1
    m.d.comb += [
        c.raw.eq(regs.rq_raw != 0),
        c.out_signed.eq(regs.out_signed != 0),
        c.use_bias.eq(regs.use_bias != 0),
        c.use_skip.eq(regs.use_skip != 0),
        c.skip_signed.eq(regs.skip_signed != 0),
        c.acc_lshift.eq(regs.acc_lshift[:lbits]),
        c.skip_lshift.eq(regs.skip_lshift[:lbits]),
        c.shift_neg.eq(regs.shift < 0),
        c.shift_mag.eq(Mux(mag > lim, lim, mag)),
        c.mult.eq(regs.rq_mult),
    ]
    return c


class ComputeUnit(wiring.Component):
    def __init__(self, cfg: ArchConfig):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("ComputeUnit needs an ArchConfig")
        self.cfg = cfg
        R, C = cfg.rows, cfg.cols
        self.abits, self.wbits = clog2(cfg.a_depth), clog2(cfg.w_depth)
        self.o_lane = 64 if cfg.flexible else 32
        sig = {
            "issue": In(1),
            "instr": In(isa.INSTR_BITS),
            "regs": In(REGS),
            "w_raddr": Out(self.wbits),
            "w_rdata": In(8 * C),
            "a_raddr": Out(data.ArrayLayout(self.abits, R)),
            "a_rdata": In(data.ArrayLayout(8 * C, R)),
            "b_raddr": Out(clog2(cfg.b_depth)),
            "b_rdata": In(32 * C),
            "s_raddr": Out(clog2(cfg.s_depth)),
            "s_rdata": In(8 * C),
            "o_waddr": Out(clog2(cfg.o_depth)),
            "o_wdata": Out(self.o_lane * C),
            "o_wen": Out(1),
            "step": Out(1),        # the array performs a MAC step (sequencer active)
            "mac_busy": Out(1),    # mac_end > now
            "drain_busy": Out(1),  # drain_end of the latest last-COMPUTE > now
            "drain_wait": Out(range(R + 1)),  # a last-COMPUTE issued now needs steps >= drain_wait
        }
        if cfg.flexible:
            sig.update(fregs=In(FMT_REGS), b_rdata_hi=In(32 * C))   # B entry b_src + 1 (BIAS64)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        ins = self.instr
        CTL = row_ctl_layout(C, cfg.formats)
        RQ = FLEX_RQ_CFG if cfg.flexible else RQ_CFG
        m.submodules.array = arr = MacArray(R, C, cfg.formats)
        lanes = [RequantLane(cfg.requant == "dyadic", cfg.formats) for _ in range(C)]
        for c, ln in enumerate(lanes):
            m.submodules[f"lane{c}"] = ln

        # ---------------- sequencer (snapshot at issue)
        active, dense, mx, accf, lastf, a_signed, first = (Signal(name=n) for n in (
            "active", "dense", "mx", "accf", "lastf", "a_signed", "first"))
        line = Signal(self.abits)
        byte = Signal(clog2(C))
        lines_left = Signal(17)
        waddr = Signal(self.wbits)
        s_cfg = Signal(RQ)
        s_b = Signal(clog2(cfg.b_depth))
        s_s = Signal(clog2(cfg.s_depth))
        s_o = Signal(clog2(cfg.o_depth))
        is_last_step = Signal()
        m.d.comb += is_last_step.eq(active & (lines_left == 1) & (~dense | (byte == C - 1)))
        with m.If(active):
            m.d.sync += [waddr.eq(waddr + 1), first.eq(0)]
            with m.If(dense & (byte != C - 1)):
                m.d.sync += byte.eq(byte + 1)
            with m.Else():
                m.d.sync += [byte.eq(0), line.eq(line + 1), lines_left.eq(lines_left - 1)]
            with m.If(is_last_step):
                m.d.sync += active.eq(0)
        live_cfg = rq_cfg_from_regs(m, self.regs, RQ)
        if cfg.flexible:
            FD = flex_drain_layout(cfg)
            sel = CTL.members["a_fmt"].width
            s_afmt, s_wfmt = Signal(sel), Signal(sel)
            s_fcfg, d_fcfg, l_fcfg = Signal(FD), Signal(FD), Signal(FD)
            live_fcfg = flex_cfg_from_regs(m, cfg, self.regs, self.fregs)
            with m.If(self.issue):
                m.d.sync += [s_afmt.eq(self.fregs.a_fmt[:sel]), s_wfmt.eq(self.fregs.w_fmt[:sel]),
                             s_fcfg.eq(live_fcfg)]
        with m.If(self.issue):
            mode = field(ins, "COMPUTE", "mode")
            acc = field(ins, "COMPUTE", "acc")
            m.d.sync += [
                active.eq(1),
                dense.eq(mode == isa.Mode.DENSE),
                mx.eq(mode == isa.Mode.MAX),
                accf.eq(acc),
                first.eq(~acc),
                lastf.eq(field(ins, "COMPUTE", "last")),
                a_signed.eq(self.regs.a_signed != 0),
                line.eq(field(ins, "COMPUTE", "a_base")),
                byte.eq(0),
                lines_left.eq(field(ins, "COMPUTE", "nlines")),
                waddr.eq(field(ins, "COMPUTE", "w_base")),
                s_cfg.eq(live_cfg),
                s_b.eq(field(ins, "COMPUTE", "b_src")),
                s_s.eq(field(ins, "COMPUTE", "s_src")),
                s_o.eq(field(ins, "COMPUTE", "o_dst")),
            ]
        m.d.comb += [self.w_raddr.eq(waddr), self.step.eq(active), self.mac_busy.eq(active & ~is_last_step)]

        # ---------------- control pipeline: ctl[r] addresses bank r, ctl[r+1] drives PE row r
        ctl = [Signal(CTL, name=f"ctl{r}") for r in range(R + 1)]
        cline = [Signal(self.abits, name=f"cline{r}") for r in range(R)]
        m.d.comb += [
            ctl[0].valid.eq(active), ctl[0].first.eq(first), ctl[0].last.eq(lastf & is_last_step),
            ctl[0].dense.eq(dense), ctl[0].max.eq(mx), ctl[0].a_signed.eq(a_signed), ctl[0].byte.eq(byte),
            cline[0].eq(line),
        ]
        if cfg.flexible:
            m.d.comb += [ctl[0].a_fmt.eq(s_afmt), ctl[0].w_fmt.eq(s_wfmt)]
        for r in range(1, R + 1):
            m.d.sync += ctl[r].eq(ctl[r - 1])
            if r < R:
                m.d.sync += cline[r].eq(cline[r - 1])
        for r in range(R):
            m.d.comb += [self.a_raddr[r].eq(cline[r]), arr.line[r].eq(self.a_rdata[r]), arr.ctl[r].eq(ctl[r + 1])]
        for c in range(C):
            m.d.comb += arr.w_in[c].eq(self.w_rdata[8 * c:8 * c + 8])

        # ---------------- drain
        d_active = Signal()
        d_left = Signal(range(R))
        d_cfg = Signal(RQ)
        d_b = Signal(clog2(cfg.b_depth))
        d_s = Signal(clog2(cfg.s_depth))
        d_o = Signal(clog2(cfg.o_depth))
        d_sel = Signal(R)
        with m.If(d_active):
            m.d.sync += [d_s.eq(d_s + 1), d_o.eq(d_o + 1), d_sel.eq(d_sel << 1), d_left.eq(d_left - 1)]
            with m.If(d_left == 0):
                m.d.sync += d_active.eq(0)
        # the drain starts array_latency - 2 cycles after the last step, with the tile's snapshot
        trig = Signal()
        m.d.comb += trig.eq(is_last_step & lastf)
        go, g_cfg, g_b, g_s, g_o = trig, s_cfg, s_b, s_s, s_o
        g_f = s_fcfg if cfg.flexible else None
        gos = []
        for i in range(array_latency(R, C) - 2):
            n_go, n_cfg = Signal(name=f"d_go{i}"), Signal(RQ, name=f"d_go_cfg{i}")
            n_b, n_s, n_o = Signal.like(s_b, name=f"d_go_b{i}"), Signal.like(s_s, name=f"d_go_s{i}"), \
                Signal.like(s_o, name=f"d_go_o{i}")
            m.d.sync += [n_go.eq(go), n_cfg.eq(g_cfg), n_b.eq(g_b), n_s.eq(g_s), n_o.eq(g_o)]
            if cfg.flexible:
                n_f = Signal(flex_drain_layout(cfg), name=f"d_go_f{i}")
                m.d.sync += n_f.eq(g_f)
                g_f = n_f
            go, g_cfg, g_b, g_s, g_o = n_go, n_cfg, n_b, n_s, n_o
            gos.append(n_go)
        with m.If(go):
            m.d.sync += [d_active.eq(1), d_left.eq(R - 1), d_cfg.eq(g_cfg), d_b.eq(g_b), d_s.eq(g_s),
                         d_o.eq(g_o), d_sel.eq(1)]
            if cfg.flexible:
                m.d.sync += d_fcfg.eq(g_f)
        m.d.comb += [self.b_raddr.eq(d_b), self.s_raddr.eq(d_s)]
        # mux stage (capture + r): shadows of row r -> lanes
        mv = Signal()
        msel = Signal(R)
        l_cfg = Signal(RQ)
        o_pipe = [Signal(clog2(cfg.o_depth), name=f"o_line{i}") for i in range(LATENCY + 1)]
        v_pipe = [Signal(name=f"o_valid{i}") for i in range(LATENCY + 1)]
        m.d.sync += [mv.eq(d_active), msel.eq(Mux(d_active, d_sel, 0)), l_cfg.eq(d_cfg),
                     o_pipe[0].eq(d_o), v_pipe[0].eq(d_active)]
        for i in range(1, LATENCY + 1):
            m.d.sync += [o_pipe[i].eq(o_pipe[i - 1]), v_pipe[i].eq(v_pipe[i - 1])]
        m.d.comb += arr.drain_sel.eq(msel)
        if cfg.flexible:
            m.d.sync += l_fcfg.eq(d_fcfg)
            o_data = self._flex_lanes(m, arr, lanes, mv, l_cfg, l_fcfg)
        else:
            for c, ln in enumerate(lanes):
                m.d.comb += [
                    ln.in_valid.eq(mv),
                    ln.acc.eq(arr.drain_out[c]),
                    ln.bias.eq(self.b_rdata[32 * c:32 * c + 32]),
                    ln.skip.eq(self.s_rdata[8 * c:8 * c + 8]),
                    ln.cfg.eq(l_cfg),
                ]
            o_data = Cat(*[ln.out for ln in lanes])
        m.d.comb += [
            self.o_waddr.eq(o_pipe[LATENCY]),
            self.o_wen.eq(v_pipe[LATENCY]),
            self.o_wdata.eq(o_data),
            self.drain_busy.eq((active & lastf) | Cat(*gos).any() | d_active | Cat(*v_pipe).any()),
        ]
        # drain spacing (capture' >= capture + R): the latest drain started i cycles ago (trig: 0, d_go: 1..)
        # needs steps >= R - i; one in its row phase, d_left rows left, steps >= d_left - len(gos)
        lag = len(gos)
        wait = Mux(d_active & (d_left > lag), d_left - lag, 0)
        for i in reversed(range(lag)):
            wait = Mux(gos[i], R - 1 - i, wait)
        m.d.comb += self.drain_wait.eq(Mux(trig, R, wait))
        return m

    def _flex_lanes(self, m: Module, arr, lanes, mv, l_cfg, l_fcfg):
        """Per column: bias (BIAS64) added at acc_bits, the residual's integer form, the INT8 and FP8
        lanes side by side, and OUT_FMT's choice of the two (piped with them); the O line data."""
        cfg = self.cfg
        AB = arr.acc_bits
        fsel = [Signal(name=f"fp8_sel{i}") for i in range(LATENCY + 1)]
        m.d.comb += fsel[0].eq(l_fcfg.fp8)
        for i in range(1, LATENCY + 1):
            m.d.sync += fsel[i].eq(fsel[i - 1])
        outs = []
        for c, ln in enumerate(lanes):
            lo, hi = self.b_rdata[32 * c:32 * c + 32], self.b_rdata_hi[32 * c:32 * c + 32]
            bias = Signal(signed(64), name=f"bias{c}")
            m.d.comb += bias.eq(Mux(l_fcfg.bias64, Cat(lo, hi).as_signed(), lo.as_signed()))
            vb = Signal(signed(AB), name=f"vb{c}")
            m.d.comb += vb.eq((arr.drain_out[c] + Mux(l_cfg.use_bias, bias, 0))[:AB])
            dec = m.submodules[f"skip_dec{c}"] = OperandDecoder(cfg.formats, weight=False)
            m.d.comb += [dec.code.eq(self.s_rdata[8 * c:8 * c + 8]), dec.fmt.eq(l_fcfg.skip_fmt),
                         dec.a_signed.eq(l_cfg.skip_signed)]
            skip = Signal(signed(activation_bits(cfg.formats)), name=f"skip_int{c}")
            m.d.comb += skip.eq(dec.sig << dec.exp)
            # the FP8 lane encodes the residual-aligned value (the INT8 lane aligns in its stage 2)
            x = Signal(signed(MIXED_ACC_BITS), name=f"x_aligned{c}")
            m.d.comb += x.eq(Mux(l_cfg.use_skip & ~l_cfg.raw,
                                 ((vb << l_cfg.acc_lshift)[:MIXED_ACC_BITS] + (skip << l_cfg.skip_lshift)[:MIXED_ACC_BITS]),
                                 vb))
            fl = m.submodules[f"fp8_lane{c}"] = Fp8RequantLane(cfg.formats, MIXED_ACC_BITS)
            m.d.comb += [ln.in_valid.eq(mv), ln.acc.eq(vb), ln.skip.eq(skip), ln.cfg.eq(l_cfg),  # bias 0: in vb
                         fl.in_valid.eq(mv), fl.acc.eq(x),
                         fl.cfg.eq(l_fcfg.fp8_cfg)]
            outs.append(Mux(fsel[LATENCY], fl.out.as_unsigned(), ln.out.as_unsigned())[:64])
        return Cat(*outs)

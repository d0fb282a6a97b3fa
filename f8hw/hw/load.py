"""LOAD unit: LOAD (main memory -> W / B / S) and LOAD_A (im2col gather -> A banks).

Pipeline: the instruction issues at t; word i presents its main-memory read
address at t + 1 + i (address phase) and is written into its scratchpad at
t + 2 + i (data phase; the write is visible from t + 3 + i).  So the unit is
busy for cycles t+1 .. t+words+1 and a dependent instruction can issue at
load_end = t + words + LOAD_LATENCY (2).  A zero-word instruction still holds
the unit for one cycle (the ``pulse``).

LOAD_A's address generator uses only counters and adders: running values of
ih+kh, iw+kw, the row/column/word addresses (pa + kh*STEP_KH + kw*STEP_KW + cb)
and the line index are updated incrementally; out-of-image positions do not
read memory and write PAD_VALUE.

Tap gather (A_GATHER = G in 1..C): a byte offset advances by G per word and
the line index by one when the next word would not fit or the pixel ends; the
data phase keeps the word's low G bytes, shifts them to the offset and ORs them
into a line register, which is written whole (and cleared) when the line is
complete.  Gather off is the same datapath with G = C: every word is a line.

Window reuse (A_DIAG): the walk is (kh, j, cb) over the input columns
j = 0 .. SW*(npix-1)+KW-1 of one row, one read per word.  Bank r takes the
word when SW*r <= j < SW*r + KW.  No comparator per bank: bank windows open
every SW columns and close every SW columns from column KW on, in bank
order, so a start pointer and a stop pointer (one-hot) advance on two
down-counters and the registered hit mask is set / cleared one bank at a
time; the row ends on the column before bank npix-1 closes.  The lines a
bank receives are consecutive (dst, dst+1, ...), so each bank has its own
line counter, advanced when it takes a word (per-bank write addresses and
enables, registered with the word).  The line counters are only as wide as
the first out-of-range line needs: the run stops on it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw import isa
from f8hw.arch import ADDR_BITS, ArchConfig
from f8hw.hw.common import clog2, replicate
from f8hw.hw.isadec import field, field_width
from f8hw.hw.regs import REGS


class LoadUnit(wiring.Component):
    def __init__(self, cfg: ArchConfig):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("LoadUnit needs an ArchConfig")
        self.cfg = cfg
        C, R = cfg.cols, cfg.rows
        super().__init__({
            "issue": In(1),
            "is_a": In(1),
            "instr": In(isa.INSTR_BITS),
            "regs": In(REGS),
            "mem_rdata": In(8 * C),
            "mem_raddr": Out(ADDR_BITS),
            "mem_ren": Out(1),
            "busy": Out(1),
            "err": Out(1),
            "err_code": Out(isa.ERROR_CODE_BITS),
            "w_wen": Out(1), "w_waddr": Out(clog2(cfg.w_depth)), "w_wdata": Out(8 * C),
            "s_wen": Out(1), "s_waddr": Out(clog2(cfg.s_depth)), "s_wdata": Out(8 * C),
            "b_wen": Out(4 * C), "b_waddr": Out(clog2(cfg.b_depth)), "b_wdata": Out(32 * C),
            "a_wen": Out(R), "a_waddr": Out(data.ArrayLayout(clog2(cfg.a_depth), R)), "a_wdata": Out(8 * C),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        C, R = cfg.cols, cfg.rows
        ins = self.instr
        DW = field_width("LOAD", "dst") + 2           # destination index with headroom for range checks
        memw = clog2(cfg.mem_words)

        pulse = Signal()
        active = Signal()
        is_a = Signal()
        target = Signal(2)
        addr = Signal(ADDR_BITS)        # current word address
        dest = Signal(DW)               # LOAD: target index; LOAD_A: bank line
        left = Signal(17)               # LOAD: words left
        stride = Signal(ADDR_BITS)
        # LOAD_A state
        r_ = {n: Signal(signed(32), name=f"la_{n}") for n in (
            "in_h", "in_w", "out_w", "stride_h", "stride_w", "pad_w", "step_kh", "step_kw", "step_ow", "step_wrap")}
        pad_value = Signal(8)
        OW_ = clog2(C + 1) + 1
        g_bytes = Signal(OW_)           # G (C when gather is off)
        boff = Signal(OW_)              # byte offset of the current word in its line
        # the walk's loops (channel block, kernel column / row, output column) as countdowns whose
        # "last step" flag is kept one step ahead, so no compare sits on the advance path
        ends = {"cb": _Countdown("cb", field_width("LOAD_A", "ncb")), "kw": _Countdown("kw", 16),
                "kh": _Countdown("kh", 16), "ow": _Countdown("ow", 32)}
        cb_end, kw_end, kh_end, ow_end = (ends[n].last for n in ("cb", "kw", "kh", "ow"))
        pix_left = Signal(field_width("LOAD_A", "npix"))
        dst0 = Signal(DW)
        bank = Signal(R)                # one-hot
        ih = Signal(signed(32))
        iw = Signal(signed(32))
        ihk = Signal(signed(32))
        iwk = Signal(signed(32))
        pa = Signal(ADDR_BITS)
        row_addr = Signal(ADDR_BITS)
        col_addr = Signal(ADDR_BITS)
        # window reuse (A_DIAG) state
        LW = max(field_width("LOAD_A", "dst"), clog2(cfg.a_depth) + 1) + 1   # no wrap before line a_depth
        CW = 17                         # SW, KW <= 2^16
        diag = Signal()
        kwc = Signal(CW)                # KW, for the next row's restart (SW: opening.period)
        opening, closing = _Countdown("la_open", CW), _Countdown("la_close", CW)   # columns to the next open / close
        start_ptr, stop_ptr = Signal(R), Signal(R)     # one-hot: the bank it opens / closes
        hit = Signal(R)                 # banks whose window holds the current column
        stop_last = Signal()            # stop_ptr is bank npix-1
        np_mask = Signal(R)             # banks r < npix
        last_bank = Signal(R)           # one-hot: bank npix-1
        bline = [Signal(LW, name=f"la_bline{r}") for r in range(R)]  # bank r's next line

        def diag_row_start(sw_, kw_, npix_is1):
            """Column 0 of a window-reuse row: bank 0's window is open (npix >= 1, KW >= 1), bank 1's
            opens SW columns on, bank 0's closes KW columns on."""
            m.d.sync += [hit.eq(1), start_ptr.eq(2), stop_ptr.eq(1), stop_last.eq(npix_is1)]
            opening.start(m, sw_, sw_)
            closing.start(m, kw_, sw_)

        in_image = Signal()
        m.d.comb += in_image.eq((ihk >= 0) & (ihk < r_["in_h"]) & (iwk >= 0) & (iwk < r_["in_w"]))
        ren = Signal()
        m.d.comb += [
            ren.eq(active & (~is_a | in_image)),
            self.mem_raddr.eq(addr),
            self.mem_ren.eq(ren),
        ]
        mem_err = Signal()
        if memw < ADDR_BITS:
            m.d.comb += mem_err.eq(ren & (addr[memw:] != 0))

        # ---- data phase registers
        d_valid = Signal()
        d_is_a = Signal()
        d_target = Signal(2)
        d_dest = Signal(DW)
        d_pad = Signal()
        d_bank = Signal(R)
        d_boff = Signal(OW_)
        d_diag = Signal()
        d_hit = Signal(R)
        d_line = [Signal(LW, name=f"d_line{r}") for r in range(R)]
        d_wr = Signal()                 # the word completes its line
        pix_end = Signal()
        line_full = Signal()
        m.d.comb += [
            pix_end.eq(cb_end & kw_end & kh_end),
            line_full.eq((boff + 2 * g_bytes) > C),
        ]
        m.d.sync += [
            pulse.eq(0),
            d_valid.eq(active),
            d_is_a.eq(is_a),
            d_target.eq(target),
            d_dest.eq(dest),
            d_pad.eq(~in_image),
            d_bank.eq(bank),
            d_boff.eq(boff),
            d_wr.eq(~is_a | line_full | pix_end),
            d_diag.eq(diag),
            d_hit.eq(hit),
        ]
        m.d.sync += [d_line[r].eq(bline[r]) for r in range(R)]

        # ---- address phase: the next positions (from registers only, selected below)
        n_ih, n_iw = Signal(signed(32)), Signal(signed(32))
        n_pa, ncol, nrow = Signal(ADDR_BITS), Signal(ADDR_BITS), Signal(ADDR_BITS)
        m.d.comb += [
            n_ih.eq(Mux(ow_end, ih + r_["stride_h"], ih)),
            n_iw.eq(Mux(ow_end, -r_["pad_w"], iw + r_["stride_w"])),
            n_pa.eq(Mux(ow_end, pa + r_["step_wrap"], pa + r_["step_ow"])),
            ncol.eq(col_addr + r_["step_kw"]),
            nrow.eq(row_addr + r_["step_kh"]),
        ]
        # ---- address phase: advance
        with m.If(active):
            with m.If(~is_a):
                m.d.sync += [addr.eq(addr + stride), dest.eq(dest + 1), left.eq(left - 1)]
                with m.If(left == 1):
                    m.d.sync += active.eq(0)
            with m.Elif(diag):
                m.d.sync += addr.eq(addr + 1)
                m.d.sync += [bline[r].eq(bline[r] + hit[r]) for r in range(R)]
                ends["cb"].advance(m)
                with m.If(cb_end):
                    m.d.sync += [iwk.eq(iwk + 1), col_addr.eq(ncol), addr.eq(ncol)]
                    with m.If(closing.last & stop_last):   # the row's last column
                        m.d.sync += [ihk.eq(ihk + 1), iwk.eq(iw),
                                     row_addr.eq(nrow), col_addr.eq(nrow), addr.eq(nrow)]
                        diag_row_start(opening.period, kwc, last_bank[0])
                        ends["kh"].advance(m)
                        with m.If(kh_end):
                            m.d.sync += active.eq(0)
                    with m.Else():
                        opening.advance(m)
                        closing.advance(m)
                        opens = Mux(opening.last, start_ptr, 0)
                        closes = Mux(closing.last, stop_ptr, 0)
                        m.d.sync += [
                            hit.eq((hit | opens) & ~closes & np_mask),
                            start_ptr.eq(Mux(opening.last, start_ptr << 1, start_ptr)),
                            stop_ptr.eq(Mux(closing.last, stop_ptr << 1, stop_ptr)),
                            stop_last.eq(Mux(closing.last, ((stop_ptr << 1)[:R] & last_bank).any(), stop_last)),
                        ]
            with m.Else():
                m.d.sync += addr.eq(addr + 1)
                with m.If(line_full):
                    m.d.sync += [dest.eq(dest + 1), boff.eq(0)]
                with m.Else():
                    m.d.sync += boff.eq(boff + g_bytes)
                ends["cb"].advance(m)
                with m.If(cb_end):
                    m.d.sync += [iwk.eq(iwk + 1), col_addr.eq(ncol), addr.eq(ncol)]
                    ends["kw"].advance(m)
                    with m.If(kw_end):
                        m.d.sync += [ihk.eq(ihk + 1), iwk.eq(iw),
                                     row_addr.eq(nrow), col_addr.eq(nrow), addr.eq(nrow)]
                        ends["kh"].advance(m)
                        with m.If(kh_end):
                            m.d.sync += [
                                dest.eq(dst0), boff.eq(0), bank.eq(bank << 1), pix_left.eq(pix_left - 1),
                                ih.eq(n_ih), iw.eq(n_iw), pa.eq(n_pa),
                                ihk.eq(n_ih), iwk.eq(n_iw), row_addr.eq(n_pa), col_addr.eq(n_pa), addr.eq(n_pa),
                            ]
                            ends["ow"].advance(m)
                            with m.If(pix_left == 1):
                                m.d.sync += active.eq(0)

        # ---- issue (overrides the idle unit's state)
        with m.If(self.issue):
            m.d.sync += [pulse.eq(1), is_a.eq(self.is_a)]
            with m.If(~self.is_a):
                cnt = field(ins, "LOAD", "count")
                m.d.sync += [
                    active.eq(cnt != 0),
                    target.eq(field(ins, "LOAD", "target")),
                    dest.eq(field(ins, "LOAD", "dst")),
                    left.eq(cnt),
                    addr.eq(field(ins, "LOAD", "addr")),
                    stride.eq(field(ins, "LOAD", "stride")),
                ]
            with m.Else():
                g = self.regs
                ih0, iw0 = field(ins, "LOAD_A", "ih0"), field(ins, "LOAD_A", "iw0")
                a0 = field(ins, "LOAD_A", "addr")
                ncb = field(ins, "LOAD_A", "ncb")
                empty = (g.kh == 0) | (g.kw == 0) | (ncb == 0)
                m.d.sync += [
                    active.eq(~empty),
                    dest.eq(field(ins, "LOAD_A", "dst")),
                    dst0.eq(field(ins, "LOAD_A", "dst")),
                    pix_left.eq(field(ins, "LOAD_A", "npix")),
                    bank.eq(1),
                    ih.eq(ih0), iw.eq(iw0), ihk.eq(ih0), iwk.eq(iw0),
                    pa.eq(a0), row_addr.eq(a0), col_addr.eq(a0), addr.eq(a0),
                    pad_value.eq(g.pad_value[:8]),
                    boff.eq(0),
                    g_bytes.eq(Mux((g.a_gather >= 1) & (g.a_gather <= C), g.a_gather[:OW_], C)),
                ]
                for n, count in (("cb", ncb), ("kw", g.kw), ("kh", g.kh)):
                    ends[n].start(m, count, count)
                ow_left = (g.out_w.as_unsigned() - field(ins, "LOAD_A", "ow0"))[:32]   # output columns to the wrap
                ends["ow"].start(m, ow_left, g.out_w.as_unsigned())
                # window reuse: A_DIAG != 0, gather off (G = C) and 1 <= STRIDE_W <= KW
                kwn = Signal(CW)
                swv = Signal(CW)
                npix_f = field(ins, "LOAD_A", "npix")
                m.d.comb += [kwn.eq((g.kw - 1)[:16] + 1), swv.eq(g.stride_w[:CW])]
                m.d.sync += [
                    diag.eq((g.a_diag != 0) & ~((g.a_gather >= 1) & (g.a_gather < C))
                            & (g.stride_w >= 1) & (g.stride_w <= kwn)),
                    kwc.eq(kwn),
                    np_mask.eq(Cat(*[npix_f > r for r in range(R)])),
                    last_bank.eq(Cat(*[npix_f == r + 1 for r in range(R)])),
                ]
                diag_row_start(swv, kwn, npix_f == 1)
                m.d.sync += [bline[r].eq(field(ins, "LOAD_A", "dst")) for r in range(R)]
                m.d.sync += [r_[n].eq(getattr(g, n)) for n in r_]

        # ---- data phase: scratchpad writes
        wv = d_valid & ~d_is_a
        a_err = Signal()
        d_bad = Cat(*[d_hit[r] & (d_line[r] >= cfg.a_depth) for r in range(R)])
        m.d.comb += a_err.eq(d_valid & d_is_a & Mux(d_diag, d_bad.any(), d_dest >= cfg.a_depth))
        m.d.comb += [
            self.w_wen.eq(wv & (d_target == isa.LoadTarget.W)),
            self.w_waddr.eq(d_dest),
            self.w_wdata.eq(self.mem_rdata),
            self.s_wen.eq(wv & (d_target == isa.LoadTarget.S)),
            self.s_waddr.eq(d_dest),
            self.s_wdata.eq(self.mem_rdata),
            self.b_waddr.eq(d_dest[2:]),
            self.b_wdata.eq(Cat(*[replicate(self.mem_rdata[8 * c:8 * c + 8], 4) for c in range(C)])),
            self.a_wen.eq(Mux(d_valid & d_is_a & ~a_err, Mux(d_diag, d_hit, Mux(d_wr, d_bank, 0)), 0)),
        ]
        m.d.comb += [self.a_waddr[r].eq(Mux(d_diag, d_line[r], d_dest)) for r in range(R)]
        # tap gather: low G bytes of the word, shifted to the byte offset, ORed into the line register
        word = Signal(8 * C)
        keep = Signal(8 * C)
        line = Signal(8 * C)
        acc_line = Signal(8 * C)
        m.d.comb += [
            word.eq(Mux(d_pad, replicate(pad_value, C), self.mem_rdata)),
            keep.eq(Cat(*[replicate(g_bytes > b, 8) for b in range(C)])),
            line.eq(acc_line | ((word & keep) << (d_boff[:max(1, clog2(C))] * 8))[:8 * C]),
            self.a_wdata.eq(line),
        ]
        with m.If(d_valid & d_is_a):
            m.d.sync += acc_line.eq(Mux(d_wr, 0, line))
        plane = d_dest[:2]
        bsel = Signal(4)
        m.d.comb += bsel.eq(Mux(wv & (d_target == isa.LoadTarget.B), 1 << plane, 0))
        m.d.comb += self.b_wen.eq(replicate(bsel, C))
        m.d.comb += [
            self.busy.eq(pulse | active | d_valid),
            self.err.eq(mem_err | a_err),
            self.err_code.eq(Mux(mem_err, int(isa.ErrorCode.MEM), int(isa.ErrorCode.SPAD))),
        ]
        return m


class _Countdown:
    """Steps left to an event (1 = the current step is the last), reloaded with a period after it; the
    "last" flag is registered and updated one step ahead (from == 2), off the advance path.  Values are
    taken mod 2^width, so 0 means 2^width steps, as an up-counter of that width wrapping would count."""

    def __init__(self, name: str, width: int):
        self.width = width
        self.left, self.period = Signal(width, name=f"{name}_left"), Signal(width, name=f"{name}_period")
        self.last = Signal(name=f"{name}_last")

    def start(self, m: Module, first, period):
        """The first event after `first` steps, then every `period` steps."""
        w = self.width
        m.d.sync += [self.left.eq(first), self.period.eq(period), self.last.eq(first[:w] == 1)]

    def advance(self, m: Module):
        m.d.sync += [self.left.eq(Mux(self.last, self.period, self.left - 1)),
                     self.last.eq(Mux(self.last, self.period == 1, self.left == 2))]

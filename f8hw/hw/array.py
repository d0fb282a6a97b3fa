"""R x C output-stationary MAC array (row-broadcast activations, column-systolic weights).

PE(r, c) owns output (pixel r, channel c).  Weights enter at row 0 (one W
entry = C int8 per step) and move down one row per cycle through each PE's
weight register; row r therefore runs every step one cycle after row r-1, and
its control (``ctl[r]``: valid/first/last/mode/A_SIGNED/byte select) and its
activation line (bank r of the A scratchpad, read with the same skew) arrive
with that delay.  Within a row the activation is broadcast: DENSE uses one
byte of the line (selected by ``byte``) for every column, DEPTHWISE and MAX
give column c byte c of the line.  There is no column skew, so the rows finish
a tile one after the other, one cycle apart; the drain reads row r's shadow
registers (``drain_sel`` one-hot) in exactly the cycle they become valid.
The PEs have two stages (multiply, accumulate: f8hw.arch.PE_LATENCY): ``ctl[r]``
drives row r's multiply stage, and a register per row gives its accumulate stage
the same controls one cycle later (a FlexPE registers them itself), so a step's
result is in the accumulators two cycles after its operands.

A flexible build (formats beyond int8) uses f8hw.hw.fpe.FlexPE: the row control
also carries the layer's A_FMT / W_FMT (snapshotted at issue like A_SIGNED), the
weights move down as codes, and the shadows are acc_bits(formats) wide.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from f8hw.arch import INT8_ONLY, MAX_DIM
from f8hw.hw.common import check_int, clog2, replicate, tree_or
from f8hw.hw.fpe import FlexPE, acc_bits, check_formats, fpe_cfg_layout
from f8hw.hw.pe import A_BITS, ACC_BITS, W_BITS, pe_logic


def row_ctl_layout(cols: int, formats=INT8_ONLY) -> data.StructLayout:
    members = {"valid": 1, "first": 1, "last": 1, "dense": 1, "max": 1, "a_signed": 1, "byte": unsigned(clog2(cols))}
    if tuple(formats) != INT8_ONLY:
        sel = fpe_cfg_layout(formats).members["a_fmt"]
        members.update(a_fmt=sel, w_fmt=sel)
    return data.StructLayout(members)


class MacArray(wiring.Component):
    def __init__(self, rows: int, cols: int, formats=INT8_ONLY):
        self.rows = check_int("rows", rows, 1, MAX_DIM)
        self.cols = check_int("cols", cols, 1, MAX_DIM)
        self.formats = check_formats(formats)
        self.flexible = self.formats != INT8_ONLY
        self.acc_bits = acc_bits(self.formats) if self.flexible else ACC_BITS
        super().__init__({
            "w_in": In(data.ArrayLayout(signed(W_BITS), cols)),
            "line": In(data.ArrayLayout(unsigned(8 * cols), rows)),
            "ctl": In(data.ArrayLayout(row_ctl_layout(cols, self.formats), rows)),
            "drain_sel": In(rows),
            "drain_out": Out(data.ArrayLayout(signed(self.acc_bits), cols)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        w_row = [self.w_in[c] for c in range(C)]
        shadows = []
        for r in range(R):
            ctl = self.ctl[r]
            line = self.line[r]
            bcast = Signal(8, name=f"r{r}_bcast")
            if C > 1:
                m.d.comb += bcast.eq(Array([line[8 * i:8 * i + 8] for i in range(C)])[ctl.byte])  # a mux, no $mul
            else:
                m.d.comb += bcast.eq(line[:8])
            row_sh, nxt_w = [], []
            acc_ctl = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "max": 1}), name=f"r{r}_acc_ctl")
            m.d.sync += [acc_ctl.valid.eq(ctl.valid), acc_ctl.first.eq(ctl.first), acc_ctl.last.eq(ctl.last),
                         acc_ctl.max.eq(ctl.max)]
            for c in range(C):
                raw = Mux(ctl.dense, bcast, line[8 * c:8 * c + 8])
                if self.flexible:
                    sh, w_reg = self._flex_pe(m, raw, w_row[c], ctl, f"r{r}c{c}")
                    row_sh.append(sh)
                    nxt_w.append(w_reg)
                    continue
                a = Signal(signed(A_BITS), name=f"r{r}c{c}_a")
                m.d.comb += a.eq(Mux(ctl.a_signed, raw.as_signed(), raw))
                _, sh, w_reg = pe_logic(m, a, w_row[c], ctl.max, acc_ctl.valid, acc_ctl.first, acc_ctl.last,
                                        acc_ctl.max, name=f"r{r}c{c}")
                row_sh.append(sh)
                nxt_w.append(w_reg)
            shadows.append(row_sh)
            w_row = nxt_w
        for c in range(C):
            m.d.comb += self.drain_out[c].eq(
                tree_or([shadows[r][c] & replicate(self.drain_sel[r], self.acc_bits) for r in range(R)]))
        return m

    def _flex_pe(self, m: Module, a, w, ctl, name: str):
        """A FlexPE on (activation code, weight code) with the row's formats; (shadow, w_out)."""
        pe = m.submodules[f"{name}_pe"] = FlexPE(self.formats)
        m.d.comb += [pe.a.eq(a), pe.w.eq(w), pe.cfg.a_fmt.eq(ctl.a_fmt), pe.cfg.w_fmt.eq(ctl.w_fmt),
                     pe.cfg.a_signed.eq(ctl.a_signed), pe.valid.eq(ctl.valid), pe.first.eq(ctl.first),
                     pe.last.eq(ctl.last), pe.max_mode.eq(ctl.max)]
        return pe.shadow, pe.w_out

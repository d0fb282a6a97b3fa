"""A register-to-register harness for measuring one block's Fmax with nextpnr.

nextpnr's "Max frequency" times register-to-register paths only (the IOs are
unconstrained), so a block measured bare hides every path that starts at an
input port or ends at an output port (the PE's multiplier hangs off its
operand ports).  ``FmaxWrapper`` registers every input and every output of the
block, so each of its paths starts and ends at a flip-flop:

- inputs: the block's input bits (all of its In members, flattened) are the
  outputs of ``in_pins`` shift-register chains, each fed by one pin (a block
  with at most ``in_pins`` input bits gets one register per bit, fed directly);
- outputs: every output bit is registered, then folded by a tree of registered
  XOR-4 stages down to at most ``out_pins`` pins, so no output is unused (and
  none optimized away) and the tree is one LUT deep per stage.

Neither the chains nor the fold add logic between two of the block's own
registers, so the figure is the block's own (or that of the wrapper's one-LUT
stages, which are faster than any block's).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FmaxWrapper", "port_bits"]


def port_bits(block: wiring.Component) -> tuple[list[Value], list[Value]]:
    """(input values, output values) of a component's signature, flattened (data views as their bits)."""
    ins, outs = [], []
    for _path, member, value in block.signature.flatten(block):
        (ins if member.flow == In else outs).append(Value.cast(value))
    return ins, outs


class FmaxWrapper(wiring.Component):
    """``block`` with registered inputs (shift chains from ``sin``) and registered, XOR-folded outputs (``sout``)."""

    def __init__(self, block: wiring.Component, in_pins: int = 32, out_pins: int = 32):
        self.block = block
        ins, outs = port_bits(block)
        self.n_in, self.n_out = sum(len(v) for v in ins), sum(len(v) for v in outs)
        if not self.n_in or not self.n_out:
            raise ValueError("a block without inputs or outputs cannot be timed register to register")
        self.in_pins, self.out_pins = min(in_pins, self.n_in), min(out_pins, self.n_out)
        super().__init__({"sin": In(self.in_pins), "sout": Out(self.out_pins)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.block
        ins, outs = port_bits(self.block)
        k = self.in_pins
        length = -(-self.n_in // k)
        chains = []
        for j in range(k):
            ch = Signal(length, name=f"chain{j}", reset_less=True)
            m.d.sync += ch.eq(Cat(self.sin[j], ch[:-1]) if length > 1 else self.sin[j])
            chains.append(ch)
        m.d.comb += Cat(*ins).eq(Cat(*chains)[:self.n_in])
        level = Signal(self.n_out, name="out_reg", reset_less=True)
        m.d.sync += level.eq(Cat(*outs))
        n, i = self.n_out, 0
        while n > self.out_pins:
            w = max(self.out_pins, -(-n // 4))
            nxt = Signal(w, name=f"fold{i}", reset_less=True)
            bits = []
            for b in range(w):
                x = level[b]
                for g in range(b + w, n, w):
                    x = x ^ level[g]
                bits.append(x)
            m.d.sync += nxt.eq(Cat(*bits))
            level, n, i = nxt, w, i + 1
        m.d.comb += self.sout.eq(level)
        return m

"""The Fmax harness (f8hw/bench/fmaxwrap.py): every input bit of the block comes from a shift-chain register,
every output bit reaches a pin through registered XOR folds (Amaranth simulation, no tools)."""

from __future__ import annotations

import random

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from f8hw.bench.fmaxwrap import FmaxWrapper


class _Echo(wiring.Component):
    """Outputs its inputs combinationally (x -> y, and y2 = ~x[:n2]): what the wrapper feeds is what it folds."""

    def __init__(self, n: int, n2: int):
        self.n2 = n2
        super().__init__({"x": In(n), "y": Out(n), "y2": Out(n2)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.y.eq(self.x), self.y2.eq(~self.x[:self.n2])]
        return m


def _run(n, n2, in_pins, out_pins, seed):
    rng = random.Random(seed)
    dut = _Echo(n, n2)
    w = FmaxWrapper(dut, in_pins=in_pins, out_pins=out_pins)
    k, length = w.in_pins, -(-n // w.in_pins)
    x = rng.getrandbits(n)
    seen = {}
    folds, width = 0, n + n2
    while width > w.out_pins:
        width, folds = max(w.out_pins, -(-width // 4)), folds + 1

    async def tb(ctx):
        # chain j holds bits j*length .. j*length + length - 1; its pin enters at the low end and shifts up
        for step in range(length):
            pins = 0
            for j in range(k):
                b = j * length + (length - 1 - step)
                pins |= ((x >> b) & 1 if b < n else 0) << j
            ctx.set(w.sin, pins)
            await ctx.tick()
        seen["x"] = ctx.get(dut.x)
        for _ in range(1 + folds):   # the output register and the fold stages (the chains shift on)
            await ctx.tick()
        seen["out"] = ctx.get(w.sout)

    sim = Simulator(w)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    outs = x | ((~x & ((1 << n2) - 1)) << n)          # Cat(y, y2)
    width = n + n2
    while width > w.out_pins:                         # the fold, recomputed here
        nw = max(w.out_pins, -(-width // 4))
        folded = 0
        for b in range(nw):
            bit = 0
            for g in range(b, width, nw):
                bit ^= (outs >> g) & 1
            folded |= bit << b
        outs, width = folded, nw
    return seen, x, outs, w


def test_wide_block_through_chains_and_folds():
    seen, x, outs, w = _run(n=83, n2=50, in_pins=7, out_pins=5, seed=1)
    assert (w.in_pins, w.out_pins) == (7, 5)    # 133 output bits: folds to 34, 9, 5
    assert seen["x"] == x
    assert seen["out"] == outs


def test_narrow_block_one_register_per_bit():
    seen, x, outs, w = _run(n=6, n2=3, in_pins=32, out_pins=32, seed=2)
    assert (w.in_pins, w.out_pins) == (6, 9)
    assert seen["x"] == x and seen["out"] == outs


def test_block_without_outputs_rejected():
    import pytest

    class NoOut(wiring.Component):
        def __init__(self):
            super().__init__({"x": In(4)})

        def elaborate(self, platform):
            m = Module()
            s = Signal(4)
            m.d.sync += s.eq(self.x)
            return m

    with pytest.raises(ValueError, match="inputs or outputs"):
        FmaxWrapper(NoOut())

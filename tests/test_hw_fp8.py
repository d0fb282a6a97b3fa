"""The flexible-format blocks in Amaranth's simulator and yosys: parameter validation, widths derived from
f8hw.numerics, the operand decoder against numerics.fp8.split on every code, and the netlists' multipliers
(the RTL tests of the PE and the FP8 lane are sim/test_fp8_units.py)."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from f8hw import numerics
from f8hw.arch import ArchError
from f8hw.hw.fp8requant import Fp8RequantLane, fp8_rq_cfg_value, shift_bits, shift_range
from f8hw.hw.fpe import HW_FORMATS, FlexPE, OperandDecoder, acc_bits, fpe_cfg_value, product_bits

ROOT = Path(__file__).resolve().parent.parent
SET = ("int8", "e2m5", "e3m4", "e4m3")


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # the objects whose __init__ raised
@pytest.mark.parametrize("formats,msg", [
    (("int8", "e6m1"), "unknown PE format 'e6m1'"),
    (("int8", "e4m3", "e4m3"), "name a format twice"),
    (("e4m3", "int8"), "must start with 'int8'"),
    ("int8", "non-empty tuple"),
    ((), "non-empty tuple"),
])
def test_formats_validated(formats, msg):
    with pytest.raises(ArchError, match=msg):
        FlexPE(formats)
    with pytest.raises(ArchError, match=msg):
        Fp8RequantLane(formats)
    gc.collect()   # the half-built objects warn when collected: here, under the filter


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_config_values_validated():
    with pytest.raises(ArchError, match="weight format 'e5m2' is not in"):
        fpe_cfg_value(SET, "int8", "e5m2")
    with pytest.raises(ArchError, match="output format 'e5m2' is not among"):
        fp8_rq_cfg_value(SET, "e5m2", 0)
    with pytest.raises(ArchError, match="shift must be an integer in -128..127, got 128"):
        fp8_rq_cfg_value(SET, "e4m3", 128)
    with pytest.raises(ArchError, match="needs an FP8 format"):
        Fp8RequantLane(("int8",))
    gc.collect()


def test_widths_from_numerics():
    """docs/ir.md's worst-case table (K = 4608): INT8/E2M5/E3M4 34 bits, with E4M3 49, with E5M2 77."""
    assert acc_bits(("int8",)) == numerics.ACC_BITS
    assert acc_bits(("int8", "e2m5", "e3m4")) == 34
    assert acc_bits(SET) == 49
    assert acc_bits(HW_FORMATS) == 77
    assert product_bits(SET) == (2 * numerics.fp8_format("e4m3").max_int ** 2).bit_length()
    # every byte, NaN/Inf codes included, fits the product and MAX widths (as the ISA simulator decodes it)
    from f8hw.hw.fpe import activation_bits, decoded_max
    from f8hw.isasim.flex import decode_table

    for f in HW_FORMATS[1:]:
        assert decoded_max(f, False) == int(np.abs(decode_table(f)).max()) >= numerics.fp8_format(f).max_int
    assert activation_bits(("int8", "e3m4")) == 12 and product_bits(("int8", "e3m4")) == (1984 ** 2).bit_length() + 1
    lo, hi = shift_range(SET)
    assert (lo, hi) == (-62, 91) and shift_bits(SET) == 8
    assert -(1 << (shift_bits(HW_FORMATS) - 1)) <= shift_range(HW_FORMATS)[0]


@pytest.mark.parametrize("weight", [False, True], ids=["activation", "weight"])
def test_decoder_is_split(weight):
    """Every code of every format: (significand, exponent) = numerics.fp8.split; INT8 the (9-bit) integer."""
    dut = OperandDecoder(HW_FORMATS, weight)
    got = {}

    async def tb(ctx):
        for i, fmt in enumerate(HW_FORMATS):
            for a_signed in ((0, 1) if fmt == "int8" and not weight else (0,)):
                for code in range(256):
                    ctx.set(dut.code, code)
                    ctx.set(dut.fmt, i)
                    if not weight:
                        ctx.set(dut.a_signed, a_signed)
                    got[fmt, a_signed, code] = (ctx.get(dut.sig), ctx.get(dut.exp))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    for fmt in HW_FORMATS:
        if fmt == "int8":
            for (f, a_signed, code), (sig, exp) in got.items():
                if f == "int8":
                    want = code - 256 if code >= 128 and (weight or a_signed) else code
                    assert (sig, exp) == (want, 0), (code, a_signed)
            continue
        codes = np.flatnonzero(numerics.finite_mask(fmt))
        sig, exp = numerics.split(codes, fmt)
        for c, s, e in zip(codes.tolist(), sig.tolist(), exp.tolist()):
            assert got[fmt, 0, c] == (s, e), (fmt, hex(c))


def test_max_after_a_mac_tile_compares_the_whole_accumulator():
    """MAX with acc = 1 onto a MAC result beyond the activations' width: x > acc as the ISA compares it
    (f8hw.isasim: np.maximum over the whole accumulator), not on the low bits."""
    from f8hw.hw.fpe import Accumulator

    dut = Accumulator(in_bits=12, width=20, max_bits=6)
    seen = []

    async def tb(ctx):
        for start, x in [(1 << 10, 5), (-(1 << 10), 5), ((1 << 10) + 3, -4), (-(1 << 10) + 1, -20), (7, 9), (-9, -12)]:
            ctx.set(dut.valid, 1)
            ctx.set(dut.first, 1)
            ctx.set(dut.max_mode, 0)
            ctx.set(dut.x, start)
            await ctx.tick()
            ctx.set(dut.first, 0)
            ctx.set(dut.max_mode, 1)
            ctx.set(dut.x, x)
            await ctx.tick()
            seen.append((start, x, ctx.get(dut.acc)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert [acc for *_, acc in seen] == [max(s, x) for s, x, _ in seen]


def test_netlists_multipliers():
    """The flexible PE's only $mul is the 9 x 8-bit signed significand multiplier; the FP8 lane has none."""
    from f8hw.hw.build import _convert, count_multipliers

    wd = ROOT / "build" / "test_hw_fp8"
    muls = count_multipliers({"fpe.v": _convert(FlexPE(SET), "f8hw_fpe")}, "f8hw_fpe", wd / "fpe")
    assert [(m["A_WIDTH"], m["B_WIDTH"], m["A_SIGNED"], m["B_SIGNED"]) for m in muls] == [(9, 8, 1, 1)]
    assert count_multipliers({"rq.v": _convert(Fp8RequantLane(SET), "f8hw_fp8rq")}, "f8hw_fp8rq", wd / "rq") == []


def test_format_area_report():
    """run_format_area: the flexible PE against the INT8 PE (the bar: <= 1.5x in generic cells) and what each
    part costs; the parts add up to the hierarchical total."""
    from f8hw.bench.hwcost import run_format_area

    r = run_format_area(ROOT / "build" / "test_hw_fp8" / "area", sets=(SET,), lanes=False)
    row = r["pe"][0]
    assert row["formats"] == "+".join(SET) and row["acc_bits"] == 49
    assert set(row["parts"]) == {"decoders", "multiplier", "shifter", "accumulator"}
    assert row["ratio_cells"] == round(row["cells"] / r["int8_pe"]["cells"], 3) <= 1.5
    assert abs(sum(p["cells"] for p in row["parts"].values()) - row["cells"]) < 0.1 * row["cells"]


def test_accelerator_format_area():
    """run_accel_format_area: the whole flexible accelerator (2x2) against the INT8 build, logic cells and
    scratchpad bits (the B copy and the 64-bit O lanes)."""
    from f8hw.arch import ArchConfig
    from f8hw.bench.hwcost import run_accel_format_area
    from f8hw.hw.build import memory_bits

    r = run_accel_format_area(ROOT / "build" / "test_hw_fp8" / "accel_area", arrays=(2,), sets=(("int8",), SET))
    int8, flex = r["accelerator"]
    assert (int8["formats"], flex["formats"]) == ("int8", "+".join(SET)) and int8["ratio_cells"] == 1.0
    assert flex["cells"] > int8["cells"] and flex["ratio_cells"] == round(flex["cells"] / int8["cells"], 3)
    a, b = memory_bits(ArchConfig(rows=2, cols=2)), memory_bits(ArchConfig(rows=2, cols=2, formats=SET))
    assert (b["b"], b["o"]) == (2 * a["b"], 2 * a["o"]) and flex["memory_bits"] == sum(b.values())

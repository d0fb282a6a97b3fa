"""Flexible builds (--formats int8,e2m5,e3m4,e4m3) on the RTL: random mixed-format layers, the bundled
flexible model end to end, INT8 programs as on the INT8 build; every tensor == golden, memory and
counters == the ISA simulator (f8hw/isasim/flex.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accel_lib import (FLEX_FORMATS, LAYER_KINDS, MIXED_KINDS, flex_arch, random_mixed_layer, random_single_layer, run_and_check,
                        small_arch)
from f8hw import testing

REPO = Path(__file__).resolve().parents[1]
RUNS = [("verilator", "2x2"), ("verilator", "4x4")]


@pytest.mark.parametrize("simulator,size", RUNS)
@pytest.mark.parametrize("kind", MIXED_KINDS)
def test_random_mixed_format_layer(simulator, size, kind, seed, tmp_path):
    rng = np.random.default_rng(seed)
    g = random_mixed_layer(rng, kind)
    run_and_check(g, flex_arch(size), simulator, testing.random_images(rng, g, 1), tmp_path, f"{kind} layer")


@pytest.mark.parametrize("kind", ["conv", "residual", "bias64"])
def test_random_mixed_format_layer_icarus(kind, seed, tmp_path):
    """Both lanes, residual formats, BIAS64 and wide64 on Icarus (also the mutation subset's flexible part)."""
    rng = np.random.default_rng(seed)
    g = random_mixed_layer(rng, kind)
    run_and_check(g, flex_arch("2x2"), "icarus", testing.random_images(rng, g, 1), tmp_path, f"{kind} layer")


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_int8_layer_on_the_flexible_build(kind, seed, tmp_path):
    """An INT8 program runs on the flexible build with the INT8 build's results and cycles."""
    from f8hw import isasim
    from f8hw.compiler import compile_model
    from f8hw.engines import prepare_memory

    rng = np.random.default_rng(seed)
    g = random_single_layer(rng, kind, 4)
    imgs = testing.random_images(rng, g, 1)
    run = run_and_check(g, flex_arch("4x4"), "verilator", imgs, tmp_path, f"INT8 {kind} layer")
    comp = compile_model(g, small_arch("4x4"))
    ref = isasim.run(comp.program, prepare_memory(comp, imgs), small_arch("4x4"))
    assert run["cycles"] == ref.cycles


def _fmt_error_programs(arch):
    from f8hw.isa import ErrorCode, Mode, Reg, encode

    n = len(arch.formats)

    def prog(*sets, mode=Mode.DENSE, b_src=0):
        return [*(encode("SET", reg=int(r), value=v) for r, v in sets),
                encode("COMPUTE", mode=int(mode), nlines=1, last=1, b_src=b_src), encode("END")]

    return {
        "a_fmt": (prog((Reg.A_FMT, n)), ErrorCode.OPCODE),
        "w_fmt": (prog((Reg.W_FMT, -1)), ErrorCode.OPCODE),
        "w_fmt_unused_by_max": (prog((Reg.W_FMT, n), mode=Mode.MAX), None),
        "out_fmt": (prog((Reg.OUT_FMT, n)), ErrorCode.OPCODE),
        "out_fmt_raw": (prog((Reg.OUT_FMT, n), (Reg.RQ_RAW, 1)), None),
        "skip_fmt": (prog((Reg.SKIP_FMT, n + 3), (Reg.USE_SKIP, 1)), ErrorCode.OPCODE),
        "skip_fmt_unused": (prog((Reg.SKIP_FMT, n + 3)), None),
        "bias64_range": (prog((Reg.BIAS64, 1), (Reg.USE_BIAS, 1), b_src=arch.b_depth - 1), ErrorCode.SPAD),
        "bias64_last_entry": (prog((Reg.BIAS64, 1), (Reg.USE_BIAS, 1), b_src=arch.b_depth - 2), None),
    }


@pytest.mark.parametrize("case", ["a_fmt", "w_fmt", "w_fmt_unused_by_max", "out_fmt", "out_fmt_raw", "skip_fmt",
                                  "skip_fmt_unused", "bias64_range", "bias64_last_entry"])
def test_format_register_errors(case, tmp_path):
    """A format register naming no format is an illegal COMPUTE where the ISA simulator uses it; the RTL
    stops with the same code (or runs to END with the same counters)."""
    from f8hw import isasim, rtlsim

    arch = flex_arch("2x2")
    program, code = _fmt_error_programs(arch)[case]
    mem = np.zeros((16, arch.cols), np.uint8)
    if code is None:
        ref = isasim.run(program, mem, arch)
        res = rtlsim.simulate(arch, program, mem, "verilator", max_cycles=10_000, workdir=tmp_path)
        assert (res.cycles, res.busy, res.stall) == (ref.cycles, ref.busy, ref.stall)
        return
    with pytest.raises(isasim.IsaSimError) as isa_err:
        isasim.run(program, mem, arch)
    assert isa_err.value.code == code
    with pytest.raises(rtlsim.RtlRunError) as e:
        rtlsim.simulate(arch, program, mem, "verilator", max_cycles=10_000, workdir=tmp_path)
    assert e.value.code == code


def test_outlier_model_end_to_end(tmp_path, capsys):
    """`f8hw sim models/flexible/outlier.pt --engine verilator --array 4x4 --formats ...`: every layer
    bit-exact, RTL cycles = ISA cycles per layer, counters and memory equal."""
    import json

    from f8hw.cli import main

    argv = ["sim", str(REPO / "models/flexible/outlier.pt"), "--engine", "verilator", "--array", "4x4",
            "--formats", ",".join(FLEX_FORMATS), "--json"]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    layers = rep["layers"]
    assert len(layers) >= 7 and all(lay["bit_exact"] for lay in layers)
    assert all(lay["cycles"] == lay["isa_cycles"] for lay in layers)
    assert rep["bit_exact"] and rep["isa_agrees"] and rep["cycles"] == rep["isa_cycles"]

"""Error paths of the sim-only top: error flag + code (same code as f8hw.isasim), and the watchdog."""

from __future__ import annotations

import numpy as np
import pytest

from accel_lib import small_arch
from conftest import FULL
from f8hw import isa, isasim, rtlsim
from f8hw.isa import LoadTarget, Reg, encode

CONFIGS = [("verilator", "4x4"), ("icarus", "2x2")]


def _programs(arch):
    set1 = encode("SET", reg=int(Reg.A_SIGNED), value=1)
    return {
        # opcode 0 and 15 are not defined
        "illegal_opcode": ([set1, 15, encode("END")], isa.ErrorCode.OPCODE),
        # a program without END runs into the zero words after it: opcode 0, illegal
        "missing_end": ([set1, set1], isa.ErrorCode.OPCODE),
        # LOAD with an illegal target (3)
        "illegal_load_target": ([encode("LOAD", target=3, dst=0, count=1, addr=0, stride=1), encode("END")],
                                isa.ErrorCode.OPCODE),
        # main-memory read past mem_words
        "mem_read_range": ([encode("LOAD", target=int(LoadTarget.W), dst=0, count=4, addr=arch.mem_words - 2,
                                   stride=1), encode("END")], isa.ErrorCode.MEM),
        # W entries past w_depth
        "spad_range": ([encode("LOAD", target=int(LoadTarget.W), dst=arch.w_depth - 1, count=4, addr=0, stride=1),
                        encode("END")], isa.ErrorCode.SPAD),
        # STORE past mem_words
        "mem_write_range": ([encode("STORE", wide=0, src=0, count=2, addr=arch.mem_words - 1, stride=1),
                             encode("END")], isa.ErrorCode.MEM),
    }


@pytest.mark.parametrize("case", ["illegal_opcode", "missing_end", "illegal_load_target", "mem_read_range",
                                  "spad_range", "mem_write_range"])
@pytest.mark.parametrize("simulator,size", CONFIGS, ids=[f"{s}-{z}" for s, z in CONFIGS])
def test_error_code(simulator, size, case, tmp_path):
    arch = small_arch(size)
    program, code = _programs(arch)[case]
    mem = np.zeros((16, arch.cols), np.uint8)
    with pytest.raises(isasim.IsaSimError) as isa_err:
        isasim.run(program, mem, arch)
    assert isa_err.value.code == code, f"ISA simulator gives code {isa_err.value.code} for {case}"
    with pytest.raises(rtlsim.RtlRunError) as e:
        rtlsim.simulate(arch, program, mem, simulator, max_cycles=10_000, workdir=tmp_path)
    assert e.value.code == code, f"{case}: RTL error code {e.value.code}, ISA simulator {code}"
    assert f"error code {code}" in str(e.value)
    # the same run without raising: flags as seen by the harness
    res = rtlsim.simulate(arch, program, mem, simulator, max_cycles=10_000, workdir=tmp_path / "b",
                          raise_on_error=False)
    assert res.error and not res.done and not res.timeout and res.error_code == code


@pytest.mark.parametrize("simulator,size", CONFIGS, ids=[f"{s}-{z}" for s, z in CONFIGS])
def test_fetch_past_imem(simulator, size, tmp_path):
    """A program filling the whole instruction memory without END: error 4 (fetch past imem_depth)."""
    arch = small_arch(size)
    program = [encode("SET", reg=int(Reg.A_SIGNED), value=0)] * arch.imem_depth
    mem = np.zeros((16, arch.cols), np.uint8)
    with pytest.raises(isasim.IsaSimError) as isa_err:
        isasim.run(program, mem, arch)
    with pytest.raises(rtlsim.RtlRunError) as e:
        rtlsim.simulate(arch, program, mem, simulator, max_cycles=4 * arch.imem_depth, workdir=tmp_path)
    assert e.value.code == isa_err.value.code == isa.ErrorCode.FETCH


@pytest.mark.parametrize("simulator,size", CONFIGS, ids=[f"{s}-{z}" for s, z in CONFIGS])
def test_watchdog(simulator, size, tmp_path):
    """A run longer than its cycle budget is stopped by the watchdog with a message naming the budget."""
    arch = small_arch(size)
    big = encode("LOAD", target=int(LoadTarget.W), dst=0, count=arch.w_depth, addr=0, stride=0)
    program = [big] * 8 + [encode("END")]
    mem = np.zeros((16, arch.cols), np.uint8)
    ref = isasim.run(program, mem, arch)
    assert ref.cycles > 20_000
    with pytest.raises(rtlsim.WatchdogError, match=r"cycle budget of 5000 cycles"):
        rtlsim.simulate(arch, program, mem, simulator, max_cycles=5000, workdir=tmp_path)
    # with enough budget the same program finishes, in the ISA simulator's cycle count
    res = rtlsim.simulate(arch, program, mem, simulator, max_cycles=ref.cycles + 100, workdir=tmp_path / "ok")
    assert res.done and res.cycles == ref.cycles


# the toy top costs a Verilator build of its own: Verilator only in the full selection
# (the accelerator tests exercise the same harness on Verilator)
TOY_SIMULATORS = ["icarus"] + (["verilator"] if FULL else [])


@pytest.mark.parametrize("simulator", TOY_SIMULATORS)
def test_harness_toy(simulator, tmp_path):
    """The harness on a tiny stand-alone top (sim/toy_top.v): done, memory dump, marks, error, watchdog."""
    from pathlib import Path

    src = (Path(__file__).parent / "toy_top.v").read_text()
    b = rtlsim.build(src, "toy_top", simulator)
    d = tmp_path / simulator
    d.mkdir()
    mem = np.arange(64 * 4, dtype=np.uint8).reshape(64, 4)
    rtlsim.write_hex_bytes(d / "mem.hex", mem)
    rtlsim.write_hex_words(d / "imem.hex", [1000, 0], isa.INSTR_BITS)
    r = rtlsim.run_top(b, d / "imem.hex", d / "mem.hex", d, max_cycles=5000)
    assert r.done and not r.error and not r.timeout and r.cycles == 1000
    out = rtlsim.read_hex_prefix(r.memory_hex, 64, 4)
    assert np.array_equal(out.view("<u4")[:, 0], mem.view("<u4")[:, 0] + 1)
    rtlsim.write_hex_words(d / "imem.hex", [300, 5], isa.INSTR_BITS)
    r = rtlsim.run_top(b, d / "imem.hex", d / "mem.hex", d, max_cycles=5000)
    assert r.error and r.error_code == 5 and r.cycles == 300
    rtlsim.write_hex_words(d / "imem.hex", [0, 0], isa.INSTR_BITS)
    r = rtlsim.run_top(b, d / "imem.hex", d / "mem.hex", d, max_cycles=700)
    assert r.timeout and not r.done and r.sim_cycles == 700


@pytest.mark.parametrize("simulator", TOY_SIMULATORS)
def test_waves_toy(simulator, tmp_path):
    """Waveform dumping (VCD from Verilator, FST from Icarus) on the harness's toy top."""
    from pathlib import Path

    src = (Path(__file__).parent / "toy_top.v").read_text()
    b = rtlsim.build(src, "toy_top", simulator, waves=True)
    rtlsim.write_hex_bytes(tmp_path / "mem.hex", np.zeros((4, 4), np.uint8))
    rtlsim.write_hex_words(tmp_path / "imem.hex", [200, 0], isa.INSTR_BITS)
    wave = tmp_path / ("w.vcd" if simulator == "verilator" else "w.fst")
    r = rtlsim.run_top(b, tmp_path / "imem.hex", tmp_path / "mem.hex", tmp_path, max_cycles=1000, waves_file=wave)
    assert r.done and r.cycles == 200
    assert wave.is_file() and wave.stat().st_size > 100, f"no waveform written at {wave}"

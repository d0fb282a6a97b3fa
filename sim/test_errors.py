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
    """name -> (program, error code, cycle counter at the stop): the first error seen in time stops the run;
    a decode error is seen when the instruction reaches the head (one cycle after its predecessor
    issued), LOAD word i's main-memory error at t+1+i, STORE word i's at t+2+i, LOAD_A word i's A line at
    t+2+i (t = issue cycle; the first instruction issues at cycle FIRST_ISSUE = 2); in one cycle a decode
    error wins, then main memory."""
    set1 = encode("SET", reg=int(Reg.A_SIGNED), value=1)
    top = arch.mem_words

    def load(count, addr):
        return encode("LOAD", target=int(LoadTarget.W), dst=0, count=count, addr=addr, stride=1)

    def store(count, addr):
        return encode("STORE", wide=0, src=0, count=count, addr=addr, stride=1)

    one_by_one = [encode("SET", reg=int(r), value=v) for r, v in ((Reg.KH, 1), (Reg.KW, 1), (Reg.IN_H, 1),
                                                                  (Reg.IN_W, 1))]
    load_a = encode("LOAD_A", dst=arch.a_depth - 1, npix=1, ncb=2, addr=0)   # word 1 writes line a_depth
    single = {
        # opcode 0 and 15 are not defined
        "illegal_opcode": ([set1, 15, encode("END")], isa.ErrorCode.OPCODE, 4),
        # a program without END runs into the zero words after it: opcode 0, illegal
        "missing_end": ([set1, set1], isa.ErrorCode.OPCODE, 5),
        # LOAD with an illegal target (3)
        "illegal_load_target": ([encode("LOAD", target=3, dst=0, count=1, addr=0, stride=1), encode("END")],
                                isa.ErrorCode.OPCODE, 3),
        # main-memory read past mem_words: word 2, seen at cycle 5
        "mem_read_range": ([load(4, top - 2), encode("END")], isa.ErrorCode.MEM, 6),
        # W entries past w_depth
        "spad_range": ([encode("LOAD", target=int(LoadTarget.W), dst=arch.w_depth - 1, count=4, addr=0, stride=1),
                        encode("END")], isa.ErrorCode.SPAD, 3),
        # STORE past mem_words: word 1, seen at cycle 5
        "mem_write_range": ([store(2, top - 1), encode("END")], isa.ErrorCode.MEM, 6),
    }
    order = {
        # the LOAD's error (cycle 5) comes after the next instruction's decode error (cycle 3)
        "decode_before_unit": ([load(4, top - 2), 15], isa.ErrorCode.OPCODE, 4),
        # ... and in the same cycle (5) as a decode error: the decode error wins
        "decode_ties_unit": ([load(4, top - 2), set1, set1, 15], isa.ErrorCode.OPCODE, 6),
        # ... one cycle before it: the LOAD's error
        "unit_before_decode": ([load(4, top - 2), set1, set1, set1, 15], isa.ErrorCode.MEM, 6),
        # a STORE issued after a long LOAD fails first (cycle 5; the LOAD's word 10 at cycle 13)
        "later_store_first": ([load(12, top - 10), store(1, top), encode("END")], isa.ErrorCode.MEM, 6),
        # LOAD_A's A line error (word 1, cycle 9) ties with a STORE's memory error (cycle 9): main memory wins
        "store_ties_load_a": (one_by_one + [load_a, store(1, top), encode("END")], isa.ErrorCode.MEM, 10),
    }
    return single, order


def _isa_error(arch, case, program, code, cycles, mem):
    with pytest.raises(isasim.IsaSimError) as isa_err:
        isasim.run(program, mem, arch)
    assert (isa_err.value.code, isa_err.value.cycles) == (code, cycles), (
        f"ISA simulator gives code {isa_err.value.code} at cycle counter {isa_err.value.cycles} for {case}")


SINGLE, ORDER = (list(d) for d in _programs(small_arch("2x2")))


def _case(size, table, case):
    """(arch, program, code, cycles, zero memory) of one case of _programs' table 0 (single) or 1 (order),
    checked on the ISA simulator first."""
    arch = small_arch(size)
    program, code, cycles = _programs(arch)[table][case]
    mem = np.zeros((16, arch.cols), np.uint8)
    _isa_error(arch, case, program, code, cycles, mem)
    return arch, program, code, cycles, mem


@pytest.mark.parametrize("case", SINGLE)
@pytest.mark.parametrize("simulator,size", CONFIGS, ids=[f"{s}-{z}" for s, z in CONFIGS])
def test_error_code(simulator, size, case, tmp_path):
    arch, program, code, cycles, mem = _case(size, 0, case)
    with pytest.raises(rtlsim.RtlRunError) as e:
        rtlsim.simulate(arch, program, mem, simulator, max_cycles=10_000, workdir=tmp_path)
    assert (e.value.code, e.value.result.cycles) == (code, cycles), (
        f"{case}: RTL error code {e.value.code} at cycle counter {e.value.result.cycles}, expected {code} at {cycles}")
    assert f"error code {code}" in str(e.value)
    # the same run without raising: flags as seen by the harness
    res = rtlsim.simulate(arch, program, mem, simulator, max_cycles=10_000, workdir=tmp_path / "b",
                          raise_on_error=False)
    assert res.error and not res.done and not res.timeout and res.error_code == code


@pytest.mark.parametrize("case", ORDER)
@pytest.mark.parametrize("simulator,size", CONFIGS, ids=[f"{s}-{z}" for s, z in CONFIGS])
def test_first_error_wins(simulator, size, case, tmp_path):
    """Two errors close in time: the RTL and the ISA simulator both stop at the one seen first."""
    arch, program, code, cycles, mem = _case(size, 1, case)
    res = rtlsim.simulate(arch, program, mem, simulator, max_cycles=10_000, workdir=tmp_path, raise_on_error=False)
    assert res.error and (res.error_code, res.cycles) == (code, cycles), (
        f"{case}: RTL error code {res.error_code} at cycle counter {res.cycles}, expected {code} at {cycles}")


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

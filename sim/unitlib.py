"""Unit-level RTL harness: the generator's own Amaranth components, one build per simulator.

Every unit under test (requantizer lanes, a PE, MAC arrays of the sizes in
ARRAY_SIZES) is instantiated side by side in one Amaranth wrapper
(``f8hw_units``), converted with amaranth.back.verilog and compiled once per
simulator (f8hw.rtlsim caches it by the Verilog's hash), so a whole test run
pays for one Verilator build.  Ports are named ``<unit>__<port>``.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

from f8hw import rtlsim

UNITS_TOP = "f8hw_units"
ARRAY_SIZES = ((2, 2), (4, 4), (4, 2))
SIM_DIR = Path(__file__).resolve().parent


def _parts():
    from f8hw.hw.array import MacArray
    from f8hw.hw.pe import PE
    from f8hw.hw.requant import RequantLane

    parts = {"rq": RequantLane(dyadic=False), "rqd": RequantLane(dyadic=True), "pe": PE()}
    for r, c in ARRAY_SIZES:
        parts[f"arr{r}x{c}"] = MacArray(r, c)
    return parts


def units_verilog() -> str:
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    parts = _parts()
    members = {}
    for pname, comp in parts.items():
        for mname, member in comp.signature.members.items():
            members[f"{pname}__{mname}"] = (In if member.flow == wiring.In else Out)(member.shape)

    class Units(wiring.Component):
        def __init__(self):
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            for pname, comp in parts.items():
                m.submodules[pname] = comp
                for mname, member in comp.signature.members.items():
                    outer = getattr(self, f"{pname}__{mname}")
                    inner = getattr(comp, mname)
                    if member.flow == wiring.In:
                        m.d.comb += inner.eq(outer)
                    else:
                        m.d.comb += outer.eq(inner)
            return m

    return verilog.convert(Units(), name=UNITS_TOP)


@lru_cache(maxsize=None)
def _verilog_cached() -> str:
    return units_verilog()


def units_build(simulator: str, waves: bool = False) -> rtlsim.SimBuild:
    return rtlsim.build(_verilog_cached(), UNITS_TOP, simulator, waves=waves)


def run_stream(simulator: str, unit: str, inputs: dict[str, list[int]], outputs: list[str], cycles: int,
               workdir: Path, waves: bool = False) -> dict[str, list[int]]:
    """Drive ``unit``'s inputs cycle by cycle and sample its outputs (see tb_stream.py)."""
    sim = units_build(simulator, waves=waves)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result = workdir / "stream_out.json"
    cfg = {
        "inputs": {f"{unit}__{k}": [int(x) for x in v] for k, v in inputs.items()},
        "outputs": [f"{unit}__{k}" for k in outputs],
        "cycles": int(cycles),
        "reset_cycles": 2,
        "result": str(result),
    }
    (workdir / "stream.json").write_text(json.dumps(cfg))
    waves_file = workdir / ("waves.vcd" if simulator == "verilator" else "waves.fst") if waves else None
    env = {"F8HW_STREAM": str(workdir / "stream.json")}
    if str(SIM_DIR) not in sys.path:  # the runner passes sys.path to the simulator as PYTHONPATH
        sys.path.insert(0, str(SIM_DIR))
    tests, failed, _ = rtlsim.run_cocotb(sim, "tb_stream", workdir, env=env, waves_file=waves_file,
                                         label=f"unit {unit}", wall_timeout=600)
    if failed or not result.exists():
        raise rtlsim.RtlSimError(f"unit stream testbench failed; log {workdir / 'sim.log'}")
    raw = json.loads(result.read_text())
    return {k.split("__", 1)[1]: v for k, v in raw.items()}


def to_signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def to_unsigned(v: int, bits: int) -> int:
    return int(v) & ((1 << bits) - 1)

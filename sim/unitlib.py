"""Unit-level RTL harness: the generator's own Amaranth components, one build per simulator and group.

Every unit under test of a group is instantiated side by side in one Amaranth
wrapper, converted with amaranth.back.verilog and compiled once per simulator
(f8hw.rtlsim caches it by the Verilog's hash), so a whole test run pays for one
Verilator build per group.  Ports are named ``<unit>__<port>``.  Groups:
``int8`` (``f8hw_units``: requantizer lanes, a PE, MAC arrays of the sizes in
ARRAY_SIZES) and ``fp8`` (``f8hw_fp8units``: banks of flexible PEs and of FP8
requantizer lanes, not yet part of the accelerator; see ``bank``).
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

from f8hw import rtlsim

UNITS_TOP = "f8hw_units"
TOPS = {"int8": UNITS_TOP, "fp8": "f8hw_fp8units"}
ARRAY_SIZES = ((2, 2), (4, 4), (4, 2))
FPE_FORMATS = ("int8", "e2m5", "e3m4", "e4m3")
"""The flexible set under test (PE bank and FP8 lane); the e5m2 output kind has a lane of its own."""
FPE_BANK = 32
"""Flexible PEs side by side in the fp8 group: 32 products per cycle (the e4m3 x e4m3 table takes 2k cycles)."""
LANE_BANK = 8
"""FP8 requantizer lanes side by side in the fp8 group (8 vectors per cycle)."""
SIM_DIR = Path(__file__).resolve().parent


def _parts(group: str = "int8"):
    if group == "fp8":
        from f8hw.hw.fp8requant import Fp8RequantLane

        from f8hw.hw.fpe import FlexPE

        return {"fpe": bank(lambda: FlexPE(FPE_FORMATS), FPE_BANK, "f8hw_fpe", ("cfg", "valid", "first", "last",
                                                                                "max_mode")),
                "frq": bank(lambda: Fp8RequantLane(FPE_FORMATS), LANE_BANK, "f8hw_fp8rq"),
                "frq5": bank(lambda: Fp8RequantLane(("int8", "e5m2")), LANE_BANK, "f8hw_fp8rq_e5m2")}
    from f8hw.hw.array import MacArray
    from f8hw.hw.pe import PE
    from f8hw.hw.requant import RequantLane

    parts = {"rq": RequantLane(dyadic=False), "rqd": RequantLane(dyadic=True), "pe": PE()}
    for r, c in ARRAY_SIZES:
        parts[f"arr{r}x{c}"] = MacArray(r, c)
    return parts


def bank(make, n: int, name: str, shared: tuple[str, ...] = ()):
    """n instances of the component make() side by side: the ports named in ``shared`` are common, every
    other port is the concatenation of the instances' ports (instance i at bits [i * width, (i + 1) * width)),
    so one stream write or read per port serves all of them.  Returns (wrapper component, Verilog of the
    module ``name`` it instantiates): converted once, not n times."""
    from amaranth.back import verilog
    from amaranth.hdl import Cat, ClockSignal, Instance, Module, ResetSignal, Shape, Signal, Value
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    proto = make()
    text = verilog.convert(proto, name=name, emit_src=False)
    members = proto.signature.members
    ports = {p: (In if mb.flow == wiring.In else Out)(mb.shape if p in shared else Shape.cast(mb.shape).width * n)
             for p, mb in members.items()}

    class Bank(wiring.Component):
        def __init__(self):
            super().__init__(ports)

        def elaborate(self, platform):
            m = Module()
            outs = {p: [] for p, mb in members.items() if mb.flow == wiring.Out}
            for i in range(n):
                conn = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
                for p, mb in members.items():
                    w = Shape.cast(mb.shape).width
                    if mb.flow == wiring.In:
                        outer = Value.cast(getattr(self, p))
                        conn[f"i_{p}"] = outer if p in shared else outer[w * i:w * (i + 1)]
                    else:
                        o = Signal(w, name=f"{p}_{i}")
                        outs[p].append(o)
                        conn[f"o_{p}"] = o
                m.submodules[f"u{i}"] = Instance(name, **conn)
            for p, sigs in outs.items():
                m.d.comb += getattr(self, p).eq(Cat(sigs))
            return m

    return Bank(), text


def units_verilog(group: str = "int8") -> str:
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    parts = _parts(group)
    extra = [t for _, t in parts.values()] if group == "fp8" else []
    if extra:
        parts = {k: c for k, (c, _) in parts.items()}
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

    return "\n".join([verilog.convert(Units(), name=TOPS[group]), *extra])


@lru_cache(maxsize=None)
def _verilog_cached(group: str = "int8") -> str:
    return units_verilog(group)


def units_build(simulator: str, waves: bool = False, group: str = "int8") -> rtlsim.SimBuild:
    return rtlsim.build(_verilog_cached(group), TOPS[group], simulator, waves=waves)


def run_stream(simulator: str, unit: str, inputs: dict[str, list[int]], outputs: list[str], cycles: int,
               workdir: Path, waves: bool = False, group: str = "int8") -> dict[str, list[int]]:
    """Drive ``unit``'s inputs cycle by cycle and sample its outputs (see tb_stream.py)."""
    sim = units_build(simulator, waves=waves, group=group)
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

"""Sim-only top: the accelerator (a black-box instance of module ``f8hw_accel``) with
plain Verilog memories (``f8hw_mem.v``): instruction memory (+imem=FILE), main
memory (+mem=FILE, dumped to +dump=FILE when the run ends) and the MARK slots
(dumped to +marks=FILE).  Ports: clk, rst, done, error, error_code, cycles,
busy, stall.  Simulate f8hw_simtop.v + f8hw_accel.v + f8hw_mem.v.
"""

from __future__ import annotations

from importlib import resources

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from f8hw.arch import ArchConfig
from f8hw.hw.common import clog2
from f8hw.hw.frontend import COUNTER_BITS
from f8hw.hw.top import port_list

ACCEL_MODULE = "f8hw_accel"
SIMTOP_MODULE = "f8hw_simtop"
MEM_MODULE = "f8hw_mem"


def mem_verilog() -> str:
    """The hand-written memory module shipped in the package."""
    return resources.files("f8hw.hw").joinpath("f8hw_mem.v").read_text()


def simtop_ports() -> dict[str, tuple[str, int]]:
    return {"clk": ("in", 1), "rst": ("in", 1), "done": ("out", 1), "error": ("out", 1), "error_code": ("out", 3),
            "cycles": ("out", COUNTER_BITS), "busy": ("out", COUNTER_BITS), "stall": ("out", COUNTER_BITS)}


class SimTop(wiring.Component):
    def __init__(self, cfg: ArchConfig):
        if not isinstance(cfg, ArchConfig):
            raise TypeError("SimTop needs an ArchConfig")
        self.cfg = cfg
        super().__init__({n: Out(w) for n, (d, w) in simtop_ports().items() if d == "out"})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        sig = {n: Signal(w, name=f"acc_{n}") for n, (d, w) in port_list(cfg).items()}
        conns = {f"{'i' if d == 'in' else 'o'}_{n}": sig[n] for n, (d, w) in port_list(cfg).items()}
        m.submodules.accel = Instance(ACCEL_MODULE, i_clk=ClockSignal(), i_rst=ResetSignal(), **conns)
        end = Signal()
        m.d.comb += end.eq(sig["done"] | sig["error"])

        def mem(name, width, depth, init, dump, raddr, ren, rdata, waddr, wdata, wen):
            ab = clog2(depth)
            m.submodules[name] = Instance(
                MEM_MODULE, p_WIDTH=width, p_DEPTH=depth, p_ABITS=ab, p_INIT_ARG=init, p_DUMP_ARG=dump,
                i_clk=ClockSignal(), i_raddr=raddr[:ab], i_ren=ren, o_rdata=rdata,
                i_waddr=waddr[:ab], i_wdata=wdata, i_wen=wen, i_dump=end)

        zero = Const(0, 1)
        mem("imem", 128, cfg.imem_depth, "imem", "", sig["imem_addr"], Const(1, 1), sig["imem_data"],
            Const(0, 32), Const(0, 128), zero)
        mem("mem", 8 * cfg.cols, cfg.mem_words, "mem", "dump", sig["mem_raddr"], sig["mem_ren"], sig["mem_rdata"],
            sig["mem_waddr"], sig["mem_wdata"], sig["mem_wen"])
        unused = Signal(32, name="marks_rdata")
        mem("marks", COUNTER_BITS, cfg.mark_depth, "", "marks", Const(0, 32), zero, unused,
            sig["mark_slot"], sig["mark_value"], sig["mark_en"])
        m.d.comb += [getattr(self, n).eq(sig[n]) for n, (d, w) in simtop_ports().items() if d == "out"]
        return m

"""RTL engines: the generated Verilog of the sim-only top, run by cocotb on Verilator or Icarus.

``f8hw.engines.verilator`` and ``f8hw.engines.icarus`` are instances of
RtlEngine.  The simulator is built once per design and cached (f8hw.rtlsim);
the program and the memory image go in as $readmemh files, the final memory
and the MARK slots come back as $writememh dumps; no Python runs per cycle.

Options: ``waves=FILE`` (or $F8HW_WAVES) writes a waveform (VCD for
Verilator, FST for Icarus; needs a separate, also cached, traced build),
``max_cycles`` (watchdog budget; default f8hw.rtlsim.cycle_bound: every instruction
serialized, times 2, plus 10,000),
``keep`` (keep the run directory).
"""

from __future__ import annotations

import os

import numpy as np

from f8hw import rtlsim
from f8hw.engines import EngineError, EngineResult, prepare_memory


class RtlEngine:
    def __init__(self, simulator: str, waves: str | None = None, max_cycles: int | None = None,
                 keep: bool = False, spinner: bool | None = None):
        self.simulator = simulator
        self.name = simulator
        self.waves = waves if waves is not None else (os.environ.get("F8HW_WAVES") or None)
        self.max_cycles = max_cycles
        self.keep = keep
        self.spinner = spinner

    def run(self, compiled, images: np.ndarray) -> EngineResult:
        mem = prepare_memory(compiled, images)
        try:
            res = rtlsim.simulate(compiled.arch, compiled.program, mem, self.simulator,
                                  max_cycles=self.max_cycles, waves=self.waves, progress=self.spinner,
                                  keep=self.keep)
        except rtlsim.RtlSimError as e:  # build failure, error flag (RtlRunError), watchdog
            raise EngineError(f"{self.name}: {e}") from None
        return EngineResult(
            engine=self.name, memory=res.memory, cycles=res.cycles, busy=res.busy, stall=res.stall,
            marks=res.marks, wall_time=res.wall_time,
            extra={"sim_cycles": res.sim_cycles, "total_time": res.total_time,
                   "build_seconds": res.build.build_seconds, "build_cached": res.build.cached,
                   "build_dir": str(res.build.directory), "waves": str(res.waves) if res.waves else None,
                   "simulated_cycles_per_second": res.cycles_per_second},
        )

"""RTL simulation of generated Verilog with cocotb (Verilator or Icarus).

* ``simbuild``  (simbuild.py): compile a design once, cached under f8hw.paths.cache_dir("sim"), file-locked.
* ``run``       (run.py):      run a cocotb test module on a build; ``run_top`` runs the sim-only top.
* ``hexfiles``  (hexfiles.py): $readmemh / $writememh program and memory files.
* ``accel``     (accel.py):    the accelerator: ``simulate(arch, program, memory, ...)``, used by the
  engines and the test suite, and ``cycle_bound`` (the watchdog default).
* ``progress``  (progress.py): the spinner shown on stderr during long steps.
"""

from __future__ import annotations

from f8hw.rtlsim.accel import (
    RtlResult,
    RtlRunError,
    WatchdogError,
    build_accelerator,
    cycle_bound,
    design_verilog,
    simulate,
)
from f8hw.rtlsim.hexfiles import (
    read_hex_bytes,
    read_hex_prefix,
    read_hex_words,
    write_hex_bytes,
    write_hex_words,
)
from f8hw.rtlsim.run import TopRun, run_cocotb, run_top
from f8hw.rtlsim.simbuild import (
    SIMULATORS,
    RtlSimError,
    SimBuild,
    build,
    cache_root,
    simulator_version,
)

__all__ = [
    "SIMULATORS", "RtlSimError", "WatchdogError", "RtlRunError", "SimBuild", "build", "cache_root",
    "simulator_version", "run_cocotb", "TopRun", "run_top", "write_hex_words", "write_hex_bytes",
    "read_hex_words", "read_hex_bytes", "read_hex_prefix", "RtlResult", "design_verilog", "build_accelerator",
    "cycle_bound", "simulate",
]

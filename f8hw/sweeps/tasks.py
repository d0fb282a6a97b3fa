"""The work of one sweep point, as plain functions a Ray task (or a test) calls.

Simulation and synthesis are separate so a cluster can place them apart: the
simulation of a point depends on the network, the area only on the hardware
parameters (one synthesis serves every network on the same configuration, and
yosys results are cached by the Verilog's hash).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from f8hw.errors import F8Error

__all__ = ["simulate_point", "synthesize_point", "verify_point"]


def _error(e: BaseException) -> str:
    """A one-line description of why a point failed (F8Errors are already user-facing)."""
    if isinstance(e, F8Error):
        return str(e)
    frame = traceback.extract_tb(e.__traceback__)[-1:] or None
    where = f" at {Path(frame[0].filename).name}:{frame[0].lineno}" if frame else ""
    return f"{type(e).__name__}: {e}{where}"


def simulate_point(point, model_path: str) -> dict:
    """Compile + ISA simulation (exact cycles, utilization per layer) of one point; never raises."""
    import f8hw

    t0 = time.perf_counter()
    try:
        prog = f8hw.compile(model_path, point.arch(), batch=point.batch, memories="fit", use_cache=False)
        t1 = time.perf_counter()
        run = f8hw.simulate(prog, engine="isa", race_check=False)
    except Exception as e:  # a point that does not fit or does not compile is a result, not a crash
        return dict(error=_error(e), compile_s=round(time.perf_counter() - t0, 3))
    return dict(error=None if run.bit_exact else f"not bit-exact: {run.first_mismatch}",
                cycles=run.cycles, utilization=run.utilization, macs=run.macs, bit_exact=run.bit_exact,
                instructions=prog.instructions, mem_words=prog.arch.mem_words,
                layer_utilization={lr.name: lr.utilization for lr in run.layers},
                compile_s=round(t1 - t0, 3), sim_s=round(time.perf_counter() - t1, 3))


def synthesize_point(hardware: dict, mode: str, workdir: str) -> dict:
    """Area of the whole accelerator (scratchpads as black boxes, their bits counted): yosys generic cells, and
    with mode "fpga" also iCE40 / ECP5 LUTs; cached by the Verilog's hash.  Never raises."""
    from f8hw.arch import ArchConfig
    from f8hw.hw.build import SPAD_FILE, _packaged, accel_verilog, cached_synth, memory_bits

    t0 = time.perf_counter()
    try:
        arch = ArchConfig(**hardware)
        flows = ("generic",) if mode == "generic" else ("generic", "ice40", "ecp5")
        r = cached_synth(f"sweep_accel_{arch.array}_{arch.requant}", accel_verilog(arch), "f8hw_accel",
                         Path(workdir), flows=flows, extra_files={SPAD_FILE: _packaged(SPAD_FILE)},
                         blackbox=(SPAD_FILE,))
    except Exception as e:
        return dict(area_error=_error(e), synth_s=round(time.perf_counter() - t0, 3))
    return dict(area_error=None, area_cells=r["cells"], ice40_lut=r.get("ice40_lut"), ecp5_lut=r.get("ecp5_lut"),
                memory_bits=sum(memory_bits(arch).values()), synth_cached=bool(r.get("cached")),
                synth_s=round(time.perf_counter() - t0, 3))


def verify_point(point, model_path: str, cycles: int) -> dict:
    """Re-run a point on the RTL (Verilator): the cycles must equal the ISA simulator's."""
    import f8hw

    try:
        prog = f8hw.compile(model_path, point.arch(), batch=point.batch, memories="fit", use_cache=False)
        run = f8hw.simulate(prog, engine="verilator", race_check=False)
    except Exception as e:
        return dict(verified=False, verify_error=_error(e))
    ok = run.ok and run.cycles == cycles
    return dict(verified=ok, verify_error=None if ok else f"RTL {run.cycles} cycles vs sweep {cycles}"
                                                            f"{'' if run.ok else ': ' + str(run.isa_check or run.first_mismatch)}")

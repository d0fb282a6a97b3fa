"""Running cocotb tests on a build: any test module (unit tests), or the sim-only top's own testbench.

``run_top`` drives the sim-only top (``f8hw.hw.simtop``, see docs/architecture.md
"Sim-only top"): the program and the main-memory image are $readmemh files named
by plusargs, the cocotb test (``f8hw.rtlsim_tb``) starts a C-level clock,
releases reset and awaits ``done | error`` or a watchdog; no Python runs per
cycle.  The Verilog dumps main memory and the MARK slots with $writememh.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from f8hw.rtlsim.progress import status
from f8hw.rtlsim.simbuild import RtlSimError, SimBuild, setup_env

__all__ = ["CLOCK_PERIOD_NS", "RESET_CYCLES", "TOP_PORTS", "TopRun", "run_cocotb", "run_top"]

CLOCK_PERIOD_NS = 10
RESET_CYCLES = 2


def run_cocotb(sim: SimBuild, test_module: str, workdir: Path, plusargs: list[str] | None = None,
               env: dict[str, str] | None = None, waves_file: str | os.PathLike | None = None,
               testcase: str | None = None, seed: int | None = None, progress: bool | None = None,
               label: str = "simulating", wall_timeout: float | None = None) -> tuple[int, int, float]:
    """Run cocotb ``test_module`` (importable) on ``sim``; returns (tests, failed, wall s).

    Never raises for failing cocotb tests (read the counts): the caller decides.
    ``wall_timeout`` (seconds, default $F8HW_SIM_WALL_TIMEOUT or none) kills a
    simulator process that hangs in wall-clock time.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    setup_env()
    if wall_timeout is None and os.environ.get("F8HW_SIM_WALL_TIMEOUT"):
        wall_timeout = float(os.environ["F8HW_SIM_WALL_TIMEOUT"])
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "results.xml"
    plusargs = list(plusargs or [])
    test_args: list[str] = []
    waves = waves_file is not None
    if waves and not sim.waves:
        raise RtlSimError("waveforms need a build with waves=True")
    if waves:
        if sim.simulator == "verilator":
            test_args += ["--trace-file", str(Path(waves_file).resolve())]
        else:
            plusargs.append(f"+dumpfile_path={Path(waves_file).resolve()}")
    runner = get_runner(sim.simulator)
    if wall_timeout:
        runner._get_sim_cmd_prefix = lambda: ["timeout", "-s", "KILL", str(int(wall_timeout))]
    # the runner keeps state from build(); set what test() needs
    runner.build_dir = sim.directory
    if sim.simulator == "icarus":
        runner.hdl_toplevel = sim.top
    # PYTEST_CURRENT_TEST makes the runner sys.exit() on failures; we read the results ourselves
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    t0 = time.monotonic()
    try:
        with status(f"{label} ({sim.simulator})", progress):
            runner.test(test_module=test_module, hdl_toplevel=sim.top, hdl_toplevel_lang="verilog",
                        build_dir=sim.directory, test_dir=workdir, results_xml=str(results),
                        plusargs=plusargs, test_args=test_args, extra_env=dict(env or {}),
                        waves=waves, testcase=testcase, seed=seed, log_file=workdir / "sim.log")
    except (SystemExit, RuntimeError, subprocess.CalledProcessError) as e:
        raise RtlSimError(f"{sim.simulator} failed ({e}); log {workdir / 'sim.log'}:\n"
                          + _tail(workdir / "sim.log")) from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001  (kept for unexpected runner exits)
        raise RtlSimError(f"{sim.simulator} exited with status {e.code}; log {workdir / 'sim.log'}:\n"
                          + _tail(workdir / "sim.log")) from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    wall = time.monotonic() - t0
    try:
        tests, failed = get_results(results)
    except RuntimeError as e:
        raise RtlSimError(f"simulation produced no results ({e}); log {workdir / 'sim.log'}:\n"
                          + _tail(workdir / "sim.log")) from None
    return tests, failed, wall


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@dataclass
class TopRun:
    """Result of one run of the sim-only top."""

    done: bool
    error: bool
    error_code: int
    timeout: bool
    cycles: int            # the accelerator's cycle counter (END issue + 1)
    busy: int
    stall: int
    sim_cycles: int        # clock cycles simulated after reset (>= cycles)
    wall_seconds: float    # wall time of the simulation process
    memory_hex: Path | None
    marks_hex: Path | None
    waves: Path | None
    workdir: Path
    extra: dict = field(default_factory=dict)

    @property
    def cycles_per_second(self) -> float:
        return self.sim_cycles / self.wall_seconds if self.wall_seconds > 0 else 0.0


TOP_PORTS = {"clk": "clk", "rst": "rst", "done": "done", "error": "error", "error_code": "error_code",
             "cycles": "cycles", "busy": "busy", "stall": "stall"}


def run_top(sim: SimBuild, imem_hex: Path, mem_hex: Path, workdir: Path, max_cycles: int,
            waves_file: str | os.PathLike | None = None, dump: bool = True, marks: bool = True,
            progress: bool | None = None, ports: dict[str, str] | None = None) -> TopRun:
    """Run the sim-only top once: load program + memory, clock until done/error/watchdog."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out_mem = workdir / "mem_out.hex" if dump else None
    out_marks = workdir / "marks_out.hex" if marks else None
    for p in (out_mem, out_marks):
        if p is not None and p.exists():
            p.unlink()
    result = workdir / "result.json"
    if result.exists():
        result.unlink()
    cfg = {
        "result": str(result),
        "max_cycles": int(max_cycles),
        "period_ns": CLOCK_PERIOD_NS,
        "reset_cycles": RESET_CYCLES,
        "ports": dict(TOP_PORTS, **(ports or {})),
    }
    if waves_file is not None and not Path(waves_file).resolve().parent.is_dir():
        raise RtlSimError(f"waves {waves_file}: directory {Path(waves_file).resolve().parent} does not exist")
    cfg_path = workdir / "tb_config.json"
    cfg_path.write_text(json.dumps(cfg))
    plusargs = [f"+imem={Path(imem_hex).resolve()}", f"+mem={Path(mem_hex).resolve()}"]
    if out_mem is not None:
        plusargs.append(f"+dump={out_mem.resolve()}")
    if out_marks is not None:
        plusargs.append(f"+marks={out_marks.resolve()}")
    tests, failed, wall = run_cocotb(sim, "f8hw.rtlsim_tb", workdir, plusargs=plusargs,
                                     env={"F8HW_RTLSIM_CONFIG": str(cfg_path)}, waves_file=waves_file,
                                     progress=progress, label=f"simulating (budget {max_cycles} cycles)")
    if not result.exists():
        raise RtlSimError(f"the testbench wrote no result; log {workdir / 'sim.log'}:\n" + _tail(workdir / "sim.log"))
    r = json.loads(result.read_text())
    if failed:
        raise RtlSimError(f"testbench failed: {r.get('message', '')}; log {workdir / 'sim.log'}")
    if waves_file is not None and not (Path(waves_file).is_file() and Path(waves_file).stat().st_size > 0):
        raise RtlSimError(f"waves {waves_file}: the simulator wrote no waveform; log {workdir / 'sim.log'}")
    return TopRun(
        done=bool(r["done"]), error=bool(r["error"]), error_code=int(r["error_code"]), timeout=bool(r["timeout"]),
        cycles=int(r["cycles"]), busy=int(r["busy"]), stall=int(r["stall"]), sim_cycles=int(r["sim_cycles"]),
        wall_seconds=float(r.get("sim_wall_seconds", wall)),
        memory_hex=out_mem if out_mem is not None and out_mem.exists() else None,
        marks_hex=out_marks if out_marks is not None and out_marks.exists() else None,
        waves=Path(waves_file) if waves_file is not None else None, workdir=workdir, extra=r,
    )

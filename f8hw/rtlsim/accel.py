"""The accelerator on the RTL: Verilog of the sim-only top (cached), its simulator build, and ``simulate``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f8hw import isa
from f8hw.rtlsim.hexfiles import (
    read_hex_prefix,
    read_hex_words,
    write_hex_bytes,
    write_hex_words,
)
from f8hw.rtlsim.progress import status
from f8hw.rtlsim.run import run_top
from f8hw.rtlsim.simbuild import BUILD_VERSION, RtlSimError, SimBuild, build, cache_root

__all__ = ["WatchdogError", "RtlRunError", "RtlResult", "design_verilog", "build_accelerator", "cycle_bound",
           "simulate"]


class WatchdogError(RtlSimError):
    """A run did not finish (done or error) within its cycle budget."""


def _generator_fingerprint() -> str:
    """Hash of everything the generated Verilog depends on (generator sources, versions)."""
    import amaranth

    import f8hw.hw

    h = hashlib.sha256()
    hw_dir = Path(f8hw.hw.__file__).parent
    files = sorted(p for p in hw_dir.rglob("*") if p.suffix in (".py", ".v", ".sv") and "__pycache__" not in p.parts)
    pkg = Path(__file__).parent.parent
    files += [pkg / "isa.py", pkg / "arch.py", *sorted((pkg / "numerics").glob("*.py"))]
    for p in files:
        h.update(str(p.relative_to(p.parent.parent)).encode())
        h.update(p.read_bytes())
    h.update(amaranth.__version__.encode())
    return h.hexdigest()


def _convert_design(arch) -> str:
    """All Verilog of the sim-only top of ``arch`` as one text (top module f8hw_simtop).

    Uses the generator's own entry point (f8hw.hw.build.generate, the files of
    SIM_SOURCES), i.e. exactly the RTL that ``f8hw build`` writes.
    """
    from f8hw.hw import build as hwbuild

    files = hwbuild.generate(arch)
    return "\n".join(files[name].decode() for name in hwbuild.SIM_SOURCES)


def design_verilog(arch, progress: bool | None = None) -> str:
    """The Verilog of the sim-only top for ``arch``, cached by (generator fingerprint, arch)."""
    key = hashlib.sha256((f"{BUILD_VERSION}:" + _generator_fingerprint()
                          + json.dumps(arch.to_dict(), sort_keys=True)).encode())
    path = cache_root() / "verilog" / f"{arch.array}-{key.hexdigest()[:24]}.v"
    if path.is_file():
        return path.read_text()
    with status(f"generating Verilog for {arch.array}", progress):
        text = _convert_design(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def build_accelerator(arch, simulator: str = "verilator", waves: bool = False,
                      progress: bool | None = None) -> SimBuild:
    """Compiled simulator of the sim-only top for ``arch`` (cached)."""
    from f8hw.hw.simtop import SIMTOP_MODULE

    return build(design_verilog(arch, progress), SIMTOP_MODULE, simulator, waves=waves, progress=progress)


@dataclass
class RtlResult:
    """One accelerator run on the RTL (fields mirror f8hw.isasim.SimResult)."""

    memory: np.ndarray | None     # final main memory (words x cols uint8), first `words` words
    cycles: int
    busy: int
    stall: int
    marks: dict[int, int]
    done: bool
    error: bool
    error_code: int
    timeout: bool
    sim_cycles: int
    wall_time: float              # seconds in the simulator process (clocking only)
    total_time: float             # seconds including file I/O and process start
    build: SimBuild
    waves: Path | None
    workdir: Path

    @property
    def cycles_per_second(self) -> float:
        return self.sim_cycles / self.wall_time if self.wall_time > 0 else float("inf")


class RtlRunError(RtlSimError):
    """The accelerator raised its error flag; ``code`` is its error_code."""

    def __init__(self, code: int, result: RtlResult):
        self.code = code
        self.result = result
        super().__init__(f"the accelerator stopped with error code {code} ({isa.error_label(code)}) "
                         f"at cycle {result.cycles}")


def cycle_bound(program, arch) -> int:
    """An upper bound on the cycles of a correct run of ``program``: every instruction's unit time,
    serialized (the accelerator overlaps them, never takes longer), plus slack.  The watchdog default."""
    from f8hw.arch import LOAD_LATENCY, REQUANT_LATENCY, STORE_LATENCY, array_latency

    drain = array_latency(arch.rows, arch.cols) + arch.rows + REQUANT_LATENCY
    unit_time = {"load": lambda w: w.load_words + LOAD_LATENCY, "store": lambda w: w.store_words + STORE_LATENCY,
                 "compute": lambda w: w.steps + drain}
    total = 0
    for _pc, op, _f, work in isa.walk(program, arch.cols):
        total += 1
        if op is not None and op.unit in unit_time:
            total += unit_time[op.unit](work)
    return 2 * total + 10_000


def simulate(arch, program, memory: np.ndarray, simulator: str = "verilator", max_cycles: int | None = None,
             waves: str | os.PathLike | None = None, workdir: str | os.PathLike | None = None,
             read_words: int | None = None, raise_on_error: bool = True,
             progress: bool | None = None, keep: bool = False) -> RtlResult:
    """Run ``program`` (list of INSTR_BITS-wide ints) on ``memory`` ((words, cols) uint8) in the RTL.

    Returns the final memory (its first ``read_words`` words, default the image's
    size), the counters and the MARK stamps.  Raises WatchdogError when the run
    does not end within ``max_cycles`` cycles, and RtlRunError when the
    accelerator raises its error flag (unless raise_on_error=False).
    """
    t0 = time.monotonic()
    memory = np.asarray(memory, dtype=np.uint8)
    if memory.ndim != 2 or memory.shape[1] != arch.cols:
        raise RtlSimError(f"memory must be (words, {arch.cols}) uint8, got {memory.shape}")
    if len(memory) > arch.mem_words:
        raise RtlSimError(f"memory image has {len(memory)} words, the sim top has mem_words={arch.mem_words}")
    program = list(program)
    if len(program) > arch.imem_depth:
        raise RtlSimError(f"program has {len(program)} instructions, imem_depth is {arch.imem_depth}")
    budget = int(max_cycles) if max_cycles is not None else cycle_bound(program, arch)
    sim = build_accelerator(arch, simulator, waves=waves is not None, progress=progress)
    own_dir = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="f8hw-rtl-")) if own_dir else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    try:
        write_hex_words(wd / "imem.hex", program if program else [0], isa.INSTR_BITS)
        write_hex_bytes(wd / "mem.hex", memory if len(memory) else np.zeros((1, arch.cols), np.uint8))
        run = run_top(sim, wd / "imem.hex", wd / "mem.hex", wd, budget, waves_file=waves, progress=progress)
        words = len(memory) if read_words is None else int(read_words)
        mem_out = None
        if run.memory_hex is not None:
            mem_out = read_hex_prefix(run.memory_hex, words, arch.cols)
        marks = {}
        if run.marks_hex is not None:
            for slot, v in enumerate(read_hex_words(run.marks_hex)):
                if v:
                    marks[slot] = v
        res = RtlResult(memory=mem_out, cycles=run.cycles, busy=run.busy, stall=run.stall, marks=marks,
                        done=run.done, error=run.error, error_code=run.error_code, timeout=run.timeout,
                        sim_cycles=run.sim_cycles, wall_time=run.wall_seconds,
                        total_time=time.monotonic() - t0, build=sim, waves=run.waves, workdir=wd)
    finally:
        if own_dir and not keep and waves is None:
            shutil.rmtree(wd, ignore_errors=True)
    if res.timeout:
        raise WatchdogError(f"watchdog: the program did not finish (no done or error) within the cycle "
                            f"budget of {budget} cycles ({simulator}, {arch.array}); a missing END or a "
                            f"hung unit? Raise max_cycles if the program is just long.")
    if res.error and raise_on_error:
        raise RtlRunError(res.error_code, res)
    return res

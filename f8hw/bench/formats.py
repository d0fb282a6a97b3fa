"""The bench's ``formats`` section (issue 15, "the measured answer"): what each format set costs and gives.

    run_formats(work, plan, log) -> dict

in one run, per format set of hwcost.FORMAT_SETS: the flexible PE (generic cells, iCE40 LUT4s, ECP5 LUT4s,
the ratio to the INT8 PE and the parts) and the FP8 requantizer lane; the MAC array alone and the whole
accelerator (generic cells, scratchpads black-boxed) for INT8 and the main flexible set(s) at the plan's
array sizes; Fmax (iCE40 HX8K + ECP5, as run_fmax) of the flexible PE, the FP8 lane and a flexible 2x2
array beside their INT8 counterparts; and the cycles of every bundled model compiled for a 16x16 flexible
build on the ISA engine, per format (INT8, each uniform FP8 format of the set and the flexible per-layer
selection, PTQ from the model's QAT checkpoint: cycles do not depend on the weights), next to the INT8
model on the INT8 build (which must take exactly the same cycles on both).
"""

from __future__ import annotations

import time
from pathlib import Path

from f8hw.bench.hwcost import FORMAT_SETS, fmax_component, nextpnr, run_format_area

__all__ = ["run_formats", "run_array_area", "run_format_fmax", "run_format_cycles", "MAIN_SETS", "CYCLE_ARCHS"]

MAIN_SETS = (("int8", "e4m3"), ("int8", "e2m5", "e3m4", "e4m3"))
"""The main flexible sets; the last is the one measured as whole arrays and accelerators (beside INT8
only), placed for Fmax and run for cycles."""

CYCLE_ARCHS = ("cnn", "resnet", "mobilenet", "outlier")
"""The bundled models whose cycles are measured per format (their QAT checkpoints under models/)."""


def run_array_area(workdir: Path, arrays, sets, log=None) -> dict:
    """The MAC array alone (f8hw.hw.array.MacArray, generic cells) per array size and format set, with the
    synthesis seconds (cached like synth_report) and the ratio to the INT8 array of the same size."""
    from f8hw.hw.array import MacArray
    from f8hw.hw.build import _convert, cached_synth, synth_workdir

    wd = synth_workdir(workdir)
    rows = []
    for n in arrays:
        base = None
        for fs in sets:
            name = "+".join(fs)
            if log:
                log(f"synthesizing the {n}x{n} MAC array for {name}, generic cells")
            r = cached_synth(f"array_{n}x{n}_{name}", _convert(MacArray(n, n, fs), "f8hw_array"), "f8hw_array", wd,
                             flows=("generic",))
            base = r["cells"] if fs == ("int8",) else base
            rows.append(dict(array=f"{n}x{n}", formats=name, cells=r["cells"], seconds=r["seconds"],
                             cached=r["cached"], ratio_cells=round(r["cells"] / base, 3) if base else None))
    return {"array": rows}


def run_format_fmax(workdir: Path, formats, log=None) -> dict:
    """Fmax (iCE40 HX8K; ECP5 when its nextpnr is installed) of the flexible PE, the FP8 lane and a flexible
    2x2 MAC array of one format set, beside the INT8 PE, shift lane and 2x2 array (the fmax section's), every
    block inside FmaxWrapper (all ports registered, so every path is timed register to register)."""
    from f8hw.bench.fmaxwrap import FmaxWrapper
    from f8hw.bench.hwcost import fmax_block
    from f8hw.hw.array import MacArray
    from f8hw.hw.build import _convert
    from f8hw.hw.fp8requant import Fp8RequantLane
    from f8hw.hw.fpe import FlexPE

    def wrapped(block, top):    # every port registered, as the fmax section's blocks
        return _convert(FmaxWrapper(block), top), top

    name = "+".join(formats)
    blocks = {"pe": fmax_block("pe"), "flex_pe": wrapped(FlexPE(formats), "f8hw_fmax_fpe"),
              "requant_shift": fmax_block("requant_shift"),
              "fp8_lane": wrapped(Fp8RequantLane(formats), "f8hw_fmax_fp8rq"),
              "array_2x2": fmax_block("array_2x2"),
              "flex_array_2x2": wrapped(MacArray(2, 2, formats), "f8hw_fmax_flex_array")}
    out = {"formats": name}
    for fam in ("ice40", "ecp5"):
        if nextpnr(fam) is None:
            continue
        comps = {}
        for b, (text, top) in blocks.items():
            if log:
                log(f"Fmax ({fam}): {b}" + (f" ({name})" if b.startswith(("flex", "fp8")) else ""))
            tag = f"{b}_{name}" if b.startswith(("flex", "fp8")) else b
            comps[b] = fmax_component(tag, text, top, workdir, family=fam)
        out[fam] = {b: {k: c.get(k) for k in ("fmax_mhz", "lcs", "device", "seed")} for b, c in comps.items()}
    return out


def _ptq_file(arch: str, fmt, workdir: Path) -> Path:
    """The model file of arch with format fmt ("int8", one FP8 format for every layer, or a tuple = the
    flexible selection among those candidates), PTQ (grid calibration) from its QAT checkpoint."""
    import torch

    import f8hw.nn as f8nn
    from f8hw import digits, train
    from f8hw.exporter import export
    from importlib import resources

    ckpt = Path(str(resources.files("f8hw") / "bundled")) / train.checkpoint_path(train.bundled_file(arch))
    model = train.load_checkpoint(str(ckpt))
    f8nn.set_quantized(model, False)
    x = torch.from_numpy(digits.load()["train"][0])
    calib = train.calibration_batches(x, train.RECIPES[arch])
    train.set_train_formats(model, fmt, calib, x[:8])
    f8nn.calibrate(model, calib, method="grid")
    tag = fmt if isinstance(fmt, str) else "sel-" + "+".join(fmt)
    path = Path(workdir) / f"{arch}-{tag}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    export(model.eval(), x[:1], path, meta={"arch": arch, "dataset": "sklearn-digits", "formats": tag})
    return path


def _cycles(path, formats, rows: int) -> dict:
    """Cycles of one model file on a rows x rows build of formats (ISA engine), checked against the golden model."""
    import f8hw
    from f8hw.bench.networks import input_images

    model = f8hw.load(path)
    images, _ = input_images(model)
    prog = f8hw.compile(model, f8hw.ArchConfig(rows=rows, cols=rows, formats=tuple(formats)), memories="fit",
                        use_cache=False)
    run = f8hw.simulate(prog, images, engine="isa", race_check=False)
    return dict(cycles=run.cycles, bit_exact=run.bit_exact, macs=run.macs, utilization=run.utilization)


def run_format_cycles(workdir: Path, formats, rows: int = 16, archs=CYCLE_ARCHS, log=None) -> dict:
    """Per bundled model: the INT8 model on the INT8 build and on the flexible build of formats (the cycles must
    be equal: no INT8 throughput loss), then each uniform FP8 format of the set and the flexible selection among
    the set, on the flexible build."""
    from f8hw.bench.networks import BUNDLED_NETS, model_path

    name = "+".join(formats)
    fp8 = [f for f in formats if f != "int8"]
    out = []
    for arch in archs:
        t0 = time.perf_counter()
        # the bundled INT8 model, or (a model bundled only with FP8 layers) its INT8 PTQ twin
        int8 = model_path(arch)[0] if arch in BUNDLED_NETS else _ptq_file(arch, "int8", workdir)
        rec = {"network": arch, "array": f"{rows}x{rows}", "build": name,
               "int8_on_int8": _cycles(int8, ("int8",), rows), "int8_on_flexible": _cycles(int8, formats, rows)}
        rec["int8_cycles_equal"] = rec["int8_on_int8"]["cycles"] == rec["int8_on_flexible"]["cycles"]
        rec["formats"] = {}
        for f in fp8 + [tuple(formats)]:
            key = f if isinstance(f, str) else "flexible"
            if log:
                log(f"cycles: {arch} {key} on the {rows}x{rows} {name} build")
            rec["formats"][key] = _cycles(_ptq_file(arch, f, workdir), formats, rows)
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        if log:
            log(f"{arch}: INT8 {rec['int8_on_int8']['cycles']:,} cycles on INT8, "
                f"{rec['int8_on_flexible']['cycles']:,} on {name}; " +
                ", ".join(f"{k} {v['cycles']:,}" for k, v in rec["formats"].items()))
        out.append(rec)
    return {"build": name, "array": f"{rows}x{rows}", "networks": out,
            "int8_cycles_equal": all(r["int8_cycles_equal"] for r in out)}


def run_formats(workdir: Path, plan: dict, log=None) -> dict:
    """The whole section (module docstring); plan: formats_arrays (array + accelerator sizes),
    formats_accel16 (the 16x16 whole accelerator too), formats_cycles (models whose cycles are measured)."""
    from f8hw.bench.hwcost import run_accel_format_area

    workdir = Path(workdir)
    sets = (("int8",), MAIN_SETS[-1])
    t0 = time.perf_counter()
    out = {"pe_lane": run_format_area(workdir / "synth", FORMAT_SETS, log=log)}
    out["pe_lane_s"] = round(time.perf_counter() - t0, 1)
    out["fmax"] = run_format_fmax(workdir / "fmax", MAIN_SETS[-1], log) if nextpnr("ice40") else None
    out["cycles"] = run_format_cycles(workdir / "models", MAIN_SETS[-1], archs=plan["formats_cycles"], log=log)
    # the big syntheses last (each cached on its own)
    out.update(run_array_area(workdir / "synth", plan["formats_arrays"], sets, log))
    accel = list(plan["formats_arrays"]) if plan["formats_accel16"] else [n for n in plan["formats_arrays"] if n < 16]
    out.update(run_accel_format_area(workdir / "synth", accel, sets, log))
    if not plan["formats_accel16"]:
        out["accelerator_16x16"] = "not synthesized in this mode (the array alone is)"
    return out

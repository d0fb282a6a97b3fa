"""The benchmark's network runs: utilization on the ISA engine, full networks on Verilator."""

from __future__ import annotations

import time

from f8hw.bench.accounting import classify_layer, layer_accounting
from f8hw.bench.networks import input_images, model_path

__all__ = ["run_util", "run_rtl", "run_sweep_throughput", "SWEEP_GRID"]


def _program(name: str, rows: int, cols: int, seed: int, log, pack_input: bool = False, batch: int = 1):
    """(program, images, description, export seconds): the network compiled with memories sized to fit."""
    import f8hw

    path, export_s = model_path(name, seed, log)
    model = f8hw.load(path)
    images, desc = input_images(model, seed, batch)
    prog = f8hw.compile(model, f8hw.ArchConfig(rows=rows, cols=cols), batch=batch, memories="fit", use_cache=False,
                        pack_input=pack_input)
    return prog, images, desc, export_s


def run_util(name: str, rows: int, cols: int, seed: int, log=None, pack_input: bool = False,
             batch: int = 1) -> dict:
    """Compile + simulate one network (``batch`` images) on the ISA engine (no race checking), checked against the
    golden model; the record has per-layer cycles, utilization, bit-exactness, the padding bound and where the
    cycles go."""
    import f8hw

    t0 = time.perf_counter()
    prog, images, desc, export_s = _program(name, rows, cols, seed, log, pack_input, batch)
    comp, arch = prog.compiled, prog.arch
    run = f8hw.simulate(prog, images, engine="isa", race_check=False)
    rec = dict(network=name, array=arch.array, rows=rows, cols=cols, batch=batch, engine="isa", input=desc,
               model_file=str(prog.model.path), export_s=export_s, compile_s=round(prog.compile_time, 3),
               mem_words=arch.mem_words, imem_depth=arch.imem_depth, instructions=prog.instructions,
               memory_image_words=int(len(comp.memory)), cycles=run.cycles, busy=run.busy, stall=run.stall,
               wall_s=round(run.wall_time, 3), cycles_per_s=round(run.cycles_per_second, 1), race_check=False,
               input_packing=run.input_packing, input_gather=list(comp.symbols.get("input_gather") or []))
    layers = []
    for li, lr, a in zip(comp.layers, run.layers, layer_accounting(comp)):
        rec_l = dict(name=li.name, kind=li.kind, op=li.op, macs=lr.macs, cycles=lr.cycles,
                     ideal=lr.macs / (rows * cols), utilization=lr.utilization, bit_exact=lr.bit_exact,
                     steps=a["steps"], dw_steps=a["dw_steps"], drains=a["drains"], computes=a["computes"],
                     load_words=a["load_w"] + a["load_b"] + a["load_s"] + a["load_a"], load_a=a["load_a"],
                     load_w=a["load_w"], store_words=a["store"], instructions=a["instrs"], tiles=dict(li.tiles))
        rec_l["bound"] = lr.macs / (rows * cols * a["steps"]) if lr.macs and a["steps"] else None
        rec_l["limit"] = classify_layer(rec_l, rows, cols)
        layers.append(rec_l)
    rec.update(macs=run.macs, ideal_cycles=run.macs / (rows * cols), utilization=run.utilization, layers=layers,
               bit_exact=run.bit_exact, layers_checked=sum(lr.bit_exact is not None for lr in run.layers),
               first_mismatch=run.first_mismatch, total_s=round(time.perf_counter() - t0, 3))
    return rec


def run_rtl(name: str, rows: int, cols: int, seed: int, log=None) -> dict:
    """A full-network run on Verilator, compared with the ISA simulator (cycles, counters, MARK stamps, the whole
    final memory) and with the golden model."""
    import f8hw

    prog, images, desc, _ = _program(name, rows, cols, seed, log)
    arch = prog.arch
    run = f8hw.simulate(prog, images, engine="verilator", race_check=False)
    extra = run.engine_result.extra
    return dict(network=name, array=arch.array, engine="verilator", input=desc, mem_words=arch.mem_words,
                imem_depth=arch.imem_depth, cycles=run.cycles, isa_cycles=run.isa_cycles,
                cycles_equal=run.cycles == run.isa_cycles, isa_equal=run.isa_agrees, isa_check=run.isa_check,
                bit_exact=run.bit_exact, sim_wall_s=round(run.wall_time, 3),
                total_wall_s=round(float(extra["total_time"]), 3), build_s=extra.get("build_seconds"),
                build_cached=extra.get("build_cached"), sim_cycles=extra.get("sim_cycles"),
                simulated_cycles_per_s=round(float(extra.get("simulated_cycles_per_second")
                                                   or run.cycles_per_second), 1))


SWEEP_GRID = dict(networks=["cnn", "mobilenet", "resnet20"], arrays=["4x4..16x16"], synth={"mode": "none"})
"""The benchmark's sweep: 9 points, compile + ISA simulation each (no synthesis)."""


def run_sweep_throughput(workdir, workers: int) -> dict:
    """Points per minute of a fresh ``f8hw sweep`` of SWEEP_GRID on a local Ray instance with ``workers`` CPUs
    (Ray's start-up included: what a user waits for)."""
    import shutil

    from f8hw.sweeps import run_sweep, spec_from_dict

    shutil.rmtree(workdir, ignore_errors=True)
    spec = spec_from_dict(SWEEP_GRID)
    t0 = time.perf_counter()
    res = run_sweep(spec, workdir, workers=workers)
    dt = time.perf_counter() - t0
    return dict(workers=workers, points=len(res.rows), seconds=round(dt, 2),
                points_per_minute=round(60 * len(res.rows) / dt, 2),
                errors=sum(r["error"] is not None for r in res.rows))

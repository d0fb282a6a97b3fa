"""Batches larger than memory allows: run them as several programs and merge the results into one Run.

A user evaluating accuracy on all test images should just get it: ``f8hw sim --batch 5000`` under a
``--max-memory`` that fits 700 images runs 8 programs (7 of 700 and one of 100), each compiled once,
each checked against the golden model, and reports the totals and the cycles of every program.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from f8hw.flow.run import LayerResult, Run

__all__ = ["merge_runs", "simulate_in_chunks"]


def simulate_in_chunks(model, images: np.ndarray, arch, chunk: int, *, compile_options: dict | None = None,
                       memories: str = "grow", use_cache: bool = True, log=None, **simulate_kw) -> Run:
    """Simulate ``images`` as programs of at most ``chunk`` images each; one merged Run."""
    from f8hw.flow.program import compile
    from f8hw.flow.run import simulate

    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    programs, runs = {}, []
    starts = range(0, len(images), chunk)
    for k, start in enumerate(starts):
        part = images[start : start + chunk]
        if len(part) not in programs:
            programs[len(part)] = compile(model, arch, batch=len(part), memories=memories, use_cache=use_cache,
                                          log=log, **(compile_options or {}))
        if log:
            log(f"program {k + 1}/{len(starts)}: images {start}..{start + len(part) - 1}")
        run = simulate(programs[len(part)], part, **simulate_kw)
        run.engine_result = None  # the final memory image of each program would add up
        runs.append(run)
    return merge_runs(runs)


def merge_runs(runs: list[Run]) -> Run:
    """Runs of one model on consecutive image slices -> one Run: totals summed, per-layer results summed,
    logits and predictions concatenated, the first mismatch with its image index in the whole batch;
    ``programs`` lists each program's batch and cycles."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    offsets = np.cumsum([0] + [r.batch for r in runs[:-1]])
    cycles = sum(r.cycles for r in runs)
    macs = sum(r.macs for r in runs)
    R, C = (int(v) for v in first.array.split("x"))
    wall = sum(r.wall_time for r in runs)
    mismatch = next((dict(m, batch=m["batch"] + int(off)) for r, off in zip(runs, offsets)
                     if (m := r.first_mismatch)), None)
    isa = [r.isa_cycles for r in runs]
    return replace(
        first, batch=sum(r.batch for r in runs), cycles=cycles, busy=sum(r.busy for r in runs),
        stall=sum(r.stall for r in runs), macs=macs, utilization=macs / (R * C * cycles) if cycles else 0.0,
        bit_exact=all(r.bit_exact for r in runs), wall_time=wall, compile_time=sum(r.compile_time for r in runs),
        cycles_per_second=cycles / wall if wall else 0.0, cached=all(r.cached for r in runs),
        layers=[_merge_layer(ls, R * C, offsets) for ls in zip(*(r.layers for r in runs))],
        first_mismatch=mismatch, mem_words=max(r.mem_words for r in runs),
        imem_depth=max(r.imem_depth for r in runs),
        isa_cycles=None if None in isa else sum(isa),
        isa_check=next((r.isa_check for r in runs if r.isa_check is not None), None),
        logits=[v for r in runs for v in r.logits], predictions=[p for r in runs for p in r.predictions],
        engine_result=None, programs=[dict(batch=r.batch, cycles=r.cycles) for r in runs])


def _merge_layer(parts: tuple[LayerResult, ...], pes: int, offsets) -> LayerResult:
    cyc = None if any(p.cycles is None for p in parts) else sum(p.cycles for p in parts)
    macs = sum(p.macs for p in parts)
    checked = [p.bit_exact for p in parts if p.bit_exact is not None]
    mism = next((dict(p.mismatch, batch=p.mismatch["batch"] + int(off)) for p, off in zip(parts, offsets)
                 if p.mismatch), None)
    isa = [p.isa_cycles for p in parts]
    return LayerResult(parts[0].name, macs, cyc, macs / (pes * cyc) if cyc else None,
                       all(checked) if checked else None, mism, None if None in isa else sum(isa))

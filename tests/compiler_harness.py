"""Run a Compiled program on the ISA simulator (f8hw.isasim, the one executable model of
docs/architecture.md; it also checks scratchpad and main-memory races) and compare with the
golden model."""

from __future__ import annotations

import numpy as np

from f8hw import golden, isasim


def run_program(compiled, memory, check_races=True) -> dict:
    """-> dict(memory, cycles, marks, busy, races, stall).  f8hw.isasim raises IsaSimError on a race."""
    r = isasim.run(compiled.program, memory, compiled.arch, check_races=check_races)
    return dict(memory=r.memory, cycles=r.cycles, marks=dict(r.marks), busy=r.busy, races=[], stall=r.stall)


def check_model(graph, compiled, images, check_races=True) -> dict:
    """Run and compare every readable tensor of every batch item with golden; returns the sim result."""
    mem = compiled.memory.copy()
    compiled.write_inputs(mem, images)
    res = run_program(compiled, mem, check_races)
    gold = golden.run(graph, images)
    assert not res["races"], f"scratchpad races: {res['races'][:5]}"
    assert compiled.readable(compiled.output_ref)
    for ref, arr in gold.items():
        if not compiled.readable(ref):
            continue
        for b in range(len(images)):
            got = compiled.read_tensor(res["memory"], ref, b)
            if not np.array_equal(got, arr[b]):
                diff = np.argwhere(got != arr[b])
                raise AssertionError(f"{ref} batch {b}: {len(diff)} mismatches, first at {diff[0].tolist()}: "
                                     f"got {got[tuple(diff[0])]} want {arr[b][tuple(diff[0])]}")
    return res

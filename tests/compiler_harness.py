"""Run a Compiled program on an ISA simulator and compare with the golden model.

Uses f8hw.isasim when it exists (the product's simulator), otherwise the
tests' own reference interpreter (compiler_refsim.py).  Both are bit-exact
models of docs/architecture.md; the reference one also checks scratchpad races.
"""

from __future__ import annotations

import numpy as np

from f8hw import golden

import compiler_refsim


try:
    from f8hw import isasim
except ImportError:  # pragma: no cover - before the ISA simulator existed
    isasim = None


def run_program(compiled, memory, check_races=True, sim: str = "auto") -> dict:
    """-> dict(memory, cycles, marks, busy, races).  sim: "isasim", "ref" or "auto" (isasim if present).

    f8hw.isasim raises IsaSimError on a race (scratchpads and main memory); the
    reference interpreter returns its scratchpad races in "races"."""
    if sim == "isasim" or (sim == "auto" and isasim is not None):
        r = isasim.run(compiled.program, memory, compiled.arch, check_races=check_races)
        return dict(memory=r.memory, cycles=r.cycles, marks=dict(r.marks), busy=r.busy, races=[], stall=r.stall)
    return compiler_refsim.run(compiled.arch, compiled.program, memory, check_races=check_races)


def check_model(graph, compiled, images, check_races=True, sim: str = "auto") -> dict:
    """Run and compare every readable tensor of every batch item with golden; returns the sim result."""
    mem = compiled.memory.copy()
    compiled.write_inputs(mem, images)
    res = run_program(compiled, mem, check_races, sim)
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

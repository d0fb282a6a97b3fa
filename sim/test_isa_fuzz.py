"""ISA fuzzing, RTL vs ISA simulator (issue 17): random instruction streams on a 2x2 array (sim/fuzzlib.py)
end in the same error code at the same cycle, or in the same cycles, counters, MARK stamps and main memory.

Bounded here (CASES programs on one cached Verilator build, one simulator process per program: the sim-only
top loads its memories once, at time 0); ``F8HW_SOAK=N`` runs N programs and ``F8HW_SEED`` shifts the seeds.
Part of scripts/mutate.py's fast subset: it is what catches the load-unit modes, the drain configuration
and the hazard interlock.
"""

from __future__ import annotations

import os
from collections import Counter

from fuzzlib import FLEX_FUZZ_ARCH, check_case, random_case

CASES = int(os.environ.get("F8HW_SOAK", "30"))
SEED0 = int(os.environ.get("F8HW_SEED", "0"))


def test_random_programs_rtl_equals_isa():
    outcomes = Counter()
    for seed in range(SEED0, SEED0 + CASES):
        prog, mem = random_case(seed)
        out = check_case(prog, mem, "verilator", what=f"fuzz case {seed} (F8HW_SEED={seed} F8HW_SOAK=1)")
        outcomes["error" if out.error else "memory" if out.memory_compared else "race"] += 1
    print(f"[f8hw] {CASES} programs: {dict(outcomes)}")
    # the mix must exercise both ends: programs that stop with an error and programs compared byte for byte
    assert outcomes["memory"] >= CASES // 4 and outcomes["error"] >= CASES // 5, dict(outcomes)


FLEX_REGRESSION_SEEDS = (1042,)
"""Flexible cases kept for what they once caught: 1042, a MAX COMPUTE with acc = 1 onto a MAC tile wider
than the activations (FlexPE compared only the low bits)."""


def test_random_programs_flexible_rtl_equals_isa():
    """The same on a flexible 2x2 build: random format registers (some naming no format), BIAS64, wide64."""
    outcomes = Counter()
    for seed in (*FLEX_REGRESSION_SEEDS, *range(SEED0, SEED0 + CASES)):
        prog, mem = random_case(seed, FLEX_FUZZ_ARCH)
        out = check_case(prog, mem, "verilator", FLEX_FUZZ_ARCH,
                         what=f"flexible fuzz case {seed} (F8HW_SEED={seed} F8HW_SOAK=1)")
        outcomes["error" if out.error else "memory" if out.memory_compared else "race"] += 1
    print(f"[f8hw] {sum(outcomes.values())} programs: {dict(outcomes)}")
    assert outcomes["memory"] >= CASES // 4 and outcomes["error"] >= CASES // 5, dict(outcomes)

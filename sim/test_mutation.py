"""Mutation check in the suite (fast subset): the RTL tests must catch injected generator faults.

The full check is ``scripts/mutate.py`` (every mutant); here one datapath
mutant (caught by the Icarus unit tests) and one load-unit mutant (caught only
by the ISA fuzz on Verilator) run against the fast subset, without the baseline
run (the rest of this suite is the baseline).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.mutation
def test_mutants_caught():
    cmd = [sys.executable, str(REPO / "scripts" / "mutate.py"), "--no-baseline", "--timeout", "300",
           "round_half_up", "vertical_stride_ignored"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    print(r.stdout)
    assert "score: 2/2 caught" in r.stdout, f"mutation score below 2/2:\n{r.stdout}\n{r.stderr[-2000:]}"
    assert r.returncode == 0

"""Shared fixtures of the RTL test suite (sim/).

* Seeds: every randomized test takes the ``seed`` fixture: $F8HW_SEED if set,
  else a fixed per-test value derived from the test id; it is printed (shown
  on failure) so a failure is reproducible with ``F8HW_SEED=<seed> pytest <id>``.
* Simulator builds are cached on disk by f8hw.rtlsim (keyed by the Verilog's
  hash), with a file lock, so tests and xdist workers that need the same
  design share one build.
* Selection: by default small arrays on Verilator, a smaller subset on Icarus,
  and one 16x16 run of the bundled default model.  ``-m "not slow"`` drops the
  16x16 run; F8HW_SIM_FULL=1 widens the Icarus selection.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import pytest

SIM_DIR = Path(__file__).resolve().parent
if str(SIM_DIR) not in sys.path:  # tb_stream / unitlib importable by the simulator process too
    sys.path.insert(0, str(SIM_DIR))

os.environ.setdefault("F8HW_SIM_WALL_TIMEOUT", "900")  # a hung simulator process is killed

SIMULATORS_UNIT = ["verilator", "icarus"]
FULL = os.environ.get("F8HW_SIM_FULL") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long RTL runs (16x16 bundled model)")
    config.addinivalue_line("markers", "mutation: mutation-score check of the RTL test suite")


@pytest.fixture
def seed(request) -> int:
    env = os.environ.get("F8HW_SEED")
    s = int(env) if env else zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF
    print(f"\n[f8hw] seed {s} (reproduce: F8HW_SEED={s} pytest '{request.node.nodeid}')")
    return s

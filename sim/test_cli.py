"""`f8hw sim --engine verilator|icarus`: the RTL engines through the CLI, same report as the ISA engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accel_lib import SMALL_IMEM, SMALL_MEM_WORDS
from conftest import FULL
from test_accel import REPO, bundled_models


def _sim(model: str, engine: str, array: str) -> dict:
    cmd = [sys.executable, "-m", "f8hw.cli", "sim", str(REPO / "models" / model), "--array", array,
           "--mem-words", str(SMALL_MEM_WORDS), "--imem-depth", str(SMALL_IMEM), "--engine", engine, "--json"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


CONFIGS = [("verilator", "4x4")] + ([("icarus", "2x2")] if FULL else [])  # Icarus: slow, covered by test_accel


@pytest.mark.parametrize("engine,array", CONFIGS)
def test_cli_engine(engine, array):
    models = bundled_models()
    assert models, "no bundled model"
    model = models[0]
    rtl = _sim(model, engine, array)
    isa = _sim(model, "isa", array)
    assert rtl["engine"] == engine and rtl["bit_exact"], f"{engine}: not bit-exact: {rtl.get('first_mismatch')}"
    assert (rtl["cycles"], rtl["busy"], rtl["stall"]) == (isa["cycles"], isa["busy"], isa["stall"])
    assert [layer["cycles"] for layer in rtl["layers"]] == [layer["cycles"] for layer in isa["layers"]]
    assert rtl["cycles_per_second"] > 0

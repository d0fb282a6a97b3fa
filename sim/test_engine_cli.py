"""`f8hw sim --engine verilator|icarus`: the RTL engines through the CLI, same report as the ISA engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accel_lib import SMALL_IMEM, SMALL_MEM_WORDS
from conftest import FULL
from test_accel import REPO, bundled_models


def _run(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "f8hw.cli", "sim", *args, "--json"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


def _sim(model: str, engine: str, array: str) -> dict:
    return _run([str(REPO / "models" / model), "--array", array, "--mem-words", str(SMALL_MEM_WORDS),
                 "--imem-depth", str(SMALL_IMEM), "--engine", engine])


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
    # the command's own cross-check ran the ISA simulator on the same program
    assert rtl["isa_agrees"] is True and rtl["isa_cycles"] == isa["cycles"] and rtl["isa_check"] is None
    assert [layer["isa_cycles"] for layer in rtl["layers"]] == [layer["cycles"] for layer in isa["layers"]]


@pytest.mark.slow
def test_sim_no_arguments():
    """`f8hw sim` with no arguments: the bundled default model on the 16x16 RTL in Verilator, every layer
    bit-exact, cycles equal to the ISA simulator's (the issue's definition of done)."""
    rep = _run([])
    assert rep["engine"] == "verilator" and rep["array"] == "16x16" and rep["model"].endswith("default.pt")
    assert rep["bit_exact"] is True and all(layer["bit_exact"] is True for layer in rep["layers"])
    assert rep["isa_agrees"] is True and rep["cycles"] == rep["isa_cycles"]
    assert [layer["cycles"] for layer in rep["layers"]] == [layer["isa_cycles"] for layer in rep["layers"]]


def test_sim_waves(tmp_path):
    """--waves FILE writes a waveform of the run (Icarus on a 2x2 array and a tiny random model)."""
    import numpy as np

    from f8hw.modelfile import save_model
    from f8hw.testing import random_conv_graph

    model = tmp_path / "tiny.pt"
    save_model(random_conv_graph(np.random.default_rng(3), in_shape=(1, 4, 4), channels=2), model)
    waves = tmp_path / "run.vcd"
    rep = _run([str(model), "--array", "2x2", "--engine", "icarus", "--mem-words", str(SMALL_MEM_WORDS),
                "--imem-depth", str(SMALL_IMEM), "--waves", str(waves)])
    assert rep["bit_exact"] is True and rep["isa_agrees"] is True
    assert waves.is_file() and waves.stat().st_size > 1000

"""f8hw sim: compile + simulate + per-layer bit-exact check + cycle report, and the engine registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from f8hw.cli import main
from f8hw.errors import F8Error

pytest.importorskip("f8hw.compiler", reason="the compiler (f8hw.compiler) is not available")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "default.pt"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("F8HW_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from f8hw.modelfile import save_model
    from f8hw.testing import random_conv_graph

    g = random_conv_graph(np.random.default_rng(11), in_shape=(1, 8, 8), channels=8)
    path = tmp_path_factory.mktemp("model") / "net.pt"
    save_model(g, path)
    return path


def run_json(capsys, *args):
    args = [*map(str, args)]
    if "--engine" not in args:
        args += ["--engine", "isa"]  # the RTL engines are tested in sim/test_engine_cli.py
    code = main(["sim", *args, "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip() else None), out.err


def test_sim_json_bit_exact_and_cache(model_file, capsys):
    code, rep, err = run_json(capsys, model_file, "--array", "4x4", "--batch", "2")
    assert code == 0, err
    assert rep["engine"] == "isa" and rep["array"] == "4x4" and rep["bit_exact"] is True
    assert rep["batch"] == 2 and rep["cycles"] > 0 and not rep["cached"]
    assert err == ""  # quiet under --json
    names = [lay["name"] for lay in rep["layers"]]
    assert names[0] == "conv1" and "fc" in names
    for lay in rep["layers"]:
        assert set(lay) >= {"name", "macs", "cycles", "utilization", "bit_exact"}
        assert lay["bit_exact"] is True and lay["cycles"] > 0
        assert lay["utilization"] == pytest.approx(lay["macs"] / (16 * lay["cycles"]))
    assert sum(lay["cycles"] for lay in rep["layers"]) <= rep["cycles"]
    assert rep["utilization"] == pytest.approx(rep["macs"] / (16 * rep["cycles"]))
    # the second run reuses the compilation and gives the same numbers
    code2, rep2, _ = run_json(capsys, model_file, "--array", "4x4", "--batch", "2")
    assert code2 == 0 and rep2["cached"] and rep2["cycles"] == rep["cycles"]


def test_sim_table_plot_report(model_file, tmp_path, capsys):
    png, md = tmp_path / "util.png", tmp_path / "report.md"
    code = main(["sim", str(model_file), "--array", "8x8", "--engine", "isa", "--plot", str(png), "--report", str(md)])
    out = capsys.readouterr().out
    assert code == 0
    assert "total" in out and "conv1" in out and "cycles/s" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    text = md.read_text()
    assert "| layer | MACs | cycles | utilization | bit-exact |" in text and "| conv1 |" in text


def test_sim_mismatch_names_layer_and_coordinates(model_file, capsys, monkeypatch):
    from f8hw import golden

    real = golden.run

    def corrupted(graph, images):
        t = real(graph, images)
        t["pw"] = t["pw"].copy()
        t["pw"][0, 3, 1, 2] += 1
        return t

    monkeypatch.setattr(golden, "run", corrupted)
    code, rep, err = run_json(capsys, model_file, "--array", "4x4")
    assert code == 1
    assert rep["bit_exact"] is False
    bad = [lay["name"] for lay in rep["layers"] if lay["bit_exact"] is False]
    assert bad == ["pw"]
    m = rep["first_mismatch"]
    assert m["layer"] == "pw" and m["index"] == [3, 1, 2] and m["got"] + 1 == m["expected"]
    assert "MISMATCH" in err and "'pw'" in err and "(3, 1, 2)" in err


def test_sim_inputs_npy_and_png(model_file, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3, 1, 8, 8), dtype=np.uint8)
    npy = tmp_path / "x.npy"
    np.save(npy, x)
    code, rep, err = run_json(capsys, model_file, "--array", "4x4", "--input", npy, "--batch", "3")
    assert code == 0 and rep["bit_exact"] and rep["batch"] == 3, err

    import matplotlib.image as mpimg

    png = tmp_path / "x.png"
    mpimg.imsave(png, x[0, 0], cmap="gray", vmin=0, vmax=255)
    code, rep, err = run_json(capsys, model_file, "--array", "4x4", "--input", png)
    assert code == 0 and rep["bit_exact"], err

    code, rep, err = run_json(capsys, model_file, "--input", tmp_path / "missing.npy")
    assert code == 3 and "no such file" in err
    np.save(npy, x[:, :, :4])
    code, rep, err = run_json(capsys, model_file, "--input", npy)
    assert code == 3 and "shape" in err


def test_loader_helpers():
    from f8hw.flow import resolve_images

    imgs, desc = resolve_images(None, (1, 8, 8), 2)
    assert imgs.shape == (2, 1, 8, 8) and imgs.dtype == np.uint8 and "digits" in desc
    imgs, desc = resolve_images(None, (3, 5, 5), 1)
    assert imgs.shape == (1, 3, 5, 5) and "random" in desc
    with pytest.raises(F8Error, match="batch"):
        resolve_images(None, (1, 8, 8), 0)
    x = np.zeros((3, 1, 8, 8), np.uint8)
    assert resolve_images(x, (1, 8, 8), 2)[0].shape == (2, 1, 8, 8)     # more than the batch: cut
    assert resolve_images(x[0], (1, 8, 8), None)[0].shape == (1, 1, 8, 8)  # one CHW image
    with pytest.raises(F8Error, match="holds 3 image"):
        resolve_images(x, (1, 8, 8), 4)
    with pytest.raises(F8Error, match="uint8"):
        resolve_images(np.full((1, 1, 8, 8), 300), (1, 8, 8), None)
    with pytest.raises(F8Error, match="shape"):
        resolve_images(np.zeros((1, 3, 8, 8), np.uint8), (1, 8, 8), None)


def test_engine_registry():
    from f8hw.engines import Engine, EngineError, get_engine

    eng = get_engine("isa")
    assert eng.name == "isa" and isinstance(eng, Engine)
    with pytest.raises(EngineError, match="unknown engine 'spice'"):
        get_engine("spice")


def test_sim_defaults_to_the_verilator_engine():
    from f8hw.cli import build_parser

    args = build_parser().parse_args(["sim"])
    assert args.engine == "verilator" and args.array == "16x16" and args.model == "default"


def test_sim_waves_need_an_rtl_engine(model_file, capsys):
    code = main(["sim", str(model_file), "--engine", "isa", "--waves", "w.vcd"])
    assert code == 3 and "waveforms come from an RTL engine" in capsys.readouterr().err


def test_sim_grows_memories_that_are_too_small(model_file):
    """Memories left at their defaults grow to fit the model; sizes the user gave are kept (and then fail)."""
    import f8hw

    tiny = f8hw.ArchConfig(rows=4, cols=4, mem_words=64, imem_depth=16)
    prog = f8hw.compile(model_file, tiny)
    assert prog.grown == {"mem_words": (64, prog.arch.mem_words), "imem_depth": (16, prog.arch.imem_depth)}
    rep = f8hw.simulate(prog, engine="isa")
    assert rep.bit_exact and rep.mem_words > 64 and rep.imem_depth > 16
    assert rep.mem_words & (rep.mem_words - 1) == 0 and rep.imem_depth & (rep.imem_depth - 1) == 0
    with pytest.raises(F8Error, match="mem_words is 64"):
        f8hw.compile(model_file, tiny, memories="fixed", use_cache=False)
    # the command line keeps the sizes the user gave
    assert main(["sim", str(model_file), "--engine", "isa", "--array", "4x4", "--imem-depth", "16"]) == 3


def test_sim_default_model_end_to_end(tmp_path):
    """The bundled default model through the installed command, on the ISA engine (the RTL default run
    is sim/test_engine_cli.py::test_sim_no_arguments)."""
    exe = Path(sys.executable).parent / "f8hw"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "f8hw.cli"]
    r = subprocess.run(cmd + ["sim", "--json", "--array", "16x16", "--engine", "isa"], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "F8HW_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["bit_exact"] is True and rep["engine"] == "isa" and rep["array"] == "16x16"
    assert rep["cycles"] > 0 and all(lay["bit_exact"] is not False for lay in rep["layers"])


def test_sim_pack_input_is_opt_in(capsys):
    code, plain, err = run_json(capsys, DEFAULT_MODEL, "--array", "4x4")
    assert code == 0, err
    assert plain["input_packing"] is None
    code, packed, err = run_json(capsys, DEFAULT_MODEL, "--array", "4x4", "--pack-input")
    assert code == 0, err
    assert packed["input_packing"] == "features.0" and packed["bit_exact"] is True
    assert packed["cycles"] != plain["cycles"]  # a different program (cached separately), same results
    code, nogather, err = run_json(capsys, DEFAULT_MODEL, "--array", "4x4", "--no-gather")
    assert code == 0, err
    assert nogather["bit_exact"] is True and nogather["cycles"] > plain["cycles"]  # the 1-channel stem gathers


def test_sim_no_diag(capsys):
    """The bundled MobileNet's depthwise layers use LOAD_A window reuse unless --no-diag."""
    mobilenet = REPO / "models" / "mobilenet.pt"
    code, diag, err = run_json(capsys, mobilenet, "--array", "4x4")
    assert code == 0, err
    code, nodiag, err = run_json(capsys, mobilenet, "--array", "4x4", "--no-diag")
    assert code == 0, err
    assert diag["bit_exact"] is True and nodiag["bit_exact"] is True and diag["cycles"] < nodiag["cycles"]


def test_sim_no_lbuf(capsys):
    """The bundled MobileNet's depthwise layers keep their windows in a line buffer unless --no-lbuf
    (bit-exact either way, fewer cycles with it)."""
    mobilenet = REPO / "models" / "mobilenet.pt"
    code, on, err = run_json(capsys, mobilenet, "--array", "4x4", "--engine", "isa")
    assert code == 0, err
    code, off, err = run_json(capsys, mobilenet, "--array", "4x4", "--engine", "isa", "--no-lbuf")
    assert code == 0, err
    assert on["bit_exact"] is True and off["bit_exact"] is True and on["cycles"] < off["cycles"]

"""The public API (f8hw.load / compile / simulate / build) and the CLI built on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import f8hw
from f8hw.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("F8HW_CACHE", str(tmp_path / "cache"))


def test_import_is_light_and_exports_the_api():
    code = "import sys, f8hw; assert 'torch' not in sys.modules and 'amaranth' not in sys.modules; print(f8hw.__all__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in ("load", "compile", "simulate", "build", "ArchConfig", "Run", "Program"):
        assert name in r.stdout and getattr(f8hw, name).__doc__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        f8hw.nope


def test_nothing_outside_the_cli_imports_the_commands():
    r = subprocess.run(["grep", "-rln", r"f8hw\.commands\|from \.commands\|from \.\.commands", "f8hw",
                        "--include=*.py"], cwd=REPO, capture_output=True, text=True)
    users = sorted(p for p in r.stdout.split() if not p.startswith("f8hw/commands/") and p != "f8hw/cli.py")
    assert users == []


def test_load_sources():
    m = f8hw.load("default")
    assert m.name == "default.pt" and m.input_shape == (1, 8, 8) and len(m.key) == 64
    assert f8hw.load(m) is m
    g = f8hw.load(m.path)
    assert g.key == m.key
    from_graph = f8hw.load(m.graph)
    assert from_graph.source == "<graph>" and from_graph.key != ""
    assert "default" in f8hw.bundled_models() and "cnn.qat" not in f8hw.bundled_models()
    with pytest.raises(f8hw.F8Error, match="no bundled model 'nosuch'.*default"):
        f8hw.load("nosuch")
    with pytest.raises(f8hw.F8Error, match="cannot load a model from int"):
        f8hw.load(3)


def test_compile_validates_arguments():
    with pytest.raises(f8hw.F8Error, match="memories must be one of"):
        f8hw.compile("default", memories="big")
    with pytest.raises(f8hw.F8Error, match="unknown compiler option.*speed"):
        f8hw.compile("default", speed=True)
    with pytest.raises(f8hw.F8Error, match="batch must be a positive integer"):
        f8hw.compile("default", batch=0)
    with pytest.raises(f8hw.F8Error, match="arch must be an f8hw.ArchConfig"):
        f8hw.compile("default", "16x16")


def test_compile_cache_and_fit():
    acc = f8hw.ArchConfig(rows=4, cols=4)
    a = f8hw.compile("default", acc, batch=2)
    b = f8hw.compile("default", acc, batch=2)
    assert not a.cached and b.cached and a.compiled.program == b.compiled.program
    fit = f8hw.compile("default", acc, batch=2, memories="fit")
    assert fit.arch.mem_words < acc.mem_words and fit.compiled.program == a.compiled.program
    assert "4x4" in repr(a) and a.to_dict()["instructions"] == a.instructions


def test_simulate_results_and_errors():
    prog = f8hw.compile("default", f8hw.ArchConfig(rows=4, cols=4), batch=2)
    run = f8hw.simulate(prog)
    assert run.ok and run.batch == 2 and len(run.logits) == 2 and len(run.logits[0]) == 10
    assert run.predictions == [int(np.argmax(v)) for v in run.logits]
    from f8hw import golden

    images = f8hw.flow.resolve_images(None, (1, 8, 8), 2)[0]
    logits, pred = golden.classify(prog.model.graph, images)
    assert run.logits == logits.tolist() and run.predictions == pred.tolist()
    assert "bit-exact yes" in repr(run) and "<table>" in run._repr_html_()
    with pytest.raises(f8hw.F8Error, match="2 given, the program was compiled for batch 2|holds 1 image"):
        f8hw.simulate(prog, images[:1])
    with pytest.raises(f8hw.F8Error, match="unknown engine 'spice'"):
        f8hw.simulate(prog, engine="spice")
    with pytest.raises(f8hw.F8Error, match="waveforms come from an RTL engine"):
        f8hw.simulate(prog, waves="w.vcd")
    with pytest.raises(f8hw.F8Error, match="already has its configuration"):
        f8hw.simulate(prog, arch=f8hw.ArchConfig())


def test_sim_json_equals_the_api(capsys):
    acc = f8hw.ArchConfig(rows=4, cols=4)
    api = f8hw.simulate(f8hw.compile("default", acc, batch=3), engine="isa")
    assert main(["sim", "default", "--engine", "isa", "--array", "4x4", "--batch", "3", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert set(cli) > {"logits", "predictions", "layers"} and len(cli["logits"]) == 3
    timing = ("wall_time", "compile_time", "cycles_per_second", "cached")
    assert {k: v for k, v in cli.items() if k not in timing} == json.loads(api.to_json(timing=False))


def test_exit_codes_are_documented_and_distinct(tmp_path, capsys):
    from f8hw.cli import EXIT_CODES, build_parser

    assert "0  ok" in EXIT_CODES and "3  bad input" in EXIT_CODES
    assert "exit status" in build_parser().format_help()
    with pytest.raises(SystemExit) as e:
        main(["sim", "--engine", "spice"])
    assert e.value.code == 2
    assert main(["sim", str(tmp_path / "missing.pt"), "--engine", "isa"]) == 3
    assert "missing.pt" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["sim", "default", "--engine", "isa", "--report", "/nonexistent/d/r.md"], "directory /nonexistent/d does not exist"),
    (["sim", "default", "--engine", "isa", "--plot", "p.txt"], "expected a .png file"),
    (["inspect", "default", "--plot", "/nonexistent/d/p.png"], "does not exist"),
    (["sim", "default", "--engine", "verilator", "--waves", "/nonexistent/d/w.vcd"], "does not exist"),
    (["train", "--arch", "cnn", "-o", "/nonexistent/d/m.pt"], "does not exist"),
    (["zoo", "resnet20", "-o", "m.txt"], "expected a .pt file"),
])
def test_bad_output_paths_fail_before_the_work(argv, message, capsys):
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_json_on_reporting_commands(tmp_path, capsys):
    assert main(["inspect", "default", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["model"] == "default.pt" and rep["nodes"][1]["w_fl"] is not None
    assert main(["compile", "default", "--array", "4x4", "-o", str(tmp_path / "c"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["array"] == "4x4" and rep["instructions"] > 0 and (tmp_path / "c" / "program.bin").is_file()
    assert main(["analyze", "fl", "-o", str(tmp_path / "a"), "--samples", "500", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in rep["results"]} == {"signed", "unsigned"}


def test_compile_keeps_given_memories_and_names_the_flag(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compile", "default", "--array", "4x4", "--imem-depth", "16", "-o", str(out)]) == 3
    assert "imem_depth is 16" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["compile", "default", "--array", "4x4", "-o", str(tmp_path / "file")]) == 3
    assert "not a directory" in capsys.readouterr().err


def test_build_and_hardware_record(tmp_path):
    hw = f8hw.build(f8hw.ArchConfig(rows=2, cols=2), tmp_path / "rtl")
    assert (tmp_path / "rtl" / "manifest.json").is_file() and all(p.is_file() for p in hw.files)
    assert json.loads(hw.to_json())["manifest"]["content_hash"] == hw.manifest["content_hash"]
    assert "2x2" in repr(hw)


def test_run_that_cannot_fit_is_refused_before_allocating(tmp_path):
    """Under an address-space limit, a run that cannot fit even one image gets a one-line error naming the
    flag, not a kill (a batch that only does not fit at once runs in chunks: test_huge_batch_runs_in_chunks)."""
    from f8hw.modelfile import save_model
    from f8hw.testing import random_conv_graph

    model = tmp_path / "m.pt"
    save_model(random_conv_graph(np.random.default_rng(1), in_shape=(3, 16, 16), channels=16), model)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30)); "
            "from f8hw.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "sim", str(model), "--engine", "isa", "--batch", "100000",
                        "--max-memory", "64K"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: one image needs about") and "over the limit of" in last
    assert "--max-memory" in last and "Traceback" not in r.stderr


def test_huge_batch_runs_in_chunks(tmp_path, capsys):
    """A batch over --max-memory runs as programs that fit; the merged result is the one-program result."""
    from f8hw.flow.resources import SAFETY, memory_model
    from f8hw.modelfile import save_model
    from f8hw.testing import random_conv_graph, random_images

    rng = np.random.default_rng(4)
    graph = random_conv_graph(rng, in_shape=(1, 8, 8), channels=4)
    model = tmp_path / "m.pt"
    save_model(graph, model)
    images = tmp_path / "x.npy"
    np.save(images, random_images(rng, graph, 40))
    peak, per_image = memory_model(f8hw.load(str(model)), f8hw.ArchConfig(rows=4, cols=4))
    limit = int(SAFETY * (peak + per_image * 13.5))  # about 15 images fit (the CLI measures again)
    args = ["sim", str(model), "--engine", "isa", "--array", "4x4", "--input", str(images), "--json"]
    assert main([*args, "--batch", "40", "--max-memory", str(limit)]) == 0
    chunked = json.loads(capsys.readouterr().out)
    batches = [p["batch"] for p in chunked["programs"]]
    assert len(batches) >= 2 and sum(batches) == 40, batches
    assert len(set(batches[:-1])) == 1 and batches[-1] <= batches[0], batches
    assert chunked["cycles"] == sum(p["cycles"] for p in chunked["programs"]) and chunked["bit_exact"]
    assert main([*args, "--batch", "40"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert "programs" not in whole and chunked["batch"] == whole["batch"] == 40
    assert chunked["logits"] == whole["logits"] and chunked["predictions"] == whole["predictions"]
    assert [lr["macs"] for lr in chunked["layers"]] == [lr["macs"] for lr in whole["layers"]]
    assert all(lr["bit_exact"] is not False for lr in chunked["layers"])


def test_sizes():
    from f8hw.flow.resources import parse_size

    assert parse_size("8G") == 8 << 30 and parse_size("512MB") == 512 << 20 and parse_size("1.5k") == 1536
    with pytest.raises(f8hw.F8Error, match="--max-memory"):
        parse_size("lots")


def test_outputs_are_all_or_nothing(tmp_path, capsys):
    out = tmp_path / "rtl"
    (out / "f8hw_spad.v").mkdir(parents=True)
    assert main(["build", "--array", "2x2", "-o", str(out)]) == 3
    assert "f8hw_spad.v: is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["f8hw_spad.v"]   # nothing else was written
    from f8hw.fileio import write_text

    write_text(tmp_path / "r.md", "x")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary left behind


def test_npy_with_objects_is_refused_without_unsafe_advice(tmp_path):
    from f8hw.flow import resolve_images

    p = tmp_path / "x.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(f8hw.F8Error, match="holds Python objects, not a uint8 image array") as e:
        resolve_images(str(p), (1, 8, 8), 1)
    assert "allow_pickle" not in str(e.value)

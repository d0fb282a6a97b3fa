"""Emitted Verilog: lint (Verilator), compile (Icarus), an end-to-end Icarus run of the sim-only
top, determinism, up-to-date rtl/, CLI errors, and build time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.hw.build import SIM_SOURCES, generate, write_rtl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))


def _sizes():
    return [pytest.param((2, 2), id="2x2"), pytest.param((4, 4), id="4x4"), pytest.param((3, 5), id="3x5"),
            pytest.param((16, 16), id="16x16", marks=pytest.mark.slow)]


def _small(r, c, **kw):
    base = dict(rows=r, cols=c, a_depth=64, w_depth=128, b_depth=4, s_depth=16, o_depth=16, mem_words=512,
                imem_depth=256, mark_depth=8)
    base.update(kw)
    return ArchConfig(**base)


@pytest.fixture(scope="module")
def tools():
    from f8hw.toolenv import tool_env
    return tool_env()


@pytest.mark.parametrize("dims", _sizes())
def test_lint_and_compile(dims, tmp_path, tools):
    cfg = ArchConfig(rows=dims[0], cols=dims[1]) if dims == (16, 16) else _small(*dims)
    write_rtl(cfg, tmp_path)
    srcs = [str(tmp_path / f) for f in SIM_SOURCES]
    r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "-Wno-WIDTH", "-Wno-MULTIDRIVEN",
                        "--top-module", "f8hw_simtop"] + srcs, capture_output=True, text=True, env=tools)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "%Error" not in r.stderr, r.stderr[-3000:]
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    r = subprocess.run(["iverilog", "-g2012", "-s", "f8hw_simtop", "-o", str(tmp_path / "a.vvp")] + srcs,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]


TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 0;
  wire done, error; wire [2:0] error_code; wire [31:0] cycles, busy, stall;
  f8hw_simtop dut(.clk(clk), .rst(rst), .done(done), .error(error), .error_code(error_code),
                  .cycles(cycles), .busy(busy), .stall(stall));
  always #5 clk = ~clk;
  integer n = 0;
  initial begin
    #1 rst = 1;  // a reset *event* (Icarus does not evaluate always @* blocks for time-0 values)
    repeat (3) @(posedge clk);
    rst <= 0;
    while (!(done || error) && n < 100000) begin @(posedge clk); n = n + 1; end
    repeat (4) @(posedge clk);
    $display("RESULT %0d %0d %0d %0d %0d %0d", done, error, error_code, cycles, busy, stall);
    $finish;
  end
endmodule
"""


def _write_hex(path, words, nbits):
    path.write_text("".join(f"{w:0{nbits // 4}x}\n" for w in words))


def _read_hex(path, n, C):
    vals = []
    for line in path.read_text().split("\n"):
        line = line.strip()
        if not line or line.startswith("//") or line.startswith("@"):
            continue
        vals.append(int(line, 16))
    out = np.zeros((n, C), np.uint8)
    for i, v in enumerate(vals[:n]):
        out[i] = np.frombuffer(v.to_bytes(C, "little"), np.uint8)
    return out


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
@pytest.mark.parametrize("dims", [(2, 3), (3, 2)])
def test_icarus_end_to_end(dims, tmp_path):
    """The Verilog sim top (f8hw_mem.v, f8hw_spad.v, plusargs, dumps) runs a conv program with the same
    results and cycle counts as f8hw.isasim (the Amaranth model is held to the same in test_hw_accel)."""
    from f8hw import isasim
    from test_hw_accel import conv_program

    cfg = _small(*dims)
    prog, mem, _ = conv_program(cfg, np.random.default_rng(11))
    res = isasim.run(prog, mem.astype(np.uint8), cfg)
    ref = dict(cycles=res.cycles, busy=res.busy, stall=res.stall, marks=res.marks,
               mem=res.memory[:cfg.mem_words].astype(np.int64))
    write_rtl(cfg, tmp_path)
    (tmp_path / "tb.v").write_text(TB)
    _write_hex(tmp_path / "prog.hex", prog, 128)
    C = cfg.cols
    _write_hex(tmp_path / "mem.hex", [int.from_bytes(bytes(r.astype(np.uint8)), "little") for r in mem], 8 * C)
    srcs = [str(tmp_path / f) for f in SIM_SOURCES] + [str(tmp_path / "tb.v")]
    subprocess.run(["iverilog", "-g2012", "-s", "tb", "-o", str(tmp_path / "a.vvp")] + srcs, check=True)
    r = subprocess.run(["vvp", "-n", str(tmp_path / "a.vvp"), f"+imem={tmp_path / 'prog.hex'}",
                        f"+mem={tmp_path / 'mem.hex'}", f"+dump={tmp_path / 'out.hex'}",
                        f"+marks={tmp_path / 'marks.hex'}"], capture_output=True, text=True, timeout=300)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT"))
    done, error, code, cycles, busy, stall = map(int, line.split()[1:])
    assert (done, error) == (1, 0)
    assert (cycles, busy, stall) == (ref["cycles"], ref["busy"], ref["stall"])
    got = _read_hex(tmp_path / "out.hex", cfg.mem_words, C)
    np.testing.assert_array_equal(got.astype(np.int64), ref["mem"])
    marks = [int(ln, 16) for ln in (tmp_path / "marks.hex").read_text().splitlines()
             if ln.strip() and not ln.startswith(("//", "@"))]
    assert marks[0] == ref["marks"][0] and marks[1] == ref["marks"][1]


def test_deterministic_and_rtl_up_to_date():
    """Two generations give identical bytes, and the committed rtl/ is the default configuration's."""
    cfg = ArchConfig()
    a = generate(cfg)
    b = generate(cfg)
    assert a == b
    rtl = ROOT / "rtl"
    assert rtl.is_dir(), "rtl/ missing: run `f8hw build --array 16x16 -o rtl/`"
    committed = {p.name: p.read_bytes() for p in rtl.iterdir() if p.is_file()}
    stale = [n for n in a if committed.get(n) != a[n]]
    assert not stale, f"rtl/ is out of date ({stale}): run `f8hw build --array 16x16 -o rtl/`"


def test_manifest_contents(tmp_path):
    m = write_rtl(_small(3, 5), tmp_path)
    assert m["parameters"]["rows"] == 3 and m["parameters"]["cols"] == 5
    assert m["isa_version"] == isa.ISA_VERSION
    assert set(m["files"]) == set(SIM_SOURCES)
    assert m["ports"]["f8hw_simtop"]["cycles"] == ["out", 32]
    assert m["ports"]["f8hw_accel"]["mem_rdata"] == ["in", 40]


@pytest.mark.parametrize("args,msg", [
    (["--array", "0x4"], "rows must be in 1..64"),
    (["--array", "16"], "must look like RxC"),
    (["--array", "100x100"], "rows must be in 1..64"),
    (["--array", "4x4", "--w-depth", "1000"], "w_depth must be a power of two"),
    (["--array", "4x4", "--o-depth", "2"], "must hold at least one tile"),
    (["--array", "4x4", "--mem-words", "x"], "--mem-words must be an integer"),
])
def test_cli_errors(args, msg, tmp_path, capsys):
    from f8hw.cli import main

    assert main(["build", "-o", str(tmp_path)] + args) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1


@pytest.mark.slow
def test_build_16x16_time(tmp_path):
    """`f8hw build --array 16x16` must take < 30 s; measured as the child's CPU time so that a loaded
    test machine (pytest -n 2 next to synthesis jobs) does not make it flaky."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "f8hw.cli", "build", "--array", "16x16", "-o", str(tmp_path)],
                       capture_output=True, text=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 30, (cpu, wall)

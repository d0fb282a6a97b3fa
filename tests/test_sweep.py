"""f8hw sweep: spec parsing, a small grid on a local Ray instance, resuming, failing points, synthesis of 2x2."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from f8hw.cli import main
from f8hw.sweeps import load_spec, parse_arrays, spec_from_dict
from f8hw.sweeps.spec import SpecError

pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]


def test_arrays_and_ranges():
    assert parse_arrays(["4x4..16x16", "8x16", "4x4"]) == [(4, 4), (8, 8), (16, 16), (8, 16)]
    assert parse_arrays("2x2,3x5") == [(2, 2), (3, 5)]
    with pytest.raises(SpecError, match="power-of-two squares"):
        parse_arrays(["4x4..12x12"])
    with pytest.raises(Exception, match="RxC"):
        parse_arrays(["16"])


def test_spec_errors_name_the_key(tmp_path):
    good = dict(networks=["cnn"], arrays=["2x2"])
    assert len(spec_from_dict({**good, "depths": {"a_depth": [64, 128]}, "requant": ["shift", "dyadic"]}).points()) == 4
    for bad, msg in [({**good, "nets": 1}, "unknown key.*nets"), ({**good, "batches": [0]}, "batches"),
                     ({**good, "batches": [True]}, "batches: expected"), ({**good, "requant": ["x"]}, "requant"),
                     ({**good, "depths": {"q_depth": [2]}}, "unknown depth 'q_depth'"),
                     ({**good, "synth": {"mode": "asic"}}, "synth.mode"),
                     ({**good, "synth": {"area_budget": -1}}, "area_budget"), ({"arrays": ["2x2"]}, "required")]:
        with pytest.raises(SpecError, match=msg):
            spec_from_dict(bad)
    p = tmp_path / "s.toml"
    p.write_text("networks = [")
    with pytest.raises(SpecError, match="s.toml: not valid TOML"):
        load_spec(p)
    assert len(load_spec(REPO / "examples" / "sweep.toml").points()) == 3 * 5 * 2  # 2x2, 4x4, 8x8, 4x8, 8x4


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, _temp_dir=tempfile.mkdtemp(prefix="f8r", dir="/tmp"), include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


GRID = dict(networks=["cnn", "mobilenet"], arrays=["4x4", "8x8", "16x16"], depths={"w_depth": [2, 4096]},
            synth={"mode": "none"})


@pytest.fixture(scope="module")
def grid(ray_local, tmp_path_factory):
    import f8hw

    out = tmp_path_factory.mktemp("sweep")
    return f8hw.sweep(GRID, out), out


def test_grid_rows_equal_direct_sim(grid, capsys):
    res, out = grid
    assert res.computed == 12 and res.skipped == 0
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {r["network"] for r in rows} == {"cnn", "mobilenet"}
    bad = [r for r in rows if r["error"]]
    assert {r["w_depth"] for r in bad} == {"2"} and len(bad) == 6   # no room for weights: recorded, not fatal
    assert all("w_depth=2" in r["error"] and "layer" in r["error"] for r in bad)
    for r in [r for r in rows if not r["error"]][::2]:
        assert main(["sim", r["network"], "--engine", "isa", "--array", r["array"], "--json", "--no-race-check"]) == 0
        direct = json.loads(capsys.readouterr().out)
        assert int(r["cycles"]) == direct["cycles"] and float(r["utilization"]) == pytest.approx(direct["utilization"])
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["points"]) == 12 and data["spec"]["arrays"] == ["4x4", "8x8", "16x16"]
    assert "| cnn | 16x16 shift, batch 1, w_depth 4096 |" in (out / "summary.md").read_text()


def test_rerun_skips_finished_points(grid):
    import f8hw

    res, out = grid
    again = f8hw.sweep(GRID, out)
    assert again.computed == 0 and again.skipped == 12
    assert [r["cycles"] for r in again.rows] == [r["cycles"] for r in res.rows]


def _default_sigint():
    """In the child before exec: SIGINT back to its default, so Python installs its KeyboardInterrupt handler
    (an ignored SIGINT is inherited: some earlier test in a suite's worker process can leave it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupted_sweep_resumes(tmp_path):
    """Ctrl-C in the middle of a sweep (its own local Ray instance), then a rerun: only the missing points run."""
    spec = tmp_path / "s.toml"
    # the digits models' points take milliseconds, ResNet-20's seconds: the first results arrive quickly, and
    # the sweep is still running when the signal lands, however loaded the machine
    spec.write_text('networks = ["cnn", "mobilenet", "resnet20"]\narrays = ["4x4", "8x8", "16x16"]\n'
                    '[synth]\nmode = "none"\n')
    out = tmp_path / "out"
    # Ray's socket paths must stay under 108 bytes: a short temporary directory
    env = {**os.environ, "F8HW_RAY_TMP": tempfile.mkdtemp(prefix="f8r", dir="/tmp")}
    proc = subprocess.Popen([sys.executable, "-m", "f8hw.cli", "sweep", str(spec), "-o", str(out), "--json",
                             "--workers", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert results.is_file(), proc.stderr.read().decode()[-3000:]
    done = len(results.read_text().splitlines())
    assert 2 <= done < 9   # interrupted in the middle
    r = subprocess.run([sys.executable, "-m", "f8hw.cli", "sweep", str(spec), "-o", str(out), "--json",
                        "--workers", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(r.stdout)
    assert again["computed"] == 9 - done and again["skipped"] == done
    assert len(again["points"]) == 9 and all(p["cycles"] for p in again["points"])


@pytest.mark.slow
def test_synthesis_of_2x2_and_verify(ray_local):
    """Area of the 2x2 accelerator from yosys (not under /tmp: YoWASP cannot see it) and an RTL spot check."""
    import f8hw

    out = REPO / "build" / "test_sweep_synth"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    res = f8hw.sweep(dict(networks=["cnn", "mobilenet"], arrays=["2x2"], synth={"mode": "generic",
                                                                                  "area_budget": 1e9}),
                     out, verify=1)
    assert res.computed == 3   # two simulations, one synthesis shared by both networks
    a, b = res.rows
    assert a["area_cells"] == b["area_cells"] > 1000 and a["memory_bits"] > 0
    assert a["verified"] is True and b["verified"] is None
    assert (out / "pareto.png").stat().st_size > 1000

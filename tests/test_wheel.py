"""The wheel works outside the checkout: bundled models ship as package data, the commands run.

The wheel is built from this checkout and installed (--no-deps) into a scratch venv
whose site-packages also sees the project venv's (the dependencies, not the editable
f8hw: a path line in a .pth file does not run that directory's .pth files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp / "dist"), str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (whl,) = (tmp / "dist").glob("f8hw-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "f8hw-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(whl)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    work = tmp / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                                  f"{os.environ.get('PATH', '')}", "F8HW_CACHE": str(tmp / "cache")}
    env.pop("PYTHONPATH", None)
    return venv, work, env


def _run(wheel_venv, *args, timeout=600, shared_cache=False):
    venv, work, env = wheel_venv
    if shared_cache:
        env = {k: v for k, v in env.items() if k != "F8HW_CACHE"}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_wheel_imports_the_installed_copy(wheel_venv):
    venv, _, _ = wheel_venv
    r = _run(wheel_venv, "python", "-c", "import f8hw, f8hw.flow as fl; print(f8hw.__file__); "
                                         "print(fl.bundled_models())")
    assert r.returncode == 0, r.stderr
    where, names = r.stdout.splitlines()
    assert where.startswith(str(venv)) and not where.startswith(str(REPO))
    assert {"default", "cnn", "resnet", "mobilenet"} <= set(eval(names))


def test_wheel_sim_bundled_model(wheel_venv):
    r = _run(wheel_venv, "f8hw", "sim", "--engine", "isa", "--array", "4x4", "--batch", "2", "--json")
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert run["bit_exact"] is True and run["model"] == "default.pt" and len(run["predictions"]) == 2


def test_wheel_inspect_and_bench_quick_util(wheel_venv):
    r = _run(wheel_venv, "f8hw", "inspect", "mobilenet")
    assert r.returncode == 0 and "f8_test_accuracy" in r.stdout, r.stderr
    r = _run(wheel_venv, "f8hw", "bench", "--quick", "--only", "util", "--networks", "cnn", "--json", "-o", "b")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"] is not None


@pytest.mark.slow
def test_wheel_demo(wheel_venv):
    """The demo's Verilator build is the 16x16 default (cached by Verilog hash beside the other RTL tests)."""
    r = _run(wheel_venv, "f8hw", "demo", "-n", "2", timeout=1200, shared_cache=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "demo passed" in r.stdout

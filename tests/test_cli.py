"""The f8hw command line: help lists commands, errors are one line with exit code 3 (2: usage)."""

import subprocess
import sys
from pathlib import Path

import pytest

from f8hw.cli import COMMANDS, main

F8HW = Path(sys.executable).parent / "f8hw"


def run_cli(*args):
    cmd = [str(F8HW)] if F8HW.exists() else [sys.executable, "-c", "import sys; from f8hw.cli import main; sys.exit(main())"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert name in r.stdout
    assert "analyze" in COMMANDS and "demo" in COMMANDS


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_error_is_one_line_exit_3(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    r = run_cli("demo", "--model", str(bad))
    assert r.returncode == 3
    assert r.stderr.startswith("error: ") and str(bad) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_analyze_fl_cli(tmp_path, capsys):
    assert main(["analyze", "fl", "-o", str(tmp_path), "--samples", "2000"]) == 0
    out = capsys.readouterr().out
    assert "fitted c" in out and "paper 40" in out and "paper 70" in out
    assert (tmp_path / "fl_analysis.png").exists() and (tmp_path / "fl_analysis.csv").exists()


def test_demo_missing_model_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert main(["demo", "--model", str(missing), "-n", "3"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "no such model file" in err


@pytest.mark.parametrize("argv", [["nosuch"], ["analyze"]])
def test_usage_errors(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_demo_with_a_model_file(tmp_path, capsys):
    import numpy as np

    from f8hw.modelfile import save_model
    from f8hw.testing import random_conv_graph

    path = tmp_path / "m.pt"
    save_model(random_conv_graph(np.random.default_rng(0), in_shape=(1, 8, 8)), path)
    assert main(["demo", "--model", str(path), "-n", "4", "-o", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "golden model: m.pt" in out and "accuracy on these 4 images" in out
    flat = " ".join(out.split())
    assert "demo passed" in flat and "equal to the ISA simulator" in flat
    assert (tmp_path / "demo" / "rtl" / "f8hw_accel.v").is_file() and (tmp_path / "demo" / "sim.md").is_file()

"""CLI fuzzing: random argument combinations drawn from each command's own parser never end in a traceback.

Every outcome is an exit status of 0 (ok), 1 (a check failed), 2 (usage) or 3 (a one-line ``error: ...``).
Values are drawn from pools of good and bad values per option. Commands whose valid runs take seconds
(sim on the ISA engine, compile, inspect, build at 2x2) are run; the long ones (train, zoo, bench, demo,
sweep) are fuzzed at the parser only: every combination parses or is a usage error.
``F8HW_SOAK=N`` runs N cases per command instead of the default.
"""

from __future__ import annotations

import argparse
import os
import random

import pytest

from f8hw.cli import build_parser, main

CASES = int(os.environ.get("F8HW_SOAK", "12"))
QUICK = ("sim", "compile", "inspect", "build")   # valid runs take seconds: run with good and bad values
SLOW = ("train", "zoo", "bench", "demo", "sweep", "analyze")  # parsed only

POOLS = {
    "array": ["2x2", "1x3", "0x4", "65x65", "2X2", "x", "-1x2"],
    "engine": ["isa", "spice"],
    "batch": ["1", "2", "0", "-3", "x", "1.5"],
    "input": ["nope.npy", "nope.png", "nope.txt"],
    "mem_words": ["64", "1000", "x", "0"],
    "imem_depth": ["16", "65536", "3", "y"],
    "max_memory": ["1M", "2G", "lots"],
    "requant": ["shift", "dyadic", "other"],
    "model": ["default", "cnn", "nope.pt", "nosuch", "/", ""],
}
DEFAULT_POOL = ["1", "0", "-1", "x", "", "a.png", "4x4"]


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _value(action, rng, tmp_path) -> str:
    if action.choices:
        return rng.choice([*map(str, action.choices), "bogus"])
    pool = POOLS.get(action.dest, DEFAULT_POOL)
    if action.dest in ("output", "outdir", "report", "plot", "waves"):
        blocker = tmp_path / "a-file"              # a path below a regular file can never be created
        blocker.touch()
        pool = [str(tmp_path / "o" / "x"), str(blocker / "x.md"), str(tmp_path / "p.png"), str(tmp_path)]
    return rng.choice(pool)


def _argv(name, sub, rng, tmp_path) -> list[str]:
    argv = [name]
    for action in sub._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not action.option_strings:              # positional
            if action.nargs == "?" and rng.random() < 0.3:
                continue
            argv.append(_value(action, rng, tmp_path))
            continue
        if action.required or rng.random() < 0.35:
            if action.nargs == 0:
                argv.append(action.option_strings[0])
            else:
                argv += [action.option_strings[0], _value(action, rng, tmp_path)]
    if name == "sim":
        argv += ["--engine", "isa"]                # the RTL engines are exercised elsewhere
    if name == "build" and "--array" not in argv:
        argv += ["--array", "2x2"]
    return argv


@pytest.mark.parametrize("name", SLOW)
def test_random_arguments_parse_or_are_usage_errors(name, tmp_path, capsys):
    sub = _subparsers()[name]
    rng = random.Random(f"{name}-{os.environ.get('F8HW_SEED', '0')}")
    for _ in range(CASES * 4):
        argv = _argv(name, sub, rng, tmp_path)
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            assert e.code == 2, argv
            assert "Traceback" not in capsys.readouterr().err
            continue
        assert callable(args.func)


@pytest.mark.parametrize("name", QUICK)
def test_random_arguments_never_trace_back(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("F8HW_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    sub = _subparsers()[name]
    rng = random.Random(f"{name}-{os.environ.get('F8HW_SEED', '0')}")
    for _ in range(CASES):
        argv = _argv(name, sub, rng, tmp_path)
        try:
            code = main(argv)
        except SystemExit as e:                    # argparse: usage error
            code = e.code
        out = capsys.readouterr()
        assert code in (0, 1, 2, 3), (argv, code, out.err[-2000:])
        assert "Traceback" not in out.err, (argv, out.err[-3000:])
        if code == 3:
            lines = out.err.strip().splitlines()
            assert lines[-1].startswith("error: ") and "\n" not in lines[-1], (argv, out.err[-1000:])

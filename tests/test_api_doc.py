"""docs/api.md's walk-through runs: every ```python block, in order, in one namespace, in a scratch directory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_has_a_walk_through():
    text = "\n".join(blocks())
    for call in ("f8hw.load(", "f8hw.compile(", "f8hw.simulate(", "f8hw.build(", ".area(", 'engine="verilator"'):
        assert call in text


@pytest.mark.slow
def test_walk_through_runs(monkeypatch, capsys):
    work = DOC.parents[1] / "build" / "test_api_doc"   # not under /tmp: YoWASP's yosys cannot see /tmp
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    # the shared cache: the RTL build is the 16x16 default, cached by Verilog hash beside the other RTL tests
    ns: dict = {}
    for i, code in enumerate(blocks()):
        exec(compile(code, f"{DOC.name} block {i + 1}", "exec"), ns)
    out = capsys.readouterr().out
    assert "Run(default.pt on 16x16 (isa), batch 4" in out and "equal to the ISA simulator: True" in out
    assert (work / "out" / "rtl" / "manifest.json").is_file()

"""docs/api.md's walk-through runs: every ```python block, in order, in one namespace, in a scratch directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import python_blocks, run_blocks

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return python_blocks(DOC)


def test_doc_has_a_walk_through():
    text = "\n".join(blocks())
    for call in ("f8hw.load(", "f8hw.compile(", "f8hw.simulate(", "f8hw.build(", ".area(", 'engine="verilator"'):
        assert call in text


@pytest.mark.slow
def test_walk_through_runs(monkeypatch, capsys):
    # the shared cache: the RTL build is the 16x16 default, cached by Verilog hash beside the other RTL tests
    work = run_blocks(DOC, "test_api_doc", monkeypatch)
    out = capsys.readouterr().out
    assert "Run(default.pt on 16x16 (isa), batch 4" in out and "equal to the ISA simulator: True" in out
    assert (work / "out" / "rtl" / "manifest.json").is_file()

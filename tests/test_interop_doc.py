"""docs/interop.md's three walk-throughs run: every ```python block, in order, in one namespace, in a scratch directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import python_blocks, run_blocks

DOC = Path(__file__).resolve().parents[1] / "docs" / "interop.md"


def test_doc_covers_the_three_paths():
    text = "\n".join(python_blocks(DOC))
    for call in ("export_qonnx(", '"import"', '"sim", "brevitas.onnx"', '"export-onnx"', "InferenceSession(",
                 "f8nn.quantize(", "f8hw.export("):
        assert call in text


def test_walk_throughs_run(monkeypatch, capsys):
    pytest.importorskip("brevitas")
    pytest.importorskip("onnxruntime")
    work = run_blocks(DOC, "test_interop_doc", monkeypatch)
    out = capsys.readouterr().out
    assert "quantized tensors equal to QONNX execution" in out and "integer model accuracy" in out
    assert (work / "brevitas.pt").is_file() and (work / "plain.pt").is_file()

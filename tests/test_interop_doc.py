"""docs/interop.md's three walk-throughs run: every ```python block, in order, in one namespace, in a scratch directory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "interop.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_covers_the_three_paths():
    text = "\n".join(blocks())
    for call in ("export_qonnx(", '"import"', '"sim", "brevitas.onnx"', '"export-onnx"', "InferenceSession(",
                 "f8nn.quantize(", "f8hw.export("):
        assert call in text


def test_walk_throughs_run(monkeypatch, capsys):
    pytest.importorskip("brevitas")
    pytest.importorskip("onnxruntime")
    work = DOC.parents[1] / "build" / "test_interop_doc"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    ns: dict = {}
    for i, code in enumerate(blocks()):
        exec(compile(code, f"{DOC.name} block {i + 1}", "exec"), ns)
    out = capsys.readouterr().out
    assert "quantized tensors equal to QONNX execution" in out and "integer model accuracy" in out
    assert (work / "brevitas.pt").is_file() and (work / "plain.pt").is_file()

"""Run a markdown page's ```python blocks in order, in one namespace, in a scratch directory (docs executed by tests)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)


def run_blocks(doc: Path, name: str, monkeypatch) -> Path:
    """Execute every block of doc in build/<name> (not under /tmp: YoWASP's yosys cannot see /tmp); the folder."""
    work = doc.parents[1] / "build" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    ns: dict = {}
    for i, code in enumerate(python_blocks(doc)):
        exec(compile(code, f"{doc.name} block {i + 1}", "exec"), ns)
    return work

"""Sweep results on disk, written as points finish: one JSON line per finished task.

``results.jsonl`` in the output directory holds ``{"kind": "sim"|"synth"|"verify", "key": ..., ...}``
records, appended and flushed one at a time, so an interrupted sweep keeps every
finished point and a rerun skips them (the key covers the parameters and the commit).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["ResultStore"]


class ResultStore:
    """Append-only records keyed by (kind, key); a damaged last line (a kill mid-write) is ignored."""

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / "results.jsonl"
        self.records: dict[tuple[str, str], dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.records[(rec["kind"], rec["key"])] = rec

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self.records

    def get(self, kind: str, key: str) -> dict | None:
        return self.records.get((kind, key))

    def add(self, kind: str, key: str, data: dict) -> dict:
        """Record one finished task durably (flushed and synced before returning)."""
        rec = {"kind": kind, "key": key, **data}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[(kind, key)] = rec
        return rec

"""A listing of executed instructions with their issue cycle and stall (a debugging aid)."""

from __future__ import annotations

from f8hw import isa
from f8hw.arch import FIRST_ISSUE
from f8hw.isasim.result import SimResult

__all__ = ["format_trace"]


def format_trace(program, result: SimResult, start: int = 0, count: int | None = None) -> str:
    """A listing of executed instructions with their issue cycle and stall (debugging aid)."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        program = isa.from_bytes(bytes(program))
    stop = len(result.issue) if count is None else min(len(result.issue), start + count)
    lines = []
    for pc in range(start, stop):
        op, f = isa.decode(program[pc])
        t = int(result.issue[pc])
        earliest = FIRST_ISSUE if pc == 0 else int(result.issue[pc - 1]) + 1
        fields = " ".join(f"{k}={(hex(v) if k == 'mask' else v)}" for k, v in f.items())
        lines.append(f"{pc:7d}  t={t:<9d} stall={t - earliest:<6d} {op.name:<8s}{fields}")
    return "\n".join(lines) + ("\n" if lines else "")

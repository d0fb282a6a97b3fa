"""What a run of the ISA simulator returns, and the error that stops it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from f8hw.errors import F8Error
from f8hw.isa import ErrorCode

__all__ = ["IsaSimError", "SimResult", "op_error"]


class IsaSimError(F8Error):
    """The program stops with an error: ``code`` (an isa.ErrorCode), ``pc`` (instruction index) and, for the
    codes the hardware reports, ``cycles``: the accelerator's cycle counter when it stops (the cycle the
    error is seen + 1; None for RACE and TIMEOUT)."""

    def __init__(self, code: ErrorCode, pc: int, message: str, cycles: int | None = None):
        self.code = ErrorCode(code)
        self.pc = pc
        self.message = message
        self.cycles = cycles
        super().__init__(f"error {int(code)} ({self.code.label}) at instruction {pc}: {message}")


@dataclass
class SimResult:
    memory: np.ndarray             # final main memory (words x cols, uint8); >= the initial image's words
    cycles: int                    # END issue cycle + 1
    busy: int                      # sum of COMPUTE steps
    stall: int                     # cycles in which a decoded instruction waited to issue
    marks: dict[int, int]          # MARK slot -> issue cycle (slots written by the program)
    issue: np.ndarray              # issue cycle of every executed instruction (index = pc)
    instructions: int              # instructions executed, END included
    wall_time: float = 0.0         # seconds
    units_end: dict = field(default_factory=dict)  # load/store/mac/drain end cycles at END
    state: dict = field(default_factory=dict)      # final scratchpads: A, W, B (int32), S, O, P, regs

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.wall_time if self.wall_time > 0 else float("inf")


def op_error(code: ErrorCode, pc: int, op: str, msg: str, cycles: int | None = None) -> IsaSimError:
    """The error of instruction ``pc`` (opcode ``op``), its message led by the opcode."""
    return IsaSimError(code, pc, f"{op}: {msg}", cycles)

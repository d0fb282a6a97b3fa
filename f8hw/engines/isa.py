"""The "isa" engine: f8hw.isasim, the fast bit-exact and cycle-exact ISA simulator."""

from __future__ import annotations

import numpy as np

from f8hw import isasim
from f8hw.engines import EngineResult, prepare_memory


class IsaEngine:
    name = "isa"

    def __init__(self, check_races: bool = True, max_cycles: int | None = None, progress=None):
        self.check_races = check_races
        self.max_cycles = max_cycles
        self.progress = progress   # progress(done_instructions, total_instructions)

    def run(self, compiled, images: np.ndarray) -> EngineResult:
        mem = prepare_memory(compiled, images)
        res = isasim.run(compiled.program, mem, compiled.arch, max_cycles=self.max_cycles,
                         check_races=self.check_races, progress=self.progress)
        return EngineResult(
            engine=self.name, memory=res.memory, cycles=res.cycles, busy=res.busy, stall=res.stall,
            marks=dict(res.marks), wall_time=res.wall_time,
            extra={"instructions": res.instructions, "issue": res.issue},
        )


ENGINE = IsaEngine

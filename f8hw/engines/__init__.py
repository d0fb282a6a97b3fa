"""Simulation engines: run a compiled model on some model of the accelerator.

An engine takes the compiler's output (``f8hw.compiler.compile_model(...)`` ->
``Compiled`` with ``arch``, ``program``, ``memory``, ``write_inputs``,
``read_tensor``, ``layers``) and uint8 NCHW images, and returns an
``EngineResult``: the final main-memory image, the counters of
docs/architecture.md (cycles, busy, stall), the MARK slots, and its speed.

    engine = get_engine("isa")            # "isa" | "verilator" | "icarus"
    res = engine.run(compiled, images)

Engines are looked up by name in ENGINES (name -> module defining ``ENGINE``,
an Engine instance or class), imported only when asked for (the RTL engines
pull in cocotb).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from f8hw.errors import F8Error


__all__ = ["EngineError", "EngineResult", "Engine", "ENGINES", "engine_names", "get_engine", "prepare_memory"]


class EngineError(F8Error):
    """An engine is unknown or failed to run; the message names it."""


@dataclass
class EngineResult:
    engine: str
    memory: np.ndarray            # final main memory (words x cols, uint8)
    cycles: int
    busy: int
    stall: int
    marks: dict[int, int]         # MARK slot -> cycle
    wall_time: float              # seconds spent simulating (not compiling)
    extra: dict = field(default_factory=dict)

    @property
    def cycles_per_second(self) -> float:
        """Simulated cycles per wall-clock second."""
        return self.cycles / self.wall_time if self.wall_time > 0 else float("inf")


@runtime_checkable
class Engine(Protocol):
    name: str

    def run(self, compiled, images: np.ndarray) -> EngineResult:
        ...


ENGINES: dict[str, str] = {
    "isa": "f8hw.engines.isa",
    "verilator": "f8hw.engines.verilator",
    "icarus": "f8hw.engines.icarus",
}


def engine_names() -> list[str]:
    return list(ENGINES)


def get_engine(name: str, **options) -> Engine:
    """The engine called ``name`` (options go to its constructor); EngineError if unknown."""
    mod_name = ENGINES.get(name)
    if mod_name is None:
        raise EngineError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    obj = importlib.import_module(mod_name).ENGINE
    return obj(**options) if isinstance(obj, type) else obj


def prepare_memory(compiled, images: np.ndarray) -> np.ndarray:
    """A copy of the compiled memory image with the input images written into their slots."""
    mem = np.array(compiled.memory, dtype=np.uint8, copy=True)
    out = compiled.write_inputs(mem, np.asarray(images, dtype=np.uint8))
    return mem if out is None else np.asarray(out, dtype=np.uint8)

"""The "verilator" engine: the generated RTL on Verilator through cocotb (see f8hw.engines.rtl)."""

from __future__ import annotations

from f8hw.engines.rtl import RtlEngine


class VerilatorEngine(RtlEngine):
    def __init__(self, **options):
        super().__init__("verilator", **options)


ENGINE = VerilatorEngine

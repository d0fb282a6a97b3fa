"""The "icarus" engine: the generated RTL on Icarus Verilog through cocotb (see f8hw.engines.rtl).

Icarus is much slower than Verilator: use it for small arrays and short programs.
"""

from __future__ import annotations

from f8hw.engines.rtl import RtlEngine


class IcarusEngine(RtlEngine):
    def __init__(self, **options):
        super().__init__("icarus", **options)


ENGINE = IcarusEngine

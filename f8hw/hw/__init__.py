"""Amaranth RTL of the f8hw accelerator (docs/architecture.md is the spec).

Modules: pe (MAC processing element), array (R x C output-stationary array),
requant (shift and dyadic requantizer lanes), isadec (ISA-derived field
decoding), frontend (fetch/decode/issue/hazards/counters/errors), load (LOAD,
LOAD_A DMA), store (STORE DMA), compute (MAC sequencer + drain), top (the
accelerator), simtop (sim-only top with plain Verilog memories), build
(Verilog/manifest/area report generation).
"""

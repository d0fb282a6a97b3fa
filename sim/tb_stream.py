"""Generic cycle-by-cycle stream driver (cocotb) for the unit-level testbenches.

The stimulus file named by $F8HW_STREAM (JSON) gives, per cycle, the values of
some input ports and the output ports to sample:

    {"inputs": {"port": [v0, v1, ...], ...}, "outputs": ["port", ...],
     "cycles": N, "reset_cycles": 2, "result": "/path/out.json"}

Cycle i: inputs are set right after rising edge i (a list shorter than N holds
its last value), outputs are sampled in the ReadOnly phase of the same cycle
(so they show the registers after i edges and the combinational response to
inputs i), then the testbench waits for rising edge i+1.  Values are unsigned
integers; the pytest side packs and unpacks fields and computes expectations,
so the comparison and the mismatch report happen in pytest.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge


def _read(sig) -> int:
    v = sig.value
    try:
        return int(v.to_unsigned()) if hasattr(v, "to_unsigned") else int(v)
    except ValueError:
        return -1  # x / z


@cocotb.test()
async def stream(dut):
    with open(os.environ["F8HW_STREAM"]) as fh:
        cfg = json.load(fh)
    n = int(cfg["cycles"])
    inputs = {name: (getattr(dut, name), vals) for name, vals in cfg["inputs"].items()}
    outputs = [(name, getattr(dut, name)) for name in cfg["outputs"]]
    for sig, _ in inputs.values():
        sig.value = 0
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    await ClockCycles(dut.clk, int(cfg.get("reset_cycles", 2)))
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    last = {name: None for name in inputs}
    samples = {name: [] for name, _ in outputs}
    for i in range(n):
        for name, (sig, vals) in inputs.items():
            if i < len(vals) and vals[i] != last[name]:
                sig.value = vals[i]
                last[name] = vals[i]
        await ReadOnly()
        for name, sig in outputs:
            samples[name].append(_read(sig))
        await RisingEdge(dut.clk)
    with open(cfg["result"], "w") as fh:
        json.dump(samples, fh)

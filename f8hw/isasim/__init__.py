"""The ISA simulator: bit-exact and cycle-exact execution of an f8hw program.

Implements docs/architecture.md (functional semantics, timing, errors) with
every timing constant taken from ``f8hw.arch`` and every encoding from
``f8hw.isa``.  Each instruction is executed as a whole, vectorized with numpy
(LOAD_A is one gather, a DENSE COMPUTE one float64 matmul, which is exact:
|product| <= 2**15 and at most 2**22 steps, so every partial sum is < 2**53),
and its issue cycle is computed in closed form as the max of the lower bounds
of the issue rule.  Because issue is in order and every instruction's effect
on the scratchpads is applied in program order, the result equals the RTL's
for every program without races; races (two instructions whose accesses to a
scratchpad location or main-memory word, at least one a write, are not
strictly ordered in time the way program order says) are detected and
reported as an ``IsaSimError`` with code ``isa.ErrorCode.RACE``.

Modules: ``run`` (issue loop and decode checks), ``load`` (LOAD, LOAD_A address
generation incl. tap gather and window reuse), ``compute`` (MAC array and drain),
``store``, ``races`` (race checker), ``machine`` (state), ``result``
(SimResult, IsaSimError), ``trace`` (format_trace).

Usage::

    res = run(program, memory, arch)       # program: list[int] or bytes
    res.memory, res.cycles, res.busy, res.stall, res.marks, res.issue

Details (all in docs/architecture.md; the RTL in f8hw/hw does the same):

- Decode-time checks (code 1/2) happen before the instruction waits to issue;
  COMPUTE range checks: nlines >= 1 (nlines = 0 is code 2), a_base + nlines
  <= a_depth, the W entries unless MAX, o_dst + R <= o_depth always, s_src + R
  <= s_depth with last and USE_SKIP and not RQ_RAW, b_src < b_depth with last
  and USE_BIAS; a MARK slot >= mark_depth is code 2.  Words past the end of
  the program are 0 (opcode 0, illegal); fetching instruction imem_depth is
  code 4.
- Per-access errors (code 3, and code 2 for a LOAD_A line past a_depth) are
  reported for the instruction that makes the access, at the cycle of the
  access; meanwhile later instructions decode and issue, and the error seen
  first stops the run (a decode error wins a tie, then main memory).
  ``IsaSimError.cycles`` is the hardware's cycle counter at the stop.
- SET of a register number not in ``isa.Reg`` has no effect; registers reset
  to 0 except RQ_MULT = 1.  Flags are "value != 0"; ACC_LSHIFT / SKIP_LSHIFT
  use their low 4 bits; SHIFT is exact for every 32-bit value (clamped here,
  as in the lanes, only where that cannot change the result); a zero KH, KW or
  ncb makes LOAD_A move no word.
- The drain holder is the OR of the drain bits of every last-COMPUTE whose
  drain is in flight (busy until the latest drain ends).
- The requantizer is ``f8hw.numerics.requant_lane`` (dyadic build: RQ_MULT
  multiplies acc + bias before the residual alignment).
"""

from __future__ import annotations

from f8hw.isasim.result import IsaSimError, SimResult
from f8hw.isasim.run import run
from f8hw.isasim.trace import format_trace

__all__ = ["run", "SimResult", "IsaSimError", "format_trace"]

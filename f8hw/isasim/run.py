"""The issue loop: decode checks, the closed-form issue cycle of each instruction, and its effect."""

from __future__ import annotations

import time

import numpy as np

from f8hw import isa
from f8hw.arch import FIRST_ISSUE, LOAD_LATENCY, REQUANT_LATENCY, STORE_LATENCY, ArchConfig
from f8hw.isa import ErrorCode, LoadTarget, Mode, Reg
from f8hw.isasim.compute import compute
from f8hw.isasim.flex import check_fmt_regs
from f8hw.isasim.load import load, load_a, load_a_words
from f8hw.isasim.machine import Machine
from f8hw.isasim.result import IsaSimError, SimResult, op_error
from f8hw.isasim.store import store

__all__ = ["run"]


def run(program, memory: np.ndarray, arch: ArchConfig, max_cycles: int | None = None, *,
        check_races: bool = True, progress=None, progress_every: int = 4096) -> SimResult:
    """Execute ``program`` on ``memory`` (words x cols uint8, not modified) until END.

    Raises IsaSimError (code, pc, message, cycles) on the error conditions of the spec,
    on a race (ErrorCode.RACE, unless check_races=False) and when an instruction would
    issue after ``max_cycles`` (ErrorCode.TIMEOUT).  As in the hardware, the error seen
    first in time stops the run: a unit's per-access error is held while later
    instructions decode and issue, and an earlier error of theirs wins.  ``progress(done, total)`` is
    called every ``progress_every`` instructions.
    """
    wall0 = time.perf_counter()
    if isinstance(program, (bytes, bytearray, memoryview)):
        program = isa.from_bytes(bytes(program))
    program = list(program)
    m = Machine(memory, arch, check_races)
    R, C = m.R, m.C
    regs = m.regs
    races = m.races
    lat = m.lat
    n_prog = len(program)
    imem = arch.imem_depth

    load_end = store_end = mac_end = drain_end = 0
    capture = None                       # capture cycle of the latest last-COMPUTE
    load_mask = store_mask = mac_mask = drain_mask = 0
    stall = busy = 0
    marks: dict[int, int] = {}
    issue: list[int] = []
    t_prev = None
    decoded: dict[int, tuple] = {}
    pc = 0
    pending: IsaSimError | None = None   # a unit's error, seen at cycle pending.cycles - 1

    while True:
        earliest = FIRST_ISSUE if t_prev is None else t_prev + 1
        if pending is not None and earliest >= pending.cycles:
            raise pending                 # the run stopped before this instruction was decoded
        dec = earliest + 1                # the cycle counter when a decode error stops the run
        if pc >= imem:
            raise IsaSimError(ErrorCode.FETCH, pc, f"instruction fetch at {pc} past imem_depth {imem} (no END)", dec)
        word = program[pc] if pc < n_prog else 0
        d = decoded.get(word)
        if d is None:
            try:
                op, f = isa.decode(word)
            except isa.IsaError:
                code = word & ((1 << isa.OPCODE_BITS) - 1)
                raise IsaSimError(ErrorCode.OPCODE, pc, f"illegal opcode {code}"
                                  + (" (past the end of the program, no END)" if pc >= n_prog else ""), dec) from None
            d = (op.name, f)
            if len(decoded) < 65536:
                decoded[word] = d
        name, f = d
        t = earliest

        # ------------------------------------------------ decode checks + issue time
        if name == "SET" or name == "MARK":
            if name == "MARK" and f["slot"] >= arch.mark_depth:
                raise op_error(ErrorCode.SPAD, pc, "MARK", f"slot {f['slot']} >= mark_depth {arch.mark_depth}", dec)
        elif name == "LOAD" or name == "LOAD_A":
            mask = f["mask"]
            if name == "LOAD":
                tgt = f["target"]
                if tgt not in (0, 1, 2):
                    raise op_error(ErrorCode.OPCODE, pc, "LOAD", f"illegal target {tgt}", dec)
                depth = (arch.w_depth, 4 * arch.b_depth, arch.s_depth)[tgt]
                if f["dst"] + f["count"] > depth:
                    raise op_error(ErrorCode.SPAD, pc, "LOAD", f"target {LoadTarget(tgt).name} dst {f['dst']} + count "
                                   f"{f['count']} > {depth} ({'4 x b_depth words' if tgt == 1 else 'depth'})", dec)
                words = f["count"]
            else:
                if not 1 <= f["npix"] <= R:
                    raise op_error(ErrorCode.SPAD, pc, "LOAD_A", f"npix {f['npix']} not in 1..{R}", dec)
                words = load_a_words(regs, f, C)
            t = _after_holders(max(t, load_end), mask, (store_mask, store_end), (mac_mask, mac_end),
                               (drain_mask, drain_end))
            load_end = t + words + LOAD_LATENCY
            load_mask = mask
        elif name == "COMPUTE":
            mask = f["mask"]
            mode = f["mode"]
            if mode not in (0, 1, 2):
                raise op_error(ErrorCode.OPCODE, pc, "COMPUTE", f"illegal mode {mode}", dec)
            nl, last = f["nlines"], f["last"]
            steps = nl * C if mode == Mode.DENSE else nl
            raw = regs[Reg.RQ_RAW] != 0
            if nl == 0:
                raise op_error(ErrorCode.SPAD, pc, "COMPUTE", "nlines 0 (must be >= 1)", dec)
            if f["a_base"] + nl > arch.a_depth:
                raise op_error(ErrorCode.SPAD, pc, "COMPUTE",
                               f"a_base {f['a_base']} + nlines {nl} > a_depth {arch.a_depth}", dec)
            if mode != Mode.MAX and f["w_base"] + steps > arch.w_depth:
                raise op_error(ErrorCode.SPAD, pc, "COMPUTE",
                               f"w_base {f['w_base']} + {steps} steps > w_depth {arch.w_depth}", dec)
            if f["o_dst"] + R > arch.o_depth:
                raise op_error(ErrorCode.SPAD, pc, "COMPUTE", f"o_dst {f['o_dst']} + rows {R} > o_depth {arch.o_depth}", dec)
            if last and not raw and regs[Reg.USE_SKIP] != 0 and f["s_src"] + R > arch.s_depth:
                raise op_error(ErrorCode.SPAD, pc, "COMPUTE", f"s_src {f['s_src']} + rows {R} > s_depth {arch.s_depth}", dec)
            nb = 2 if arch.flexible and regs[Reg.BIAS64] != 0 else 1
            if last and regs[Reg.USE_BIAS] != 0 and f["b_src"] + nb > arch.b_depth:
                raise op_error(ErrorCode.SPAD, pc, "COMPUTE",
                               f"b_src {f['b_src']}{' + 1 (BIAS64)' if nb == 2 else ''} >= b_depth {arch.b_depth}", dec)
            if arch.flexible:
                check_fmt_regs(m, pc, mode, last, dec)
            t = _after_holders(max(t, mac_end), mask, (load_mask, load_end), (store_mask, store_end),
                               (drain_mask, drain_end))
            if last and capture is not None:
                t = max(t, capture + R - steps - lat)
            mac_end = t + steps
            mac_mask = mask & isa.MAC_MASK
            busy += steps
            if last:
                # the drain holder covers every drain in flight: bits of a drain that has not
                # ended stay set (the new drain ends last: drain_end only grows)
                drain_mask = (drain_mask if drain_end > t else 0) | (mask & isa.DRAIN_MASK)
                capture = t + steps + lat
                drain_end = capture + R + REQUANT_LATENCY
        elif name == "STORE":
            mask = f["mask"]
            if f["src"] + f["count"] > arch.o_depth:
                raise op_error(ErrorCode.SPAD, pc, "STORE",
                               f"src {f['src']} + count {f['count']} > o_depth {arch.o_depth}", dec)
            words = f["count"] * isa.store_planes(f, arch.flexible)
            t = _after_holders(max(t, store_end), mask, (load_mask, load_end), (mac_mask, mac_end),
                               (drain_mask, drain_end))
            store_end = t + words + STORE_LATENCY
            store_mask = mask
        elif name == "END":
            t = max(t, load_end, store_end, mac_end, drain_end)
        else:  # pragma: no cover - isa.OPS and this simulator disagree
            raise op_error(ErrorCode.OPCODE, pc, name, "opcode not implemented by the ISA simulator")

        if pending is not None and t >= pending.cycles - 1:
            raise pending                 # the run stopped before (or as) this instruction issued
        if max_cycles is not None and t >= max_cycles:
            raise IsaSimError(ErrorCode.TIMEOUT, pc, f"{name} would issue at cycle {t} >= max_cycles {max_cycles}")
        stall += t - earliest
        t_prev = t
        issue.append(t)
        if races is not None:
            races.prune(t)

        # ------------------------------------------------ effect
        if name == "SET":
            if f["reg"] in m.valid_regs:
                regs[f["reg"]] = f["value"]
        elif name == "MARK":
            marks[f["slot"]] = t
        elif name == "LOAD" or name == "LOAD_A" or name == "STORE":
            try:
                (load if name == "LOAD" else load_a if name == "LOAD_A" else store)(m, pc, f, t)
            except IsaSimError as e:
                if e.cycles is None:      # a race: the simulator's own verdict, reported at once
                    raise
                pending = _first_error(pending, e)
        elif name == "COMPUTE":
            compute(m, pc, f, t, steps)
        else:  # END
            break
        pc += 1
        if progress is not None and pc % progress_every == 0:
            progress(pc, n_prog)

    if progress is not None:
        progress(pc + 1, n_prog)
    return SimResult(
        memory=m.mem, cycles=t + 1, busy=busy, stall=stall, marks=marks,
        issue=np.asarray(issue, dtype=np.int64), instructions=pc + 1,
        wall_time=time.perf_counter() - wall0,
        units_end=dict(load=load_end, store=store_end, mac=mac_end, drain=drain_end),
        state=dict(A=m.A, W=m.W, B=m.B8.view("<i4").reshape(arch.b_depth, C), S=m.S,
                   O=m.O if arch.flexible else m.O.astype(np.int32), P=m.P,
                   regs=dict(regs)),
    )


def _first_error(a: IsaSimError | None, b: IsaSimError) -> IsaSimError:
    """The unit error the hardware reports: the one seen first; in the same cycle the main-memory error
    (the error code is the OR of the load unit's and the store unit's, and a STORE's is MEM)."""
    if a is None or b.cycles < a.cycles:
        return b
    if b.cycles == a.cycles and b.code == ErrorCode.MEM:
        return b
    return a


def _after_holders(t: int, mask: int, *holders: tuple[int, int]) -> int:
    """The first cycle >= t at which no holder (mask, end) of another unit that shares a bit with mask is busy."""
    for held, end in holders:
        if mask & held and end > t:
            t = end
    return t

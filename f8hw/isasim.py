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
reported as an ``IsaSimError`` with code ``ErrorCode.RACE``.

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
  raised at the instruction that makes the access.
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

import time
from dataclasses import dataclass, field

import numpy as np

from f8hw import isa, numerics
from f8hw.arch import (
    FIRST_ISSUE,
    LOAD_LATENCY,
    REQUANT_LATENCY,
    STORE_LATENCY,
    ArchConfig,
    array_latency,
)
from f8hw.errors import F8Error

Reg = isa.Reg
Mode = isa.Mode
LoadTarget = isa.LoadTarget
ErrorCode = isa.ErrorCode

_M32 = 0xFFFFFFFF


class IsaSimError(F8Error):
    """The program stops with an error: ``code`` (an isa.ErrorCode), ``pc`` (instruction index)."""

    def __init__(self, code: ErrorCode, pc: int, message: str):
        self.code = ErrorCode(code)
        self.pc = pc
        self.message = message
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


# ------------------------------------------------------------------ races


class _Access:
    """One instruction's access to one resource: banks [b0, b1), lines [l0, l1).

    Bank b is accessed during cycles [s0 + b*ds, e0 + b*de] (inclusive); for
    main memory ``addrs``/``times`` give the exact word addresses and cycles.
    """

    __slots__ = ("pc", "what", "write", "b0", "b1", "l0", "l1", "s0", "ds", "e0", "de", "addrs", "times", "last_end")

    def __init__(self, pc, what, write, b0, b1, l0, l1, s0, ds, e0, de, addrs=None, times=None):
        self.pc, self.what, self.write = pc, what, write
        self.b0, self.b1, self.l0, self.l1 = b0, b1, l0, l1
        self.s0, self.ds, self.e0, self.de = s0, ds, e0, de
        self.addrs, self.times = addrs, times
        self.last_end = e0 + de * (b1 - 1)


def _first_per_addr(addrs, times, latest: bool):
    """Unique addresses and their first (or latest) access cycle."""
    order = np.lexsort((times, addrs))
    a, t = addrs[order], times[order]
    if latest:
        keep = np.ones(len(a), bool)
        keep[:-1] = a[1:] != a[:-1]
    else:
        keep = np.ones(len(a), bool)
        keep[1:] = a[1:] != a[:-1]
    return a[keep], t[keep]


class _RaceChecker:
    def __init__(self):
        self.live: dict[str, list[_Access]] = {}

    def prune(self, now: int) -> None:
        """Forget accesses that ended before any future access can start (now + 1)."""
        for k, lst in self.live.items():
            if lst and any(a.last_end < now + 1 for a in lst):
                self.live[k] = [a for a in lst if a.last_end >= now + 1]

    def add(self, acc: _Access) -> None:
        lst = self.live.setdefault(acc.what, [])
        for old in lst:
            if old.pc == acc.pc or not (old.write or acc.write):
                continue
            if old.l1 <= acc.l0 or acc.l1 <= old.l0:
                continue
            b0, b1 = max(old.b0, acc.b0), min(old.b1, acc.b1)
            if b0 >= b1:
                continue
            if acc.addrs is not None:
                self._check_mem(old, acc)
                continue
            b = np.arange(b0, b1)
            # the later instruction's access must start after the earlier one's has ended
            bad = acc.s0 + b * acc.ds <= old.e0 + b * old.de
            if bad.any():
                bank = int(b[bad.argmax()])
                lo, hi = max(old.l0, acc.l0), min(old.l1, acc.l1) - 1
                where = f"{acc.what} lines {lo}..{hi}" if acc.what != "A" else f"A bank {bank} lines {lo}..{hi}"
                raise IsaSimError(
                    ErrorCode.RACE, acc.pc,
                    f"race on {where}: instruction {old.pc} {'writes' if old.write else 'reads'} it until cycle "
                    f"{old.e0 + bank * old.de}, instruction {acc.pc} {'writes' if acc.write else 'reads'} it from cycle "
                    f"{acc.s0 + bank * acc.ds} (the masks do not order them)")
        lst.append(acc)

    @staticmethod
    def _check_mem(old: _Access, acc: _Access) -> None:
        if acc.s0 > old.e0:
            return
        oa, ot = _first_per_addr(old.addrs, old.times, latest=True)
        na, nt = _first_per_addr(acc.addrs, acc.times, latest=False)
        common, io, inew = np.intersect1d(oa, na, assume_unique=True, return_indices=True)
        if len(common) == 0:
            return
        bad = nt[inew] <= ot[io]
        if bad.any():
            k = int(bad.argmax())
            raise IsaSimError(
                ErrorCode.RACE, acc.pc,
                f"race on main-memory word {int(common[k])}: instruction {old.pc} "
                f"{'writes' if old.write else 'reads'} it at cycle {int(ot[io][k])}, instruction {acc.pc} "
                f"{'writes' if acc.write else 'reads'} it at cycle {int(nt[inew][k])} (the masks do not order them)")


# ------------------------------------------------------------------ simulator


class _Machine:
    def __init__(self, memory: np.ndarray, arch: ArchConfig, check_races: bool):
        if not isinstance(arch, ArchConfig):
            raise TypeError("arch must be an ArchConfig")
        R, C = arch.rows, arch.cols
        mem = np.asarray(memory)
        if mem.ndim != 2 or mem.shape[1] != C:
            raise F8Error(f"memory image must have shape (words, {C}), got {mem.shape}")
        if mem.dtype != np.uint8:
            raise F8Error(f"memory image must be uint8, got {mem.dtype}")
        if len(mem) > arch.mem_words:
            raise F8Error(f"memory image has {len(mem)} words, the accelerator's main memory {arch.mem_words}")
        self.arch = arch
        self.R, self.C = R, C
        self.mem = np.array(mem, dtype=np.uint8, order="C", copy=True)
        self.A = np.zeros((R, arch.a_depth, C), np.uint8)
        self.W = np.zeros((arch.w_depth, C), np.uint8)
        self.B8 = np.zeros((arch.b_depth, C, 4), np.uint8)      # little-endian bytes of the int32 lanes
        self.S = np.zeros((arch.s_depth, C), np.uint8)
        self.O = np.zeros((arch.o_depth, C), np.int32)
        self.P = np.zeros((R, C), np.int64)                       # accumulators (int32 values)
        self.regs = {int(r): 0 for r in Reg}
        self.regs[int(Reg.RQ_MULT)] = 1
        self.valid_regs = frozenset(int(r) for r in Reg)
        self.lat = array_latency(R, C)
        self.races = _RaceChecker() if check_races else None
        self._la_cache: dict = {}

    # ---- main memory
    def _ensure(self, hi: int) -> None:
        """Grow the memory array so that word hi-1 exists (zeros: the rest of main memory)."""
        n = len(self.mem)
        if hi > n:
            new = min(self.arch.mem_words, max(hi, 2 * n, 1024))
            grown = np.zeros((new, self.C), np.uint8)
            grown[:n] = self.mem
            self.mem = grown

    def _mem_check(self, addrs: np.ndarray, pc: int, what: str, valid=None) -> None:
        if addrs.size == 0:
            return
        bad = addrs >= self.arch.mem_words
        if valid is not None:
            bad &= valid
        if bad.any():
            k = int(np.flatnonzero(bad.reshape(-1))[0])
            raise IsaSimError(ErrorCode.MEM, pc, f"{what}: access {k} at main-memory word {int(addrs.reshape(-1)[k])} "
                                           f">= mem_words {self.arch.mem_words}")
        top = int(addrs.max() if valid is None else (addrs[valid].max() if valid.any() else -1)) + 1
        self._ensure(top)

    # ---- LOAD_A address grid (cached per register setting)
    def _la_grid(self, KH, KW, ncb, step_kh, step_kw):
        key = (KH, KW, ncb, step_kh, step_kw)
        g = self._la_cache.get(key)
        if g is None:
            kh = np.repeat(np.arange(KH, dtype=np.int64), KW * ncb)
            kw = np.tile(np.repeat(np.arange(KW, dtype=np.int64), ncb), KH)
            cb = np.tile(np.arange(ncb, dtype=np.int64), KH * KW)
            off = kh * step_kh + kw * step_kw + cb
            g = (kh, kw, off)
            if len(self._la_cache) > 256:
                self._la_cache.clear()
            self._la_cache[key] = g
        return g


def _err(code, pc, op, msg):
    return IsaSimError(code, pc, f"{op}: {msg}")


def run(program, memory: np.ndarray, arch: ArchConfig, max_cycles: int | None = None, *,
        check_races: bool = True, progress=None, progress_every: int = 4096) -> SimResult:
    """Execute ``program`` on ``memory`` (words x cols uint8, not modified) until END.

    Raises IsaSimError (code, pc, message) on the error conditions of the spec,
    on a race (ErrorCode.RACE, unless check_races=False) and when an instruction would
    issue after ``max_cycles`` (ErrorCode.TIMEOUT).  ``progress(done, total)`` is
    called every ``progress_every`` instructions.
    """
    wall0 = time.perf_counter()
    if isinstance(program, (bytes, bytearray, memoryview)):
        program = isa.from_bytes(bytes(program))
    program = list(program)
    m = _Machine(memory, arch, check_races)
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

    while True:
        if pc >= imem:
            raise IsaSimError(ErrorCode.FETCH, pc, f"instruction fetch at {pc} past imem_depth {imem} (no END)")
        word = program[pc] if pc < n_prog else 0
        d = decoded.get(word)
        if d is None:
            try:
                op, f = isa.decode(word)
            except isa.IsaError:
                code = word & ((1 << isa.OPCODE_BITS) - 1)
                raise IsaSimError(ErrorCode.OPCODE, pc, f"illegal opcode {code}"
                                  + (" (past the end of the program, no END)" if pc >= n_prog else "")) from None
            d = (op.name, f)
            if len(decoded) < 65536:
                decoded[word] = d
        name, f = d
        earliest = FIRST_ISSUE if t_prev is None else t_prev + 1
        t = earliest

        # ------------------------------------------------ decode checks + issue time
        if name == "SET" or name == "MARK":
            if name == "MARK" and f["slot"] >= arch.mark_depth:
                raise _err(ErrorCode.SPAD, pc, "MARK", f"slot {f['slot']} >= mark_depth {arch.mark_depth}")
        elif name == "LOAD" or name == "LOAD_A":
            mask = f["mask"]
            if name == "LOAD":
                tgt = f["target"]
                if tgt not in (0, 1, 2):
                    raise _err(ErrorCode.OPCODE, pc, "LOAD", f"illegal target {tgt}")
                depth = (arch.w_depth, 4 * arch.b_depth, arch.s_depth)[tgt]
                if f["dst"] + f["count"] > depth:
                    raise _err(ErrorCode.SPAD, pc, "LOAD", f"target {LoadTarget(tgt).name} dst {f['dst']} + count "
                               f"{f['count']} > {depth} ({'4 x b_depth words' if tgt == 1 else 'depth'})")
                words = f["count"]
            else:
                if not 1 <= f["npix"] <= R:
                    raise _err(ErrorCode.SPAD, pc, "LOAD_A", f"npix {f['npix']} not in 1..{R}")
                KH = _eff16(regs[Reg.KH])
                KW = _eff16(regs[Reg.KW])
                sw = _diag(regs, KW, C)
                if sw:
                    words = KH * f["ncb"] * (sw * (f["npix"] - 1) + KW) if KW else 0
                else:
                    words = f["npix"] * KH * KW * f["ncb"]
            t = max(t, load_end)
            if mask & store_mask and store_end > t:
                t = max(t, store_end)
            if mask & mac_mask and mac_end > t:
                t = max(t, mac_end)
            if mask & drain_mask and drain_end > t:
                t = max(t, drain_end)
            load_end = t + words + LOAD_LATENCY
            load_mask = mask
        elif name == "COMPUTE":
            mask = f["mask"]
            mode = f["mode"]
            if mode not in (0, 1, 2):
                raise _err(ErrorCode.OPCODE, pc, "COMPUTE", f"illegal mode {mode}")
            nl, last = f["nlines"], f["last"]
            steps = nl * C if mode == Mode.DENSE else nl
            raw = regs[Reg.RQ_RAW] != 0
            if nl == 0:
                raise _err(ErrorCode.SPAD, pc, "COMPUTE", "nlines 0 (must be >= 1)")
            if f["a_base"] + nl > arch.a_depth:
                raise _err(ErrorCode.SPAD, pc, "COMPUTE", f"a_base {f['a_base']} + nlines {nl} > a_depth {arch.a_depth}")
            if mode != Mode.MAX and f["w_base"] + steps > arch.w_depth:
                raise _err(ErrorCode.SPAD, pc, "COMPUTE", f"w_base {f['w_base']} + {steps} steps > w_depth {arch.w_depth}")
            if f["o_dst"] + R > arch.o_depth:
                raise _err(ErrorCode.SPAD, pc, "COMPUTE", f"o_dst {f['o_dst']} + rows {R} > o_depth {arch.o_depth}")
            if last and not raw and regs[Reg.USE_SKIP] != 0 and f["s_src"] + R > arch.s_depth:
                raise _err(ErrorCode.SPAD, pc, "COMPUTE", f"s_src {f['s_src']} + rows {R} > s_depth {arch.s_depth}")
            if last and regs[Reg.USE_BIAS] != 0 and f["b_src"] >= arch.b_depth:
                raise _err(ErrorCode.SPAD, pc, "COMPUTE", f"b_src {f['b_src']} >= b_depth {arch.b_depth}")
            t = max(t, mac_end)
            if mask & load_mask and load_end > t:
                t = max(t, load_end)
            if mask & store_mask and store_end > t:
                t = max(t, store_end)
            if mask & drain_mask and drain_end > t:
                t = max(t, drain_end)
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
                raise _err(ErrorCode.SPAD, pc, "STORE", f"src {f['src']} + count {f['count']} > o_depth {arch.o_depth}")
            words = f["count"] * (4 if f["wide"] else 1)
            t = max(t, store_end)
            if mask & load_mask and load_end > t:
                t = max(t, load_end)
            if mask & mac_mask and mac_end > t:
                t = max(t, mac_end)
            if mask & drain_mask and drain_end > t:
                t = max(t, drain_end)
            store_end = t + words + STORE_LATENCY
            store_mask = mask
        elif name == "END":
            t = max(t, load_end, store_end, mac_end, drain_end)
        else:  # pragma: no cover - isa.OPS and this simulator disagree
            raise _err(ErrorCode.OPCODE, pc, name, "opcode not implemented by the ISA simulator")

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
        elif name == "LOAD":
            _load(m, pc, f, t)
        elif name == "LOAD_A":
            _load_a(m, pc, f, t)
        elif name == "COMPUTE":
            _compute(m, pc, f, t, steps)
        elif name == "STORE":
            _store(m, pc, f, t)
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
        state=dict(A=m.A, W=m.W, B=m.B8.view("<i4").reshape(arch.b_depth, C), S=m.S, O=m.O, P=m.P,
                   regs=dict(regs)),
    )


def _gather(v: int, C: int) -> tuple[int, int]:
    """A_GATHER register -> (G, P): G bytes kept per word, P words per A line (off: (C, 1))."""
    return (v, C // v) if 1 <= v <= C else (C, 1)


def _diag(regs, KW: int, C: int) -> int:
    """LOAD_A window reuse: STRIDE_W if A_DIAG is on and applies (gather off, 1 <= STRIDE_W <= KW), else 0."""
    if regs[Reg.A_DIAG] == 0 or 1 <= regs[Reg.A_GATHER] < C:
        return 0
    sw = regs[Reg.STRIDE_W]
    return sw if 1 <= sw <= KW else 0


def _eff16(v: int) -> int:
    """Kernel extent as the LOAD_A counters see it (16-bit 'last' counter; 0 = empty)."""
    return 0 if v == 0 else ((v - 1) & 0xFFFF) + 1


# ------------------------------------------------------------------ instruction effects


def _load(m: _Machine, pc: int, f: dict, t: int) -> None:
    n = f["count"]
    if n == 0:
        return
    addrs = (f["addr"] + np.arange(n, dtype=np.int64) * f["stride"]) & _M32
    m._mem_check(addrs, pc, "LOAD")
    rows = m.mem[addrs]
    dst, tgt = f["dst"], f["target"]
    if tgt == LoadTarget.W:
        m.W[dst:dst + n] = rows
        what, l0, l1 = "W", dst, dst + n
    elif tgt == LoadTarget.S:
        m.S[dst:dst + n] = rows
        what, l0, l1 = "S", dst, dst + n
    else:
        pos = dst + np.arange(n)
        m.B8[pos // 4, :, pos % 4] = rows
        what, l0, l1 = "B", dst // 4, (dst + n - 1) // 4 + 1
    if m.races is not None:
        # word i: memory read at t+1+i, scratchpad write at t+2+i
        m.races.add(_Access(pc, "mem", False, 0, 1, int(addrs.min()), int(addrs.max()) + 1, t + 1, 0, t + n, 0,
                            addrs, t + 1 + np.arange(n, dtype=np.int64)))
        m.races.add(_Access(pc, what, True, 0, 1, l0, l1, t + 2, 0, t + n + 1, 0))


def _load_a_first_error(pc: int, i_mem: int | None, i_line: int | None, mem_msg, line_msg) -> None:
    """Raise LOAD_A's first error in access order: word i's memory read fails at t+1+i, a write of
    word i past a_depth at t+2+i, so the memory error wins a tie (i_mem <= i_line + 1)."""
    if i_mem is not None and (i_line is None or i_mem <= i_line + 1):
        raise _err(ErrorCode.MEM, pc, "LOAD_A", mem_msg())
    if i_line is not None:
        raise _err(ErrorCode.SPAD, pc, "LOAD_A", line_msg())


def _load_a(m: _Machine, pc: int, f: dict, t: int) -> None:
    regs = m.regs
    arch = m.arch
    KH, KW, ncb = _eff16(regs[Reg.KH]), _eff16(regs[Reg.KW]), f["ncb"]
    L = KH * KW * ncb
    if L == 0:
        return
    npix, dst = f["npix"], f["dst"]
    sw = _diag(regs, KW, m.C)
    if sw:
        _load_a_diag(m, pc, f, t, KH, KW, ncb, sw)
        return
    G, P = _gather(regs[Reg.A_GATHER], m.C)
    NL = -(-L // P)                         # A lines per pixel
    in_h, in_w, out_w = regs[Reg.IN_H], regs[Reg.IN_W], regs[Reg.OUT_W]
    # pixel walk (scalar; npix <= rows)
    ih, iw, ow, pa = f["ih0"], f["iw0"], f["ow0"], f["addr"]
    ihs, iws, pas = [], [], []
    out_w_u = out_w & _M32
    for _ in range(npix):
        ihs.append(ih)
        iws.append(iw)
        pas.append(pa)
        ow = (ow + 1) & _M32
        if ow == out_w_u:
            ow, ih, iw, pa = 0, ih + regs[Reg.STRIDE_H], -regs[Reg.PAD_W], pa + regs[Reg.STEP_WRAP]
        else:
            iw, pa = iw + regs[Reg.STRIDE_W], pa + regs[Reg.STEP_OW]
    kh, kw, off = m._la_grid(KH, KW, ncb, regs[Reg.STEP_KH], regs[Reg.STEP_KW])
    ih_a = np.asarray(ihs, dtype=np.int64)[:, None] + kh[None, :]
    iw_a = np.asarray(iws, dtype=np.int64)[:, None] + kw[None, :]
    valid = (ih_a >= 0) & (ih_a < in_h) & (iw_a >= 0) & (iw_a < in_w)        # (npix, L)
    addrs = (np.asarray(pas, dtype=np.int64)[:, None] + off[None, :]) & _M32  # (npix, L)
    all_valid = bool(valid.all())
    # errors in access order (pixel, kh, kw, cb): a memory error at access i is seen at t+1+i, a line
    # past a_depth at access i at t+2+i (data phase); the earlier one stops the run (memory on a tie)
    i_mem = None
    bad_mem = addrs >= arch.mem_words
    if not all_valid:
        bad_mem &= valid
    if bad_mem.any():
        i_mem = int(np.flatnonzero(bad_mem.reshape(-1))[0])
    i_line = None
    if dst + NL > arch.a_depth:
        i_line = max(0, arch.a_depth - dst) * P   # first word whose line is past a_depth
    _load_a_first_error(
        pc, i_mem, i_line,
        lambda: f"access {i_mem} (pixel {i_mem // L}) reads main-memory word "
                f"{int(addrs.reshape(-1)[i_mem])} >= mem_words {arch.mem_words}",
        lambda: f"dst {dst} + {NL} lines (KH*KW*ncb = {KH}*{KW}*{ncb} words, {P} per line) > a_depth {arch.a_depth}")
    if all_valid:
        m._ensure(int(addrs.max()) + 1)
        data = m.mem[addrs]                                                   # (npix, L, C)
    elif valid.any():
        m._ensure(int(addrs[valid].max()) + 1)
        data = m.mem[np.where(valid, addrs, int(addrs[valid][0]))]
        data[~valid] = regs[Reg.PAD_VALUE] & 0xFF
    else:
        data = np.full((npix, L, m.C), regs[Reg.PAD_VALUE] & 0xFF, np.uint8)
    if P > 1 or G < m.C:
        # tap gather: bytes [0, G) of word i -> line i // P, bytes (i % P) * G ..; the rest of a line is 0
        g = np.zeros((npix, NL * P, G), np.uint8)
        g[:, :L] = data[:, :, :G]
        data = np.zeros((npix, NL, m.C), np.uint8)
        data[:, :, :P * G] = g.reshape(npix, NL, P * G)
    m.A[:npix, dst:dst + NL] = data
    if m.races is not None:
        if valid.any():
            seq = t + 1 + np.arange(npix * L, dtype=np.int64).reshape(npix, L)
            ra, rt = (addrs.reshape(-1), seq.reshape(-1)) if all_valid else (addrs[valid], seq[valid])
            m.races.add(_Access(pc, "mem", False, 0, 1, int(ra.min()), int(ra.max()) + 1, int(rt.min()), 0,
                                int(rt.max()), 0, ra, rt))
        # bank r (pixel r) is written at t+2+r*L .. t+1+(r+1)*L
        # (tap gather: a line is written at its last word, inside the same window)
        m.races.add(_Access(pc, "A", True, 0, npix, dst, dst + NL, t + 2, L, t + 1 + L, L))


def _load_a_diag(m: _Machine, pc: int, f: dict, t: int, KH: int, KW: int, ncb: int, sw: int) -> None:
    """LOAD_A with window reuse (A_DIAG): words (kh, j, cb), j in 0..J-1, J = sw*(npix-1) + KW, are read
    once each (word i at t+1+i) and written at t+2+i to every bank r < npix with 0 <= j - sw*r < KW,
    line dst + (kh*KW + j - sw*r)*ncb + cb."""
    regs, arch, C = m.regs, m.arch, m.C
    npix, dst = f["npix"], f["dst"]
    J = sw * (npix - 1) + KW
    n = KH * J * ncb
    kh = np.repeat(np.arange(KH, dtype=np.int64), J * ncb)
    j = np.tile(np.repeat(np.arange(J, dtype=np.int64), ncb), KH)
    cb = np.tile(np.arange(ncb, dtype=np.int64), KH * J)
    ih = f["ih0"] + kh
    iw = f["iw0"] + j
    valid = (ih >= 0) & (ih < regs[Reg.IN_H]) & (iw >= 0) & (iw < regs[Reg.IN_W])
    addrs = (f["addr"] + kh * regs[Reg.STEP_KH] + j * regs[Reg.STEP_KW] + cb) & _M32
    # bank r of word i: relative column k = j - sw*r in [0, KW) -> line dst + (kh*KW + k)*ncb + cb
    r = np.arange(npix, dtype=np.int64)
    k = j[:, None] - sw * r[None, :]                                          # (n, npix)
    hit = (k >= 0) & (k < KW)
    lines = dst + (kh[:, None] * KW + k) * ncb + cb[:, None]
    # errors in access order: memory at t+1+i, a line past a_depth at t+2+i (memory on a tie)
    bad_mem = valid & (addrs >= arch.mem_words)
    i_mem = int(np.flatnonzero(bad_mem)[0]) if bad_mem.any() else None
    bad_line = (hit & (lines >= arch.a_depth)).any(axis=1)
    i_line = int(np.flatnonzero(bad_line)[0]) if bad_line.any() else None
    _load_a_first_error(
        pc, i_mem, i_line,
        lambda: f"access {i_mem} (A_DIAG) reads main-memory word {int(addrs[i_mem])} >= mem_words {arch.mem_words}",
        lambda: f"A_DIAG word {i_line} writes a line past a_depth {arch.a_depth} "
                f"(dst {dst} + KH*KW*ncb = {KH}*{KW}*{ncb} lines)")
    data = np.full((n, C), regs[Reg.PAD_VALUE] & 0xFF, np.uint8)
    if valid.any():
        m._ensure(int(addrs[valid].max()) + 1)
        data[valid] = m.mem[addrs[valid]]
    wi, wr = np.nonzero(hit)
    m.A[wr, lines[wi, wr]] = data[wi]
    if m.races is not None:
        if valid.any():
            seq = t + 1 + np.arange(n, dtype=np.int64)
            ra, rt = addrs[valid], seq[valid]
            m.races.add(_Access(pc, "mem", False, 0, 1, int(ra.min()), int(ra.max()) + 1, int(rt.min()), 0,
                                int(rt.max()), 0, ra, rt))
        # bank r is written from word (0, sw*r, 0) to word (KH-1, sw*r + KW-1, ncb-1):
        # t+2+r*sw*ncb .. t+1+((KH-1)*J + KW)*ncb + r*sw*ncb
        d = sw * ncb
        m.races.add(_Access(pc, "A", True, 0, npix, dst, dst + KH * KW * ncb, t + 2, d,
                            t + 1 + ((KH - 1) * J + KW) * ncb, d))


def _compute(m: _Machine, pc: int, f: dict, t: int, steps: int) -> None:
    regs = m.regs
    R, C = m.R, m.C
    mode, nl = f["mode"], f["nlines"]
    a_base, w_base = f["a_base"], f["w_base"]
    a = m.A[:, a_base:a_base + nl, :]
    if regs[Reg.A_SIGNED] != 0:
        a = a.view(np.int8)
    if mode == Mode.DENSE:
        w = m.W[w_base:w_base + steps].view(np.int8)
        # exact: |a*w| <= 2**15, steps <= 2**22 -> |sum| < 2**37 < 2**53
        val = (a.reshape(R, steps).astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
        m.P = numerics.wrap_int32(val if not f["acc"] else m.P + val)
    elif mode == Mode.DEPTHWISE:
        w = m.W[w_base:w_base + nl].view(np.int8)
        val = np.einsum("rlc,lc->rc", a.astype(np.int64), w.astype(np.int64))
        m.P = numerics.wrap_int32(val if not f["acc"] else m.P + val)
    else:  # MAX
        val = a.max(axis=1).astype(np.int64)
        m.P = val if not f["acc"] else np.maximum(m.P, val)
    last = f["last"]
    raw = regs[Reg.RQ_RAW] != 0
    use_bias = regs[Reg.USE_BIAS] != 0
    use_skip = regs[Reg.USE_SKIP] != 0 and not raw
    if m.races is not None:
        # bank r is read at t+1+r .. t+steps+r; W entry w_base+k at t+1+k
        if nl:
            m.races.add(_Access(pc, "A", False, 0, R, a_base, a_base + nl, t + 1, 1, t + steps, 1))
        if mode != Mode.MAX and steps:
            m.races.add(_Access(pc, "W", False, 0, 1, w_base, w_base + steps, t + 1, 0, t + steps, 0))
        if last:
            # drain (f8hw/hw/compute.py): row r reads B/S at capture-1+r and its O line is written at
            # capture+REQUANT_LATENCY+r, the last one visible at drain_end
            capture = t + steps + m.lat
            d0 = capture - 1
            if use_bias:
                m.races.add(_Access(pc, "B", False, 0, 1, f["b_src"], f["b_src"] + 1, d0, 0, d0 + R - 1, 0))
            if use_skip:
                m.races.add(_Access(pc, "S", False, 0, 1, f["s_src"], f["s_src"] + R, d0, 0, d0 + R - 1, 0))
            w0 = capture + REQUANT_LATENCY
            m.races.add(_Access(pc, "O", True, 0, 1, f["o_dst"], f["o_dst"] + R, w0, 0, w0 + R - 1, 0))
    if not last:
        return
    v = m.P
    if use_bias:
        v = numerics.wrap_int32(v + m.B8[f["b_src"]].view("<i4").reshape(C).astype(np.int64))
    o_dst = f["o_dst"]
    skip = m.S[f["s_src"]:f["s_src"] + R] if use_skip else None
    m.O[o_dst:o_dst + R] = numerics.requant_lane(
        v, skip, raw=raw, out_signed=regs[Reg.OUT_SIGNED] != 0, shift=regs[Reg.SHIFT],
        skip_signed=regs[Reg.SKIP_SIGNED] != 0, acc_lshift=regs[Reg.ACC_LSHIFT], skip_lshift=regs[Reg.SKIP_LSHIFT],
        mult=regs[Reg.RQ_MULT] if m.arch.requant == "dyadic" else None)


def _store(m: _Machine, pc: int, f: dict, t: int) -> None:
    n = f["count"]
    if n == 0:
        return
    src, wide = f["src"], f["wide"]
    base = (f["addr"] + np.arange(n, dtype=np.int64) * f["stride"]) & _M32
    O8 = m.O[src:src + n].view(np.uint8).reshape(n, m.C, 4)   # little-endian bytes of each lane
    if wide:
        addrs = ((base[:, None] + np.arange(4, dtype=np.int64)[None, :]) & _M32).reshape(-1)
        data = O8.transpose(0, 2, 1).reshape(4 * n, m.C)
    else:
        addrs = base
        data = O8[:, :, 0]
    m._mem_check(addrs, pc, "STORE")
    m.mem[addrs] = data
    if m.races is not None:
        words = len(addrs)
        # word i: O line read at t+1+i (per line), memory write at t+2+i
        m.races.add(_Access(pc, "O", False, 0, 1, src, src + n, t + 1, 0, t + words, 0))
        m.races.add(_Access(pc, "mem", True, 0, 1, int(addrs.min()), int(addrs.max()) + 1, t + 2, 0, t + words + 1, 0,
                            addrs, t + 2 + np.arange(words, dtype=np.int64)))


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

"""Random instruction streams for the ISA fuzz (sim/test_isa_fuzz.py), and the RTL-vs-ISA-simulator check.

A program is a run of tiles in the compiler's shape (geometry and requantizer SETs, LOAD W/B/S, LOAD_A
in every address-generator mode, COMPUTE, STORE, MARK) with random parameters, issued back to back so
that every dependence goes through the hazard interlock.  Masks follow a conservative convention (one
bit per scratchpad half touched), so most programs are race-free and their final memory is compared;
some masks lose bits (hazards the interlock does not order: timing is still compared).  Errors are
injected into a share of the programs: illegal opcodes, LOAD targets and COMPUTE modes, out-of-range
fields, main-memory and A-line accesses past the end, a missing END, a fetch past imem_depth, raw random
words, and pairs of errors close in time (the first one seen must win).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from f8hw import isa, isasim, rtlsim
from f8hw.arch import ArchConfig
from f8hw.isa import LoadTarget, Mode, Reg, Resource

E = isa.encode
FUZZ_ARCH = ArchConfig(rows=2, cols=2, a_depth=32, w_depth=64, b_depth=4, s_depth=8, o_depth=8,
                       mem_words=512, imem_depth=256, mark_depth=4)
FLEX_FUZZ_ARCH = replace(FUZZ_ARCH, formats=("int8", "e2m5", "e3m4", "e4m3"))
STORE_BASE = 384          # stores go to words STORE_BASE.. (loads read below it, except memory hazards)
ILLEGAL_OPCODES = sorted(set(range(1 << isa.OPCODE_BITS)) - set(isa.OP_BY_CODE))


def _halves(lo: int, hi: int, depth: int, bit0: int) -> int:
    """Mask bits (bit0 for the lower half, bit0 << 1 for the upper) of the lines [lo, hi) of a scratchpad."""
    lo, hi = max(lo, 0), min(hi, depth)
    if hi <= lo:
        return 0
    half = depth // 2
    return sum(bit0 << h for h in range(lo // half, (hi - 1) // half + 1))


def _set(reg: Reg, v: int) -> int:
    return E("SET", reg=int(reg), value=int(v))


class ProgramGen:
    """One random program; ``words()`` returns it."""

    def __init__(self, rng: np.random.Generator, arch: ArchConfig = FUZZ_ARCH, small: bool = False):
        self.rng, self.a = rng, arch
        self.small = small                         # small-magnitude data: shifts and ties stay in range
        self.prog: list[int] = []
        self.regs = {int(r): 0 for r in Reg}
        self.hazard = rng.random() < 0.3          # a third of the programs drop mask bits now and then
        self.geo: dict | None = None               # the current convolution geometry (geometry())
        self.base = 0                              # its image's first word
        self.rq_set = False                        # requant() has set every requantizer register

    # ------------------------------------------------------------ helpers
    def r(self, lo: int, hi: int) -> int:
        """A random integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def emit(self, word: int) -> None:
        self.prog.append(word)

    def set(self, reg: Reg, v: int) -> None:
        self.regs[int(reg)] = int(v)
        self.emit(_set(reg, v))

    def mask(self, bits: int) -> int:
        """The conservative mask, or in a hazard program sometimes one with bits lost or random."""
        if self.hazard and self.p(0.25):
            return int(self.rng.integers(0, 256)) if self.p(0.3) else bits & int(self.rng.integers(0, 256))
        return bits

    def lines(self, ncb: int) -> int:
        """A lines per pixel of a LOAD_A with the current registers (tap gather packs C // G words per line)."""
        C = self.a.cols
        n = self.regs[Reg.KH] * self.regs[Reg.KW] * ncb
        g = self.regs[Reg.A_GATHER]
        per = C // g if 1 <= g <= C else 1
        return -(-n // per)

    # ------------------------------------------------------------ instruction groups
    def geometry(self) -> None:
        """A convolution's LOAD_A registers: image H x W x in_cb words at self.base, K, stride, padding."""
        r = self.r
        H, W, cb = r(1, 5), r(1, 5), r(1, 2)
        kh, kw = r(1, 3), r(1, 3)
        sh, sw = r(1, 3), r(1, 3)
        pad = r(0, max(kh, kw) - 1)
        ow = max(1, (W + 2 * pad - kw) // sw + 1)
        self.geo = dict(W=W, cb=cb, sh=sh, sw=sw, pad=pad, ow=ow, oh=max(1, (H + 2 * pad - kh) // sh + 1))
        self.base = r(0, STORE_BASE - H * W * cb)
        vals = {Reg.IN_H: H, Reg.IN_W: W, Reg.OUT_W: ow if self.p(0.8) else r(1, 3), Reg.KH: kh, Reg.KW: kw,
                Reg.STRIDE_H: sh, Reg.STRIDE_W: sw, Reg.PAD_W: pad, Reg.STEP_KH: W * cb, Reg.STEP_KW: cb,
                Reg.STEP_OW: sw * cb, Reg.STEP_WRAP: (sh * W - (ow - 1) * sw) * cb,
                Reg.PAD_VALUE: r(-3, 3) & 0xFF if self.small else r(0, 255),
                Reg.A_GATHER: int(self.rng.choice([0, 0, 1, 1, 2, -1, 3])), Reg.A_DIAG: int(self.p(0.35))}
        for reg, v in vals.items():
            if self.p(0.05):                       # a register off the geometry (KH, KW stay small)
                v = max(0, v + r(-2, 2)) if reg in (Reg.KH, Reg.KW) else v + r(-2, 2)
            if self.regs[reg] != v or self.p(0.2):
                self.set(reg, v)

    def requant(self) -> None:
        """Requantizer SETs (a random subset): raw int32 logits or a shift (left and right), bias, skip."""
        r = self.r
        small = self.small
        vals = {Reg.RQ_RAW: int(self.p(0.35)), Reg.OUT_SIGNED: int(self.p(0.7 if small else 0.5)),
                Reg.SHIFT: r(-3, 4) if small else r(-3, 14), Reg.USE_BIAS: int(self.p(0.15 if small else 0.5)),
                Reg.USE_SKIP: r(0, 1), Reg.SKIP_SIGNED: r(0, 1), Reg.ACC_LSHIFT: r(0, 4), Reg.SKIP_LSHIFT: r(0, 4),
                Reg.A_SIGNED: int(self.p(0.8 if small else 0.5)), Reg.RQ_MULT: r(-2, 3)}
        if self.a.flexible:   # format registers: mostly a format of the set, sometimes none (an illegal COMPUTE)
            n = len(self.a.formats)
            vals.update({reg: r(0, n - 1) if self.p(0.98) else r(n, n + 2) for reg in
                         (Reg.A_FMT, Reg.W_FMT, Reg.SKIP_FMT, Reg.OUT_FMT)})
            vals[Reg.BIAS64] = int(self.p(0.4))
        first = not self.rq_set                    # every register the first time, then a random subset
        self.rq_set = True
        for reg, v in vals.items():
            if first or self.p(0.5):
                self.set(reg, v)

    def load(self, target: LoadTarget, dst: int, count: int, addr: int | None = None) -> None:
        a = self.a
        depth = (a.w_depth, 4 * a.b_depth, a.s_depth)[target]
        bits = (_halves(dst, dst + count, a.w_depth, Resource.W0) if target == LoadTarget.W else
                _halves(dst, dst + count, a.s_depth, Resource.S0) if target == LoadTarget.S else
                _halves(dst // 4, (dst + count + 3) // 4, a.b_depth, Resource.S0))   # S0/S1: skip and bias halves
        stride = int(self.rng.choice([1, 1, 1, 0, 2, -1, 3]))
        if addr is None:
            addr = self.r(count + 8, STORE_BASE - 8 - 3 * count)
            if self.p(0.1):                        # read back what a STORE wrote: a memory hazard (barrier)
                addr, stride, bits = self.r(STORE_BASE, a.mem_words - count), 1, bits | isa.BARRIER
        assert dst + count <= depth
        self.emit(E("LOAD", mask=self.mask(bits), target=int(target), dst=dst, count=count, addr=addr,
                    stride=stride))

    def load_a(self) -> tuple[int, int]:
        """LOAD_A of npix output pixels at a random output position, or of R pixels crossing an output row
        (as the compiler's tiles do: the row wrap steps STRIDE_H); returns (dst, lines)."""
        g, a = self.geo, self.a
        wrap = self.p(0.3)
        ncb = g["cb"] if self.p(0.9) else self.r(1, 2)
        nl = self.lines(ncb)
        dst = self.r(0, max(0, a.a_depth - nl))
        oh, ow = self.r(0, g["oh"] - 1), g["ow"] - 1 if wrap else self.r(0, g["ow"] - 1)
        ih0, iw0 = oh * g["sh"] - g["pad"], ow * g["sw"] - g["pad"]
        addr = (self.base + (ih0 * g["W"] + iw0) * g["cb"]) & 0xFFFFFFFF
        self.emit(E("LOAD_A", mask=self.mask(_halves(dst, dst + nl, a.a_depth, Resource.A0)), dst=dst,
                    npix=a.rows if wrap else self.r(1, a.rows), ncb=ncb, ih0=ih0, iw0=iw0, ow0=ow, addr=addr))
        return dst, nl

    def operands(self, a_base: int, nl: int, last: int) -> dict:
        """The fields of a COMPUTE over the A lines [a_base, a_base + nl) in a random mode, its W entries (and
        its bias and skip, with last) loaded."""
        a, R, C = self.a, self.a.rows, self.a.cols
        mode = int(self.rng.choice([Mode.DENSE, Mode.DENSE, Mode.DEPTHWISE, Mode.MAX]))
        nl = max(1, min(nl, a.a_depth - a_base, a.w_depth // C))
        steps = nl * C if mode == Mode.DENSE else nl
        w_base = self.r(0, a.w_depth - steps)
        if mode != Mode.MAX:
            self.load(LoadTarget.W, w_base, steps)
        b_src, s_src, o_dst = self.r(0, a.b_depth - 1), self.r(0, a.s_depth - R), self.r(0, a.o_depth - R)
        if last and self.p(0.4):
            self.load(LoadTarget.B, 4 * b_src, 4)
        if last and self.p(0.3):
            self.load(LoadTarget.S, s_src, R)
        return dict(mode=mode, a_base=a_base, w_base=w_base, nlines=nl, b_src=b_src, s_src=s_src, o_dst=o_dst)

    def compute(self, f: dict, last: int, acc: int) -> int:
        """The COMPUTE of operands() ``f``; returns its first output line."""
        a, R, g = self.a, self.a.rows, self.regs
        steps = f["nlines"] * (a.cols if f["mode"] == Mode.DENSE else 1)
        bits = (_halves(f["a_base"], f["a_base"] + f["nlines"], a.a_depth, Resource.A0)
                | _halves(f["w_base"], f["w_base"] + steps, a.w_depth, Resource.W0)
                | _halves(f["o_dst"], f["o_dst"] + R, a.o_depth, Resource.O0))
        if last and g[Reg.USE_BIAS]:
            bits |= _halves(f["b_src"], f["b_src"] + 1, a.b_depth, Resource.S0)
        if last and g[Reg.USE_SKIP] and not g[Reg.RQ_RAW]:
            bits |= _halves(f["s_src"], f["s_src"] + R, a.s_depth, Resource.S0)
        self.emit(E("COMPUTE", mask=self.mask(bits), acc=acc, last=last, **f))
        return f["o_dst"]

    def store(self, src: int) -> None:
        a = self.a
        count, wide = self.r(1, a.rows), self.r(0, 1)
        wide64 = {"wide64": int(wide and self.p(0.5))} if a.flexible else {}   # (INT8 streams draw as before)
        stride = self.r(1, 4) if wide else self.r(-1, 3)
        span = (count - 1) * abs(stride) + (8 if wide64.get("wide64") else 4)
        addr = self.r(STORE_BASE + (span if stride < 0 else 0), a.mem_words - span)
        self.emit(E("STORE", mask=self.mask(_halves(src, src + count, a.o_depth, Resource.O0)), wide=wide, src=src,
                    count=count, addr=addr, stride=stride, **wide64))

    def tile(self) -> int | None:
        """One tile; returns its output line when its STORE is left to the caller (after the next tile's
        COMPUTE, so two drains can be in flight)."""
        if self.geo is None or self.p(0.4):
            self.geometry()
        if not self.rq_set or self.p(0.6):
            self.requant()
        dst, nl = self.load_a()
        kind = self.rng.random()
        if kind < 0.2:                              # accumulate over two tiles before the drain
            self.compute(self.operands(dst, nl, 0), last=0, acc=self.r(0, 1))
            dst, nl = self.load_a()
            o_dst = self.compute(self.operands(dst, nl, 1), last=1, acc=1)
        elif kind < 0.4:                            # two output blocks of one tile: two drains in flight
            f1, f2 = self.operands(dst, nl, 1), self.operands(dst, nl, 1)
            self.compute(f1, last=1, acc=0)
            o_dst = self.compute(f2, last=1, acc=0)
            self.store(f1["o_dst"])
        else:
            last = int(self.p(0.9))
            o_dst = self.compute(self.operands(dst, nl, last), last=last, acc=int(self.p(0.15)))
        if self.p(0.4):                             # the next tile's requantizer, while this one drains
            self.requant()
        if self.p(0.15):
            self.emit(E("MARK", slot=self.r(0, self.a.mark_depth - 1)))
        if self.p(0.3):
            return o_dst
        if self.p(0.8):
            self.store(o_dst)
        return None

    # ------------------------------------------------------------ errors
    def error(self) -> None:
        """One erroneous instruction (or a short sequence ending in one)."""
        a, r, R = self.a, self.r, self.a.rows
        kind = r(0, 15)
        if kind == 0:
            self.emit(int(self.rng.choice(ILLEGAL_OPCODES)) | (int(self.rng.integers(0, 1 << 62)) << 4))
        elif kind == 1:
            self.emit(E("LOAD", target=3, dst=0, count=r(0, 4), addr=r(0, 100), stride=1))
        elif kind == 2:
            self.emit(E("COMPUTE", mode=3, nlines=1))
        elif kind == 3:
            tgt = r(0, 2)
            depth = (a.w_depth, 4 * a.b_depth, a.s_depth)[tgt]
            self.emit(E("LOAD", target=tgt, dst=r(depth - 3, depth), count=r(4, 9), addr=0, stride=1))
        elif kind == 4:
            self.emit(E("LOAD_A", dst=0, npix=int(self.rng.choice([0, R + 1, 127])), ncb=1))
        elif kind == 5:                             # A lines past a_depth (per access, at the data phase)
            self.geometry()
            self.emit(E("LOAD_A", dst=r(a.a_depth - 2, a.a_depth + 3), npix=r(1, R), ncb=2, addr=self.base))
        elif kind == 6:
            self.set(Reg.USE_SKIP, 1)
            self.set(Reg.USE_BIAS, 1)
            self.set(Reg.RQ_RAW, 0)
            bad = [dict(nlines=0), dict(a_base=a.a_depth - 1, nlines=2), dict(w_base=a.w_depth - 1, nlines=1),
                   dict(o_dst=a.o_depth - R + 1, nlines=1), dict(s_src=a.s_depth - R + 1, nlines=1, last=1),
                   dict(b_src=a.b_depth, nlines=1, last=1)][r(0, 5)]
            self.emit(E("COMPUTE", mode=r(0, 1), **bad))
        elif kind == 7:
            self.emit(E("STORE", src=r(0, a.o_depth), count=a.o_depth + 1 - r(0, 1), addr=STORE_BASE, stride=1))
        elif kind == 8:
            self.emit(E("MARK", slot=r(a.mark_depth, (1 << 16) - 1)))
        elif kind == 9:                             # main-memory read past mem_words, after a few good words
            n = r(1, 12)
            if self.p(0.5):
                self.load(LoadTarget.W, 0, n, addr=a.mem_words - r(0, n - 1))
            else:                                  # a negative stride wraps below word 0
                self.emit(E("LOAD", target=0, dst=0, count=n, addr=r(0, n - 1), stride=-1))
        elif kind == 10:                            # LOAD_A window partly past the end of main memory
            self.geometry()
            self.emit(E("LOAD_A", dst=0, npix=R, ncb=self.geo["cb"], ow0=0, addr=a.mem_words - r(0, 6)))
        elif kind == 11:
            count, wide = r(1, R), r(0, 1)
            self.emit(E("STORE", mask=self.mask(Resource.O0), wide=wide, src=0, count=count,
                        addr=a.mem_words - r(1, 4 * count), stride=r(1, 300)))
        elif kind == 12:                            # a raw random word with a legal opcode (not SET)
            op = isa.OP_BY_NAME[str(self.rng.choice(["LOAD", "LOAD_A", "COMPUTE", "STORE", "MARK"]))]
            self.emit(op.code | (int(self.rng.integers(0, 1 << 62)) << 4) | (int(self.rng.integers(0, 1 << 62)) << 66))
        elif kind == 13:                            # a long unit error with a decode error soon after
            self.emit(E("LOAD", target=0, dst=0, count=r(3, 20), addr=a.mem_words - r(1, 3), stride=1))
            for _ in range(r(0, 3)):
                self.emit(_set(Reg.KH, self.regs[Reg.KH]))
            self.emit(int(self.rng.choice(ILLEGAL_OPCODES)))
        elif kind == 14:                            # a LOAD error and a STORE error racing for the first cycle
            self.emit(E("LOAD", target=0, dst=0, count=r(2, 8), addr=a.mem_words - r(1, 4), stride=1))
            self.emit(E("STORE", src=0, count=r(1, 4), wide=r(0, 1), addr=a.mem_words - r(1, 6), stride=1))
        else:
            self.emit(_set(r(max(Reg) + 1, 63), int(self.rng.integers(-2**31, 2**31))))   # not a register: no effect
            self.error()

    def words(self) -> list[int]:
        """Tiles with errors between them, then END (or no END: the zero words after the program, or a full
        instruction memory)."""
        rng, a = self.rng, self.a
        n_tiles = self.r(3, 10)
        n_err = int(rng.choice([0, 0, 0, 0, 0, 1, 1, 2]))
        err_at = set(rng.integers(0, n_tiles + 1, size=n_err).tolist())
        deferred = None
        for i in range(n_tiles + 1):
            if i in err_at:
                self.error()
            if i < n_tiles:
                later = self.tile()
                if deferred is not None:
                    self.store(deferred)
                deferred = later
        if deferred is not None:
            self.store(deferred)
        ending = rng.random()
        if ending < 0.05:                           # no END: the zero words after the program are illegal
            return self.prog
        if ending < 0.08:                           # no END in a full instruction memory: fetch error
            return (self.prog + [_set(63, 0)] * a.imem_depth)[:a.imem_depth]
        return self.prog + [E("END")]


def random_case(seed: int, arch: ArchConfig = FUZZ_ARCH) -> tuple[list[int], np.ndarray]:
    """(program, main-memory image) of fuzz case ``seed``."""
    rng = np.random.default_rng(seed)
    small = bool(rng.random() < 0.4)
    lo, hi = (-3, 4) if small else (0, 256)
    mem = (rng.integers(lo, hi, size=(arch.mem_words, arch.cols)) & 0xFF).astype(np.uint8)
    return ProgramGen(rng, arch, small).words()[:arch.imem_depth], mem


@dataclass
class Outcome:
    """How one case ended on the ISA simulator (the RTL agreed): an error, or END with memory compared or not."""

    error: int | None
    memory_compared: bool
    cycles: int


def check_case(prog: list[int], mem: np.ndarray, simulator: str, arch: ArchConfig = FUZZ_ARCH,
               what: str = "") -> Outcome:
    """Run on the ISA simulator and the RTL; assert the same error code at the same cycle, or the same
    cycles, busy, stall, MARK stamps and, unless the masks leave a race, every byte of main memory."""
    try:
        ref, err = isasim.run(prog, mem, arch, check_races=False), None
    except isasim.IsaSimError as e:
        ref, err = None, e
    assert err is None or err.code.in_hardware, f"{what}: the ISA simulator stops with {err}"
    budget = (err.cycles if err else ref.cycles) + 1000
    try:
        res = rtlsim.simulate(arch, prog, mem, simulator, max_cycles=budget, read_words=arch.mem_words,
                              raise_on_error=False)
    except rtlsim.WatchdogError as e:
        raise AssertionError(f"{what}: {e}; the ISA simulator: {err or f'END at {ref.cycles} cycles'}") from None
    if err is not None:
        assert res.error and (res.error_code, res.cycles) == (err.code, err.cycles), (
            f"{what}: ISA simulator: {err} (cycle counter {err.cycles}); RTL: "
            + (f"error {res.error_code} at cycle counter {res.cycles}" if res.error else f"END at {res.cycles}"))
        return Outcome(int(err.code), False, err.cycles)
    assert not res.error, f"{what}: RTL error {res.error_code} at {res.cycles}; the ISA simulator ends at {ref.cycles}"
    assert (res.cycles, res.busy, res.stall) == (ref.cycles, ref.busy, ref.stall), (
        f"{what}: (cycles, busy, stall) RTL {(res.cycles, res.busy, res.stall)} != ISA {(ref.cycles, ref.busy, ref.stall)}")
    assert res.marks == ref.marks, f"{what}: MARK stamps RTL {res.marks} != ISA {ref.marks}"
    try:
        isasim.run(prog, mem, arch)
    except isasim.IsaSimError as e:
        assert e.code == isa.ErrorCode.RACE, f"{what}: {e}"
        return Outcome(None, False, ref.cycles)
    diff = np.argwhere(res.memory != ref.memory[:arch.mem_words])
    assert len(diff) == 0, (f"{what}: main memory differs at word {diff[0][0]} byte {diff[0][1]}: RTL "
                            f"{res.memory[tuple(diff[0])]} != ISA {ref.memory[tuple(diff[0])]} ({len(diff)} bytes)")
    return Outcome(None, True, ref.cycles)

"""The f8hw instruction set: opcodes, fields and binary encodings, defined once.

The compiler encodes with it, the ISA simulator and the RTL decoder decode with
it, and docs/isa.md is generated from it (``python -m f8hw.isa > docs/isa.md``).
Instructions are INSTR_BITS wide; the opcode sits in the low OPCODE_BITS and the
fields of each opcode follow it upwards in the order listed, little-endian.
Beside the encodings: the error codes (``ErrorCode``), the resource-mask bits
of the compiler's convention (``Resource`` and its helpers) and ``walk``, the
one decode loop that says what each instruction of a program moves.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from f8hw.errors import F8Error

__all__ = [
    "ISA_VERSION", "INSTR_BITS", "OPCODE_BITS", "MASK_BITS", "MAC_MASK_BITS", "ERROR_CODE_BITS",
    "IsaError", "Field", "Op", "LoadTarget", "Mode", "Reg", "FORMAT_REGS", "ErrorCode", "error_label", "Resource",
    "MAC_MASK", "DRAIN_MASK", "BARRIER", "W_BOTH_HALVES", "a_half_mask", "w_half_mask", "s_slot_mask",
    "o_slot_mask", "OPS", "OP_BY_NAME", "OP_BY_CODE", "encode", "decode", "to_bytes", "from_bytes", "store_planes",
    "Work", "walk", "isa_markdown",
]

ISA_VERSION = 4  # 2: Reg.A_GATHER (LOAD_A tap gather); 3: Reg.A_DIAG (LOAD_A window reuse);
# 4: format registers (A_FMT, W_FMT, SKIP_FMT, OUT_FMT, BIAS64) and STORE.wide64 (flexible builds; INT8 unchanged)
INSTR_BITS = 128
OPCODE_BITS = 4
MASK_BITS = 8
MAC_MASK_BITS = 4  # mask bits 0..3 are held by a COMPUTE's MAC phase, 4..7 by its drain
ERROR_CODE_BITS = 3  # width of the hardware's error_code port


class IsaError(F8Error):
    """An instruction cannot be encoded or decoded; the message says which field."""


@dataclass(frozen=True)
class Field:
    name: str
    width: int
    signed: bool = False
    doc: str = ""

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


@dataclass(frozen=True)
class Op:
    name: str
    code: int
    unit: str  # "front" (executes in the decoder), "load", "compute" or "store"
    fields: tuple[Field, ...]
    doc: str

    def layout(self) -> list[tuple[Field, int]]:
        """(field, lowest bit) pairs in encoding order."""
        out, bit = [], OPCODE_BITS
        for f in self.fields:
            out.append((f, bit))
            bit += f.width
        return out


_MASK = Field("mask", MASK_BITS, doc="resource bits this instruction holds (hazard check, see docs/architecture.md)")


class LoadTarget(enum.IntEnum):
    W = 0  # weight scratchpad, one entry (cols bytes) per word
    B = 1  # bias scratchpad, one entry (cols x int32) per 4 words, byte-planar
    S = 2  # skip (residual) scratchpad, one line (cols bytes) per word


class Mode(enum.IntEnum):
    DENSE = 0      # PE(r,c) += a[r][k] * w[k][c]; k walks every byte of every A line
    DEPTHWISE = 1  # PE(r,c) += a[r][line k][byte c] * w[k][c]; one A line per step
    MAX = 2        # PE(r,c) = max(PE(r,c), a[r][line k][byte c]); weights unused


class Reg(enum.IntEnum):
    """Configuration registers written by SET (32-bit values)."""

    # LOAD_A address generation (snapshotted when a LOAD_A issues)
    IN_H = 0        # input height (pixels)
    IN_W = 1        # input width (pixels)
    OUT_W = 2       # output width: the pixel counter wraps to the next output row here
    KH = 3          # kernel height
    KW = 4          # kernel width
    STRIDE_H = 5    # ih advance when the output row wraps
    STRIDE_W = 6    # iw advance per output pixel
    PAD_W = 7       # left padding: iw restarts at -PAD_W on a new output row
    STEP_KH = 8     # word-address step per kernel row (IN_W * in_cb)
    STEP_KW = 9     # word-address step per kernel column (in_cb)
    STEP_OW = 10    # word-address step per output pixel (STRIDE_W * in_cb)
    STEP_WRAP = 11  # word-address step when the output row wraps (signed)
    PAD_VALUE = 12  # byte written for out-of-image window positions
    A_GATHER = 13   # tap gather: G = bytes per word kept (1..cols; any other value = off), packs cols // G words per line
    A_DIAG = 14     # window reuse (non-zero = on, with gather off and 1 <= STRIDE_W <= KW): the npix pixels are one output row, each input word is read once
    # MAC array and requantizer (snapshotted when a COMPUTE issues)
    A_SIGNED = 16     # activation bytes are int8 (1) or uint8 (0)
    RQ_RAW = 17       # 1: output acc + bias as int32 (classifier logits), no shift
    OUT_SIGNED = 18   # saturate to [-127, 127] (1) or [0, 255] (0)
    SHIFT = 19        # right shift to the output FL (signed; negative = left shift)
    USE_BIAS = 20     # add the bias entry
    USE_SKIP = 21     # add the skip (residual) line
    SKIP_SIGNED = 22  # skip bytes are int8 (1) or uint8 (0)
    ACC_LSHIFT = 23   # align acc + bias to the residual FL (left shift)
    SKIP_LSHIFT = 24  # align the skip to the accumulator FL (left shift)
    RQ_MULT = 25      # dyadic baseline only: int32 multiplier (1 reproduces shift mode)
    # flexible builds only (ArchConfig.formats beyond int8; 0 = INT8 everywhere = an INT8 build)
    A_FMT = 26        # activation format: index into ArchConfig.formats (0 = INT8, signed per A_SIGNED)
    W_FMT = 27        # weight format: index into ArchConfig.formats (0 = int8)
    SKIP_FMT = 28     # skip (residual) format: index into ArchConfig.formats (0 = INT8, signed per SKIP_SIGNED)
    OUT_FMT = 29      # output lane: 0 = INT8 lane (SHIFT, OUT_SIGNED); k = FP8 lane of formats[k] (OUT_SIGNED 0 = ReLU)
    BIAS64 = 30       # 1: the bias is 64-bit, entry b_src = low 32 bits, entry b_src + 1 = high 32 bits


FORMAT_REGS = frozenset({Reg.A_FMT, Reg.W_FMT, Reg.SKIP_FMT, Reg.OUT_FMT, Reg.BIAS64})
"""The registers of flexible builds only: an INT8 build has none of them (a SET of one is ignored)."""


class ErrorCode(enum.IntEnum):
    """Why a run stopped with an error: the hardware's error_code, and the ISA simulator's codes."""

    OPCODE = 1    # illegal opcode, LOAD target or COMPUTE mode
    SPAD = 2      # scratchpad range
    MEM = 3       # main-memory range
    FETCH = 4     # instruction fetch past imem_depth
    # simulator-only (outside the hardware's ERROR_CODE_BITS range)
    RACE = 16     # two accesses the masks do not order
    TIMEOUT = 17  # cycle limit

    @property
    def label(self) -> str:
        """Short name, for messages."""
        return _ERROR_TEXT[self][0]

    @property
    def description(self) -> str:
        """What raises it."""
        return _ERROR_TEXT[self][1]

    @property
    def in_hardware(self) -> bool:
        """True for the codes the accelerator itself reports."""
        return self < 1 << ERROR_CODE_BITS


_ERROR_TEXT = {
    ErrorCode.OPCODE: ("illegal opcode", "an illegal opcode, LOAD target or COMPUTE mode"),
    ErrorCode.SPAD: ("scratchpad range", "lines or entries outside a scratchpad, npix not in 1..rows, "
                                         "COMPUTE nlines = 0, a MARK slot >= mark_depth"),
    ErrorCode.MEM: ("main-memory range", "an access at a word >= mem_words"),
    ErrorCode.FETCH: ("instruction fetch past imem_depth", "no END before the end of the instruction memory"),
    ErrorCode.RACE: ("race", "ISA simulator only: two accesses to one location, one a write, "
                             "that the masks do not order"),
    ErrorCode.TIMEOUT: ("cycle limit", "ISA simulator only: an instruction would issue at or after max_cycles"),
}


def error_label(code: int) -> str:
    """The short name of an error code; "unknown" for a number that is none."""
    try:
        return ErrorCode(code).label
    except ValueError:
        return "unknown"


class Resource(enum.IntFlag):
    """The compiler's resource-mask bits (docs/architecture.md "Timing"): one per scratchpad half or slot."""

    A0 = 1 << 0   # activation banks, half 0
    A1 = 1 << 1
    W0 = 1 << 2   # weight scratchpad, half 0
    W1 = 1 << 3
    S0 = 1 << 4   # skip (and bias) slot 0
    S1 = 1 << 5
    O0 = 1 << 6   # output slot 0
    O1 = 1 << 7


MAC_MASK = (1 << MAC_MASK_BITS) - 1                 # the bits a COMPUTE's MAC phase holds
DRAIN_MASK = ((1 << MASK_BITS) - 1) & ~MAC_MASK     # the bits its drain holds
BARRIER = Resource.O0 | Resource.O1
"""A load with both O bits waits for the last STORE and the last drain: a layer boundary."""
W_BOTH_HALVES = Resource.W0 | Resource.W1
"""A "big" weight load that takes the whole W scratchpad."""


def a_half_mask(half: int) -> Resource:
    return Resource(Resource.A0 << half)


def w_half_mask(half: int) -> Resource:
    return Resource(Resource.W0 << half)


def s_slot_mask(slot: int) -> Resource:
    return Resource(Resource.S0 << slot)


def o_slot_mask(slot: int) -> Resource:
    return Resource(Resource.O0 << slot)


OPS: tuple[Op, ...] = (
    Op("END", 1, "front", (), "Wait until every unit is idle, then stop: done rises."),
    Op("SET", 2, "front", (
        Field("reg", 6, doc="configuration register (Reg)"),
        Field("value", 32, signed=True, doc="new value"),
    ), "Write one configuration register; takes one issue cycle."),
    Op("MARK", 3, "front", (
        Field("slot", 16, doc="cycle-stamp slot"),
    ), "Record the issue cycle in MARK slot `slot` (per-layer cycle counts)."),
    Op("LOAD", 4, "load", (
        _MASK,
        Field("target", 2, doc="LoadTarget: W, B or S"),
        Field("dst", 16, doc="first word position in the target (W entry, S line, or B word = 4*entry + byte plane)"),
        Field("count", 16, doc="words to move"),
        Field("addr", 32, doc="main-memory word address of the first word"),
        Field("stride", 24, signed=True, doc="main-memory address step between words"),
    ), "Strided copy main memory -> W, B or S scratchpad, one word per cycle."),
    Op("LOAD_A", 5, "load", (
        _MASK,
        Field("dst", 16, doc="first line in every activation bank"),
        Field("npix", 7, doc="output pixels of the tile (rows 0..npix-1), 1..rows"),
        Field("ncb", 10, doc="channel blocks per window position, >= 1"),
        Field("ih0", 12, signed=True, doc="input row of the first pixel's window origin"),
        Field("iw0", 12, signed=True, doc="input column of the first pixel's window origin"),
        Field("ow0", 12, doc="output column of the first pixel"),
        Field("addr", 32, doc="word address of (ih0, iw0), first channel block"),
    ), "Gather convolution windows (im2col in hardware, with padding) into the activation banks: "
       "bank r gets the KH*KW*ncb words of output pixel r at lines dst.. (with A_GATHER = G: bytes [0, G) of "
       "word i go to line dst + i // (cols // G), byte offset (i % (cols // G)) * G; other bytes 0; with A_DIAG: "
       "the pixels iw0 + STRIDE_W*r of input row ih0 share their windows, each input word is read once and written "
       "to every bank whose window holds it)"),
    Op("COMPUTE", 6, "compute", (
        _MASK,
        Field("mode", 2, doc="Mode: DENSE, DEPTHWISE or MAX"),
        Field("acc", 1, doc="1: continue accumulating; 0: start from this tile's first product"),
        Field("last", 1, doc="1: capture and drain through the requantizers at the end"),
        Field("a_base", 16, doc="first activation line"),
        Field("w_base", 16, doc="first weight entry"),
        Field("nlines", 16, doc="activation lines: DENSE runs nlines*cols steps, others nlines steps"),
        Field("b_src", 16, doc="bias entry (if USE_BIAS)"),
        Field("s_src", 16, doc="first skip line (row r reads s_src + r, if USE_SKIP)"),
        Field("o_dst", 16, doc="first output line (row r writes o_dst + r)"),
    ), "Run the MAC array over a tile; with last, requantize its rows into the output lines."),
    Op("STORE", 7, "store", (
        _MASK,
        Field("wide", 1, doc="1: int32 lanes, 4 byte-planar words per line; 0: low byte of each lane, 1 word"),
        Field("src", 16, doc="first output line"),
        Field("count", 16, doc="lines to store"),
        Field("addr", 32, doc="main-memory word address of the first line"),
        Field("stride", 24, signed=True, doc="main-memory address step between lines"),
        Field("wide64", 1, doc="with wide = 1: 64-bit lanes (sign-extended accumulator), 8 byte-planar words "
                               "per line (flexible builds; an INT8 build ignores it)"),
    ), "Strided copy output lines -> main memory, one word per cycle."),
)

OP_BY_NAME = {op.name: op for op in OPS}
OP_BY_CODE = {op.code: op for op in OPS}

for _op in OPS:
    assert OPCODE_BITS + sum(f.width for f in _op.fields) <= INSTR_BITS, _op.name
    assert _op.code < (1 << OPCODE_BITS)


def encode(name: str, **fields: int) -> int:
    """Pack one instruction into an INSTR_BITS-wide integer."""
    op = OP_BY_NAME.get(name)
    if op is None:
        raise IsaError(f"unknown opcode {name!r}")
    extra = set(fields) - {f.name for f in op.fields}
    if extra:
        raise IsaError(f"{name}: unknown field(s) {sorted(extra)}")
    word = op.code
    for f, lo in op.layout():
        v = int(fields.get(f.name, 0))
        if not f.lo <= v <= f.hi:
            raise IsaError(f"{name}.{f.name} = {v} does not fit {f.width} bits "
                           f"({'signed' if f.signed else 'unsigned'})")
        word |= (v & ((1 << f.width) - 1)) << lo
    return word


def decode(word: int) -> tuple[Op, dict[str, int]]:
    """Unpack an instruction; an unknown opcode is an IsaError."""
    code = word & ((1 << OPCODE_BITS) - 1)
    op = OP_BY_CODE.get(code)
    if op is None:
        raise IsaError(f"illegal opcode {code}")
    out = {}
    for f, lo in op.layout():
        v = (word >> lo) & ((1 << f.width) - 1)
        if f.signed and v >> (f.width - 1):
            v -= 1 << f.width
        out[f.name] = v
    return op, out


def to_bytes(words: list[int]) -> bytes:
    """A program as little-endian INSTR_BITS-wide words."""
    return b"".join(w.to_bytes(INSTR_BITS // 8, "little") for w in words)


def from_bytes(data: bytes) -> list[int]:
    n = INSTR_BITS // 8
    if len(data) % n:
        raise IsaError(f"program size {len(data)} is not a multiple of {n} bytes")
    return [int.from_bytes(data[i:i + n], "little") for i in range(0, len(data), n)]


@dataclass(frozen=True)
class Work:
    """What one decoded instruction moves or computes."""

    load_words: int = 0    # main-memory words read by LOAD / LOAD_A
    store_words: int = 0   # main-memory words written by STORE (wide: 4 per count)
    steps: int = 0         # array steps of COMPUTE (DENSE: nlines*cols, else nlines)


_NO_WORK = Work()


def walk(program: Iterable[int], cols: int) -> Iterator[tuple[int, Op | None, dict, Work]]:
    """(pc, op, fields, work) per instruction word, tracking SET KH/KW for LOAD_A; op None for an undecodable word.

    A LOAD_A counts npix*KH*KW*ncb words (its windows; A_DIAG window reuse reads fewer), so the
    totals are what the program asks for, an upper bound of what the load unit reads.
    """
    kh = kw = 0
    for pc, word in enumerate(program):
        try:
            op, f = decode(int(word))
        except IsaError:
            yield pc, None, {}, _NO_WORK
            continue
        name = op.name
        if name == "SET":
            if f["reg"] == Reg.KH:
                kh = max(f["value"], 0)
            elif f["reg"] == Reg.KW:
                kw = max(f["value"], 0)
            work = _NO_WORK
        elif name == "LOAD":
            work = Work(load_words=f["count"])
        elif name == "LOAD_A":
            work = Work(load_words=f["npix"] * kh * kw * f["ncb"])
        elif name == "STORE":
            work = Work(store_words=f["count"] * store_planes(f))
        elif name == "COMPUTE":
            work = Work(steps=f["nlines"] * (cols if f["mode"] == Mode.DENSE else 1))
        else:
            work = _NO_WORK
        yield pc, op, f, work


def store_planes(f: dict, flexible: bool = True) -> int:
    """Words per output line of a decoded STORE: 1 (bytes), 4 (int32 lanes) or 8 (64-bit lanes; only a
    flexible build has them: an INT8 build ignores wide64, its RTL is unchanged from ISA 3)."""
    return (8 if f["wide64"] and flexible else 4) if f["wide"] else 1


def isa_markdown() -> str:
    """docs/isa.md, generated from the tables above."""
    lines = [
        "# f8hw ISA",
        "",
        "Generated by `python -m f8hw.isa` from `f8hw/isa.py`; do not edit by hand.",
        "",
        f"ISA version {ISA_VERSION}. Instructions are {INSTR_BITS} bits, little-endian; "
        f"the opcode is bits [{OPCODE_BITS - 1}:0] and each opcode's fields follow upwards in the order below. "
        "Opcode 0 and unlisted opcodes are illegal (error flag).",
        "",
        "## Opcodes",
        "",
        "| opcode | name | unit | description |",
        "|---|---|---|---|",
    ]
    for op in OPS:
        lines.append(f"| {op.code} | `{op.name}` | {op.unit} | {op.doc} |")
    for op in OPS:
        lines += ["", f"## {op.name}", "", op.doc, ""]
        if not op.fields:
            lines.append("No fields.")
            continue
        lines += ["| bits | field | width | signed | meaning |", "|---|---|---|---|---|"]
        for f, lo in op.layout():
            lines.append(f"| [{lo + f.width - 1}:{lo}] | `{f.name}` | {f.width} | "
                         f"{'yes' if f.signed else 'no'} | {f.doc} |")
    for title, enum_cls in (("SET registers (`Reg`)", Reg), ("LOAD targets (`LoadTarget`)", LoadTarget),
                            ("COMPUTE modes (`Mode`)", Mode)):
        lines += ["", f"## {title}", "", "| value | name |", "|---|---|"]
        for e in enum_cls:
            lines.append(f"| {int(e)} | `{e.name}` |")
    lines += ["", "## Error codes (`ErrorCode`)", "",
              f"The accelerator's `error_code` is {ERROR_CODE_BITS} bits; the codes above that are the ISA "
              "simulator's own.", "", "| code | name | label | raised by |", "|---|---|---|---|"]
    for e in ErrorCode:
        lines.append(f"| {int(e)} | `{e.name}` | {e.label} | {e.description} |")
    lines += ["", "## Resource-mask bits (`Resource`)", "",
              f"The compiler's convention for the {MASK_BITS}-bit `mask` (the hardware only compares bits): "
              f"a COMPUTE's MAC phase holds bits 0..{MAC_MASK_BITS - 1}, its drain bits "
              f"{MAC_MASK_BITS}..{MASK_BITS - 1}; a load with `BARRIER` = O0|O1 waits for every earlier result.",
              "", "| bit | name |", "|---|---|"]
    for e in Resource:
        lines.append(f"| {int(e).bit_length() - 1} | `{e.name}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(isa_markdown(), end="")

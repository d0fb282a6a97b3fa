"""Instruction-field decoding derived from f8hw.isa (no opcode or bit position written here)."""

from __future__ import annotations

from amaranth.hdl import Value

from f8hw import isa


def field(instr: Value, op: str, name: str) -> Value:
    """Field `name` of opcode `op` as a (signed if the ISA says so) slice of the instruction word."""
    for f, lo in isa.OP_BY_NAME[op].layout():
        if f.name == name:
            v = instr[lo:lo + f.width]
            return v.as_signed() if f.signed else v
    raise KeyError(f"{op} has no field {name!r}")


def fields(instr: Value, op: str) -> dict[str, Value]:
    return {f.name: field(instr, op, f.name) for f, _ in isa.OP_BY_NAME[op].layout()}


def opcode(instr: Value) -> Value:
    return instr[:isa.OPCODE_BITS]


def code(op: str) -> int:
    return isa.OP_BY_NAME[op].code


def field_width(op: str, name: str) -> int:
    return next(f.width for f, _ in isa.OP_BY_NAME[op].layout() if f.name == name)

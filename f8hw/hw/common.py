"""Small helpers shared by the RTL modules (no hardware state of their own)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Value

from f8hw.arch import ArchError


def clog2(n: int) -> int:
    """Bits needed to index n items (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


def check_int(name: str, v, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ArchError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    return v


def mul_const(x: Value, k: int, width: int) -> Value:
    """x * k for a constant k >= 0 as a sum of shifted copies (adders only, no $mul cell)."""
    terms = [(x << i) for i in range(k.bit_length()) if (k >> i) & 1]
    if not terms:
        return Const(0, width)
    acc = terms[0][:width]
    for t in terms[1:]:
        acc = (acc + t)[:width]
    return acc


def replicate(v: Value, n: int) -> Value:
    return Cat(*([v] * n))


def tree_or(values: list) -> Value:
    """Balanced OR of a list of values (keeps expression depth logarithmic)."""
    values = list(values)
    if not values:
        return Const(0, 1)
    while len(values) > 1:
        nxt = [values[i] | values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]

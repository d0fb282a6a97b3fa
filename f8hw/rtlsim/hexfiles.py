"""$readmemh / $writememh files: programs and main-memory images in and out of the simulators."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_hex_words", "write_hex_bytes", "read_hex_words", "read_hex_bytes", "read_hex_prefix"]


def write_hex_words(path: Path, words, width_bits: int) -> None:
    """$readmemh file: one word per line, most significant digit first."""
    digits = (width_bits + 3) // 4
    with open(path, "w") as fh:
        fh.write("\n".join(format(int(w), f"0{digits}x") for w in words))
        fh.write("\n")


def write_hex_bytes(path: Path, memory: np.ndarray) -> None:
    """$readmemh file of a (words, bytes) uint8 array; byte 0 is the least significant."""
    mem = np.ascontiguousarray(np.asarray(memory, dtype=np.uint8))
    if mem.ndim != 2:
        raise ValueError(f"memory image must be (words, bytes), got shape {mem.shape}")
    # reverse bytes: byte 0 is the LSB -> last two hex digits
    rev = mem[:, ::-1]
    table = np.array([f"{i:02x}" for i in range(256)])
    lines = ["".join(row) for row in table[rev]]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
        fh.write("\n")


def read_hex_words(path: Path, count: int | None = None) -> list[int]:
    """Words of a $writememh file (comments and @address lines handled); x/z read as 0."""
    out: list[int] = []
    addr = 0
    for line in Path(path).read_text().splitlines():
        line = line.split("//")[0].strip()
        if not line:
            continue
        for tok in line.split():
            if tok.startswith("@"):
                addr = int(tok[1:], 16)
                continue
            while len(out) < addr:
                out.append(0)
            val = int(tok.lower().replace("x", "0").replace("z", "0"), 16)
            if addr < len(out):
                out[addr] = val
            else:
                out.append(val)
            addr += 1
    if count is not None:
        out = (out + [0] * count)[:count]
    return out


def read_hex_bytes(path: Path, words: int, nbytes: int) -> np.ndarray:
    """A $writememh dump of a memory of ``nbytes``-byte words as (words, nbytes) uint8."""
    vals = read_hex_words(path, words)
    mem = np.zeros((words, nbytes), dtype=np.uint8)
    for i, v in enumerate(vals):
        if v:
            mem[i] = np.frombuffer(v.to_bytes(nbytes, "little"), dtype=np.uint8)
    return mem


def read_hex_prefix(path: Path, words: int, nbytes: int) -> np.ndarray:
    """The first ``words`` words of a $writememh dump of ``nbytes``-byte words, as uint8."""
    lines: list[str] = []
    with open(path) as fh:
        for line in fh:
            s = line.split("//")[0].strip()
            if not s:
                continue
            if s.startswith("@") or len(s) != 2 * nbytes or any(c in s for c in "xXzZ"):
                return read_hex_bytes(path, words, nbytes)
            lines.append(s)
            if len(lines) >= words:
                break
    lines += ["0" * (2 * nbytes)] * (words - len(lines))
    raw = bytes.fromhex("".join(lines))
    return np.frombuffer(raw, dtype=np.uint8).reshape(words, nbytes)[:, ::-1].copy()

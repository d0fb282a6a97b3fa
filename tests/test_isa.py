"""The ISA module is the single source of truth: encodings round-trip, widths fit, docs are generated."""

from pathlib import Path

import numpy as np
import pytest

from f8hw import isa
from f8hw.arch import ArchConfig, ArchError, parse_array

DOCS = Path(__file__).resolve().parents[1] / "docs" / "isa.md"


def _random_fields(op, rng):
    return {f.name: int(rng.integers(f.lo, f.hi, endpoint=True)) for f in op.fields}


@pytest.mark.parametrize("op", isa.OPS, ids=lambda op: op.name)
def test_encode_decode_round_trip(op):
    rng = np.random.default_rng(op.code)
    for _ in range(200):
        fields = _random_fields(op, rng)
        word = isa.encode(op.name, **fields)
        assert 0 <= word < 1 << isa.INSTR_BITS
        got_op, got = isa.decode(word)
        assert got_op is op and got == fields


def test_extreme_field_values_round_trip():
    for op in isa.OPS:
        for pick in ("lo", "hi"):
            fields = {f.name: getattr(f, pick) for f in op.fields}
            assert isa.decode(isa.encode(op.name, **fields))[1] == fields


def test_fields_do_not_overlap_and_fit():
    for op in isa.OPS:
        used = 0
        for f, lo in op.layout():
            bits = ((1 << f.width) - 1) << lo
            assert used & bits == 0
            used |= bits
        assert used >> isa.INSTR_BITS == 0
        assert used & ((1 << isa.OPCODE_BITS) - 1) == 0


def test_bad_encodings_are_named_errors():
    with pytest.raises(isa.IsaError, match="npix"):
        isa.encode("LOAD_A", npix=128)
    with pytest.raises(isa.IsaError, match="ih0"):
        isa.encode("LOAD_A", ih0=-2049)
    with pytest.raises(isa.IsaError, match="unknown field"):
        isa.encode("END", foo=1)
    with pytest.raises(isa.IsaError, match="unknown opcode"):
        isa.encode("JUMP")
    with pytest.raises(isa.IsaError, match="illegal opcode 0"):
        isa.decode(0)


def test_program_bytes_round_trip():
    words = [isa.encode("SET", reg=isa.Reg.SHIFT, value=-8), isa.encode("END")]
    data = isa.to_bytes(words)
    assert len(data) == 2 * isa.INSTR_BITS // 8
    assert isa.from_bytes(data) == words
    with pytest.raises(isa.IsaError):
        isa.from_bytes(data[:-1])


def test_docs_isa_md_is_generated_from_the_module():
    assert DOCS.read_text() == isa.isa_markdown(), "docs/isa.md is stale: run python -m f8hw.isa > docs/isa.md"


@pytest.mark.parametrize("text", ["0x4", "16", "100x100", "axb", "4x65", ""])
def test_parse_array_rejects(text):
    with pytest.raises(ArchError, match="array"):
        parse_array(text)


def test_parse_array_accepts():
    assert parse_array("16x16") == (16, 16)
    assert parse_array("1x64") == (1, 64)


@pytest.mark.parametrize("kw", [dict(rows=0), dict(cols=65), dict(a_depth=3), dict(w_depth=0),
                                dict(o_depth=8, rows=16), dict(requant="float"), dict(mem_words=1000)])
def test_arch_config_rejects(kw):
    with pytest.raises(ArchError):
        ArchConfig(**kw)

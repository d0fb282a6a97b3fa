"""f8hw.rtlsim helpers that need no simulator: hex files, the watchdog's cycle bound, cache keys."""

from __future__ import annotations

import numpy as np

from accel_lib import LAYER_KINDS, random_single_layer, small_arch
from f8hw import isa, isasim, rtlsim, testing
from f8hw.rtlsim.simbuild import build_key


def test_hex_roundtrip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    mem = rng.integers(0, 256, size=(37, 4), dtype=np.uint8)
    rtlsim.write_hex_bytes(tmp_path / "m.hex", mem)
    assert np.array_equal(rtlsim.read_hex_prefix(tmp_path / "m.hex", 37, 4), mem)
    assert np.array_equal(rtlsim.read_hex_prefix(tmp_path / "m.hex", 40, 4)[37:], np.zeros((3, 4), np.uint8))
    # byte 0 is the least significant byte of the word
    first = (tmp_path / "m.hex").read_text().splitlines()[0]
    assert int(first, 16) == int.from_bytes(bytes(mem[0]), "little")
    # $writememh-style files with @address lines and x digits
    (tmp_path / "w.hex").write_text("// dump\n@2\n0000000a\nxxxxxxxx\n@0\n00000001\n")
    assert rtlsim.read_hex_words(tmp_path / "w.hex", 5) == [1, 0, 10, 0, 0]
    words = [isa.encode("END"), isa.encode("SET", reg=3, value=-5)]
    rtlsim.write_hex_words(tmp_path / "p.hex", words, isa.INSTR_BITS)
    assert rtlsim.read_hex_words(tmp_path / "p.hex") == words


def test_cycle_bound_covers_isasim(seed):
    """The watchdog's default budget is never below a correct run's cycle count."""
    rng = np.random.default_rng(seed)
    from f8hw.compiler import compile_model
    from f8hw.engines import prepare_memory

    for size in ("2x2", "4x4"):
        arch = small_arch(size)
        for kind in LAYER_KINDS:
            g = random_single_layer(rng, kind, arch.cols)
            c = compile_model(g, arch)
            ref = isasim.run(c.program, prepare_memory(c, testing.random_images(rng, g, 1)), arch)
            assert rtlsim.cycle_bound(c.program, arch) >= ref.cycles, (size, kind)


def test_build_key_depends_on_inputs():
    k = build_key("module a; endmodule", "a", "icarus", False, [])
    assert k == build_key("module a; endmodule", "a", "icarus", False, [])
    assert k != build_key("module a; endmodule ", "a", "icarus", False, [])
    assert k != build_key("module a; endmodule", "a", "icarus", True, [])
    assert k != build_key("module a; endmodule", "a", "icarus", False, ["-DX"])

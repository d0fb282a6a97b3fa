"""ISA simulator against independent implementations: random programs vs the RTL (Amaranth's
simulator here, Verilator below; functional + timing + error codes, random resource masks), and
compiled random networks vs the golden model (bit-exact every layer, no races)."""

from __future__ import annotations

import numpy as np
import pytest

from f8hw import isa, isasim
from f8hw.arch import ArchConfig


E = isa.encode
Reg = isa.Reg


def random_program(rng, c: ArchConfig, n: int, diag: bool = False) -> list[int]:
    """diag: LOAD_A window reuse on from the start (A_DIAG = 1; random STRIDE_W/KW/A_GATHER SETs toggle
    whether it applies)."""
    R, C = c.rows, c.cols
    prog = [E("SET", reg=int(Reg.A_DIAG), value=1), E("SET", reg=int(Reg.STRIDE_W), value=1)] if diag else []
    for _ in range(n):
        k = rng.integers(0, 100)
        mask = int(rng.integers(0, 256))
        if k < 25:
            reg = int(rng.choice([r for r in Reg]))
            lim = {Reg.SHIFT: (-12, 20), Reg.ACC_LSHIFT: (0, 16), Reg.SKIP_LSHIFT: (0, 16), Reg.PAD_W: (0, 3),
                   Reg.KH: (1, 4), Reg.KW: (1, 4), Reg.IN_H: (0, 8), Reg.IN_W: (0, 8), Reg.OUT_W: (1, 6),
                   Reg.STEP_WRAP: (-20, 20), Reg.RQ_MULT: (-3, 4), Reg.PAD_VALUE: (0, 256),
                   Reg.A_GATHER: (-1, C + 2)}.get(reg, (0, 4))
            prog.append(E("SET", reg=int(reg), value=int(rng.integers(*lim))))
        elif k < 30:
            prog.append(E("MARK", slot=int(rng.integers(0, c.mark_depth))))
        elif k < 45:
            tgt = int(rng.integers(0, 3))
            depth = (c.w_depth, 4 * c.b_depth, c.s_depth)[tgt]
            cnt = int(rng.integers(0, 9))
            dst = int(rng.integers(0, depth - cnt + 1))
            prog.append(E("LOAD", mask=mask, target=tgt, dst=dst, count=cnt, addr=int(rng.integers(0, 400)),
                          stride=int(rng.integers(-3, 8))))
        elif k < 60:
            ncb = int(rng.integers(1, 3))
            prog.append(E("LOAD_A", mask=mask, dst=int(rng.integers(0, 8)), npix=int(rng.integers(1, R + 1)),
                          ncb=ncb, ih0=int(rng.integers(-2, 5)), iw0=int(rng.integers(-2, 5)),
                          ow0=int(rng.integers(0, 5)), addr=int(rng.integers(60, 300))))
        elif k < 85:
            mode = int(rng.integers(0, 3))
            nl = int(rng.integers(1, 5))
            steps = nl * C if mode == 0 else nl
            prog.append(E("COMPUTE", mask=mask, mode=mode, acc=int(rng.integers(0, 2)), last=int(rng.integers(0, 2)),
                          a_base=int(rng.integers(0, c.a_depth - nl + 1)),
                          w_base=int(rng.integers(0, c.w_depth - steps + 1)), nlines=nl,
                          b_src=int(rng.integers(0, c.b_depth)), s_src=int(rng.integers(0, c.s_depth - R + 1)),
                          o_dst=int(rng.integers(0, c.o_depth - R + 1))))
        else:
            cnt = int(rng.integers(0, 5))
            prog.append(E("STORE", mask=mask, wide=int(rng.integers(0, 2)), src=int(rng.integers(0, c.o_depth - cnt + 1)),
                          count=cnt, addr=int(rng.integers(300, 480)), stride=int(rng.integers(-2, 6))))
    return prog + [E("END")]


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_match_rtl_amaranth(seed):
    """Random programs with random resource masks on the RTL in Amaranth's simulator (small
    configurations, both requantizers): the same error code, or the same cycles, busy, stall and MARK
    stamps, and the same memory whenever the simulator finds no race."""
    from f8hw.hw.harness import run_program

    rng = np.random.default_rng(seed)
    rows, cols = [(2, 2), (4, 4), (3, 2), (1, 3), (4, 1)][seed % 5]
    c = ArchConfig(rows=rows, cols=cols, a_depth=32, w_depth=64, b_depth=4, s_depth=8, o_depth=8,
                   mem_words=512, imem_depth=1024, mark_depth=4, requant="dyadic" if seed % 7 == 3 else "shift")
    mem = rng.integers(0, 256, size=(c.mem_words, cols)).astype(np.uint8)
    prog = random_program(rng, c, 120, diag=seed % 2 == 1)
    hw = run_program(c, prog, mem)
    try:
        res = isasim.run(prog, mem, c, check_races=False)
    except isasim.IsaSimError as e:
        assert hw.error, f"isasim: {e}, RTL: no error"
        assert e.code == hw.error_code, (str(e), hw.error_code)
        return
    assert not hw.error, f"RTL error {hw.error_code}, isasim none"
    assert (res.cycles, res.busy, res.stall) == (hw.cycles, hw.busy, hw.stall)
    assert res.marks == hw.marks
    try:
        isasim.run(prog, mem, c)
    except isasim.IsaSimError as e:
        assert e.code == isa.ErrorCode.RACE
        return
    np.testing.assert_array_equal(res.memory[:c.mem_words], hw.mem)


compiler = pytest.importorskip("f8hw.compiler", reason="the compiler (f8hw.compiler) is not available")


@pytest.mark.parametrize("seed,arch", [(0, (16, 16)), (1, (4, 4)), (2, (8, 4)), (3, (3, 5)), (4, (16, 8))])
def test_compiled_random_networks_bit_exact(seed, arch):
    from f8hw import golden
    from f8hw.flow.run import compare_layers
    from f8hw.engines import get_engine
    from f8hw.testing import random_conv_graph, random_images

    rng = np.random.default_rng(seed)
    g = random_conv_graph(rng)
    a = ArchConfig(rows=arch[0], cols=arch[1])
    comp = compiler.compile_model(g, a, batch=2)
    imgs = random_images(rng, g, 2)
    res = get_engine("isa").run(comp, imgs)   # race checking on: the compiler's masks must be sufficient
    gold = golden.run(g, imgs)
    bad = [(layer.name, m) for layer, ok, m in compare_layers(comp, res.memory, gold, 2) if ok is False]
    assert not bad
    assert res.cycles > 0 and res.busy <= res.cycles


def _have_verilator() -> bool:
    try:
        from f8hw import rtlsim  # noqa: F401
        from f8hw.toolenv import verilator_root

        return bool(verilator_root())
    except Exception:
        return False


@pytest.mark.skipif(not _have_verilator(), reason="Verilator / f8hw.rtlsim not available")
def test_random_programs_match_rtl():
    """Random programs with random resource masks on the generated RTL (Verilator): the same cycles,
    busy, stall and MARK stamps always; the same memory whenever the simulator finds no race."""
    from f8hw import rtlsim

    c = ArchConfig(rows=4, cols=4, a_depth=32, w_depth=64, b_depth=4, s_depth=8, o_depth=8,
                   mem_words=512, imem_depth=1024, mark_depth=4)
    checked = 0
    for seed in range(12):
        rng = np.random.default_rng(1000 + seed)
        mem = rng.integers(0, 256, size=(c.mem_words, 4)).astype(np.uint8)
        prog = random_program(rng, c, 40, diag=seed % 2 == 1)
        try:
            a = isasim.run(prog, mem, c, check_races=False)
        except isasim.IsaSimError:
            continue
        try:
            isasim.run(prog, mem, c)
            race = False
        except isasim.IsaSimError as e:
            assert e.code == isa.ErrorCode.RACE
            race = True
        b = rtlsim.simulate(c, prog, mem, "verilator", read_words=c.mem_words)
        assert (a.cycles, a.busy, a.stall) == (b.cycles, b.busy, b.stall), seed
        assert a.marks == {k: v for k, v in b.marks.items() if k in a.marks}, seed
        if not race:
            np.testing.assert_array_equal(a.memory, b.memory, err_msg=f"seed {seed}")
            checked += 1
    assert checked >= 3

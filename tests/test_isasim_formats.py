"""Flexible-format builds (ArchConfig.formats): the compiler lowers mixed-format layers and the ISA
simulator runs them bit-exactly against the golden model (every format pair, conv / depthwise / linear,
residuals in every format, maxpool and global avgpool on FP8, 64-bit biases and logits, small arrays);
INT8 programs and cycles are unchanged; unsupported formats are one-line errors; the RTL builds them."""

import numpy as np
import pytest

import f8hw
from f8hw import isa, isasim
from f8hw.arch import ArchConfig, ArchError
from f8hw.cli import main
from f8hw.compiler import CompileError, Compiled, compile_model
from f8hw.ir import Node
from f8hw.numerics import TensorFormat
from f8hw.testing import float_layer, mixed_layer_graph, random_images
from compiler_harness import check_model

FLEX = ("int8", "e2m5", "e3m4", "e4m3")
KINDS = ["int", "e2m5", "e3m4", "e4m3"]
OUTLIER = "models/flexible/outlier.pt"


def arch(rows, cols, **kw) -> ArchConfig:
    return ArchConfig(rows=rows, cols=cols, formats=FLEX, **kw)


def x_format(rng, kind: str) -> TensorFormat:
    if kind == "int":
        return TensorFormat(int(rng.integers(3, 7)), bool(rng.integers(2)))
    return TensorFormat(int(rng.integers(0, 8)), bool(rng.integers(2)), 8, kind)


def out_formats(rng) -> list[TensorFormat]:
    """An INT8 output and an FP8 (+ReLU or signed) one: both lanes, and the re-drain of a second format."""
    fp8 = KINDS[1 + int(rng.integers(3))]
    return [TensorFormat(int(rng.integers(2, 7)), bool(rng.integers(2))),
            TensorFormat(int(rng.integers(0, 6)), bool(rng.integers(2)), 8, fp8)]


def run_checked(g, a: ArchConfig, rng, n: int = 2) -> dict:
    c = compile_model(g, a, batch=n)
    assert all(c.readable(r) for layer in c.layers for r in layer.refs)  # every layer is compared
    return check_model(g, c, random_images(rng, g, n))


@pytest.mark.parametrize("op", ["conv", "depthwise", "linear"])
@pytest.mark.parametrize("x_kind", KINDS)
def test_every_format_pair_is_bit_exact(op, x_kind):
    rng = np.random.default_rng(10 * KINDS.index(x_kind) + len(op))
    for w_kind in KINDS:
        for rows, cols in [(2, 2), (4, 4)]:
            g = mixed_layer_graph(rng, op, x_format(rng, x_kind), w_kind, out_formats(rng), channels=5, size=4)
            run_checked(g, arch(rows, cols), rng)


@pytest.mark.parametrize("op", ["conv", "depthwise"])  # (a linear layer's residual is not in the output layout)
@pytest.mark.parametrize("skip_kind", KINDS)
def test_residual_in_every_format_is_bit_exact(op, skip_kind):
    rng = np.random.default_rng(len(op) * 7 + KINDS.index(skip_kind))
    for x_kind, w_kind in [("int", "int"), ("e4m3", "e3m4"), ("e2m5", "e4m3"), (skip_kind, skip_kind)]:
        g = mixed_layer_graph(rng, op, x_format(rng, x_kind), w_kind, out_formats(rng),
                              skip_fmt=x_format(rng, skip_kind), channels=3, size=4)
        run_checked(g, arch(4, 4), rng)


@pytest.mark.parametrize("kind", KINDS)
def test_pools_and_64_bit_logits(kind):
    """maxpool (padded) on each format passes codes through, GAP sums integer forms, 64-bit raw logits."""
    rng = np.random.default_rng(20 + KINDS.index(kind))
    x = x_format(rng, kind)
    g = mixed_layer_graph(rng, "conv", TensorFormat(5, True), "e4m3", [x], channels=5, size=5)
    gap_out = TensorFormat(4, True, 8, "e2m5")
    g.nodes += [Node("pool", "maxpool", ["layer"], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1]), [x]),
                Node("gap", "avgpool_global", ["pool"], {"shift": 2}, [gap_out]),
                Node("flat", "flatten", ["gap"], {}, [gap_out])]
    fc = float_layer("fc", "linear", ["flat"], gap_out, rng.normal(0, 1, (3, 5)), [0.1, -0.2, 0.3], "e4m3", [])
    fc.outputs = [TensorFormat(gap_out.unit + TensorFormat(fc.attrs["w_fl"], True, 8, "e4m3").unit, True, 64)]
    g.nodes.append(fc)
    g.output = "fc"
    g.validate()
    for rows, cols in [(2, 2), (4, 4)]:
        run_checked(g, arch(rows, cols), rng, n=3)


def test_64_bit_bias_in_two_entries(tmp_path):
    """A bias beyond int32 (BIAS64, two B entries per co-tile, groups of b_depth / 2) reaches the raw output."""
    rng = np.random.default_rng(30)
    g = mixed_layer_graph(rng, "conv", TensorFormat(2, False, 8, "e3m4"), "e4m3", [TensorFormat(0, True)],
                          channels=7, size=3)
    layer = g.node("layer")
    unit = g.format("pre").unit + TensorFormat(layer.attrs["w_fl"], True, 8, "e4m3").unit
    layer.outputs = [TensorFormat(unit, True, 64)]
    layer.bias = rng.integers(-(1 << 40), 1 << 40, size=layer.bias.shape).astype(np.int64)
    g.validate()
    a = arch(2, 2, b_depth=4)
    c = compile_model(g, a)
    sets = [isa.decode(w)[1] for w in c.program if isa.decode(w)[0].name == "SET"]
    assert {"reg": int(isa.Reg.BIAS64), "value": 1} in sets
    imgs = random_images(rng, g, 1)
    check_model(g, c, imgs)
    c.save(tmp_path / "c")
    back = Compiled.load(tmp_path / "c")  # the formats survive symbols.json
    assert back.arch == a and back.arch.formats == FLEX and back.program == c.program
    check_model(g, back, imgs)


def test_outlier_model_bit_exact_every_layer():
    run = f8hw.simulate(f8hw.compile(OUTLIER, arch=arch(4, 4)), engine="isa")
    assert run.bit_exact and [layer.bit_exact for layer in run.layers] == [True] * len(run.layers)
    assert {layer.name for layer in run.layers} >= {"features.3", "head.fc"}


def test_int8_programs_and_cycles_unchanged_on_a_flexible_build():
    """An INT8 model compiles to the same instruction words on int8 and flexible builds: no format SET,
    hence the same cycles (the ISA simulator agrees on cycles and memory)."""
    rng = np.random.default_rng(40)
    g = mixed_layer_graph(rng, "conv", TensorFormat(4, True), "int", [TensorFormat(3, False)],
                          skip_fmt=TensorFormat(5, True), channels=5, size=4)
    plain, flex = compile_model(g, ArchConfig(rows=4, cols=4)), compile_model(g, arch(4, 4))
    assert plain.program == flex.program and np.array_equal(plain.memory, flex.memory)
    imgs = random_images(rng, g, 1)
    r1, r2 = check_model(g, plain, imgs), check_model(g, flex, imgs)
    assert r1["cycles"] == r2["cycles"] and np.array_equal(r1["memory"], r2["memory"])
    assert not any(isa.decode(w)[0].name == "SET" and isa.decode(w)[1]["reg"] in isa.FORMAT_REGS
                   for w in flex.program)
    assert ArchConfig().to_dict() == ArchConfig(formats=["int8"]).to_dict() and "formats" not in ArchConfig().to_dict()


def test_fp8_layers_keep_the_int8_cycle_model():
    """The same layer shape in INT8 x INT8 and in E4M3 x E3M4: the same non-SET instructions, a few more
    SETs (the format registers), and cycles that differ by at most those SETs' issue slots (here hidden by stalls: equal)."""
    rng = np.random.default_rng(41)
    runs = []
    for x, w in [(TensorFormat(4, True), "int"), (TensorFormat(4, True, 8, "e4m3"), "e3m4")]:
        g = mixed_layer_graph(rng, "conv", x, w, [TensorFormat(3, True)], channels=5, size=4)
        c = compile_model(g, arch(4, 4))
        mem = c.memory.copy()
        c.write_inputs(mem, random_images(rng, g, 1))
        ops = [isa.decode(w) for w in c.program]
        n_fmt = sum(op.name == "SET" and f["reg"] in isa.FORMAT_REGS for op, f in ops)
        body = [w for w, (op, _) in zip(c.program, ops) if op.name != "SET"]  # (SET values: other shifts)
        runs.append((isasim.run(c.program, mem, c.arch).cycles, body, n_fmt))
    (c_int, body_int, n_int), (c_fp8, body_fp8, n_fp8) = runs
    assert n_int == 0 and n_fp8 >= 2 and body_int == body_fp8
    assert c_int <= c_fp8 <= c_int + n_fp8 and c_int == c_fp8


def test_unsupported_format_is_a_compile_error_naming_layer_and_format(capsys):
    with pytest.raises(CompileError, match=r"^layer 'features.1': activation format e4m3 is not supported by this "
                       r"accelerator \(built with --formats int8,e2m5\)$"):
        f8hw.compile(OUTLIER, arch=ArchConfig(rows=4, cols=4, formats=("int8", "e2m5")))
    rng = np.random.default_rng(50)
    g = mixed_layer_graph(rng, "conv", TensorFormat(4, True), "e3m4", [TensorFormat(2, True)])
    with pytest.raises(CompileError, match=r"^layer 'layer': weight format e3m4 is not supported by this "
                       r"accelerator \(built with --formats int8,e4m3\)$"):
        compile_model(g, ArchConfig(rows=4, cols=4, formats=("int8", "e4m3")))
    assert main(["sim", OUTLIER, "--engine", "isa", "--array", "4x4", "--formats", "int8,e2m5,e3m4"]) == 3
    err = capsys.readouterr().err.strip()
    assert "layer 'features.1': activation format e4m3 is not supported" in err and len(err.splitlines()) == 1


def test_build_writes_flexible_verilog(tmp_path):
    """`f8hw build --formats` writes the flexible accelerator, deterministically (the RTL runs: sim/test_accel_formats.py)."""
    import json

    argv = ["build", "--array", "2x2", "--formats", ",".join(FLEX)]
    assert main([*argv, "-o", str(tmp_path / "a")]) == 0 and main([*argv, "-o", str(tmp_path / "b")]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files and all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in files)
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["parameters"]["formats"] == list(FLEX)


def test_format_set_validation():
    with pytest.raises(ArchError, match=r"unknown PE format 'e9m9'"):
        ArchConfig(formats=("int8", "e9m9"))
    with pytest.raises(ArchError, match=r"77-bit accumulator"):
        ArchConfig(formats=("int8", "e5m2"))
    assert arch(2, 2).acc_bits == 49 and ArchConfig(formats=("int8", "e2m5", "e3m4")).acc_bits == 34
    assert ArchConfig().acc_bits == 32
    assert main(["compile", OUTLIER, "--formats", "e4m3,int8"]) != 0


def test_a_format_register_naming_no_format_is_an_illegal_compute():
    a = ArchConfig(rows=2, cols=2, formats=("int8", "e4m3"), a_depth=8, w_depth=8, mem_words=64)
    E = isa.encode
    prog = [E("SET", reg=int(isa.Reg.W_FMT), value=2), E("COMPUTE", mode=0, nlines=1), E("END")]
    with pytest.raises(isasim.IsaSimError, match="W_FMT 2 names no format") as e:
        isasim.run(prog, np.zeros((64, 2), np.uint8), a)
    assert e.value.code == isa.ErrorCode.OPCODE
    # an INT8 build has no format registers: the same SET is ignored
    isasim.run(prog, np.zeros((64, 2), np.uint8), ArchConfig(rows=2, cols=2, a_depth=8, w_depth=8, mem_words=64))


@pytest.mark.parametrize("kind", KINDS[1:])
def test_decode_table_is_to_integer_on_finite_codes(kind):
    from f8hw.isasim.flex import decode_table
    from f8hw.numerics import finite_mask, split, to_integer

    t, fin = decode_table(kind), finite_mask(kind)
    c = np.arange(256)
    assert np.array_equal(t[fin], to_integer(c[fin], kind))
    sig, ex = split(c[fin], kind)
    assert np.array_equal(t[fin], sig << ex)
    assert (t[~fin] != 0).all()  # NaN/Inf bit patterns decode like normals (what the PE computes)


def test_wide64_store_writes_eight_planes():
    """STORE wide64: bytes 0..7 of each 64-bit lane, byte-planar; walk counts 8 words per line."""
    a = ArchConfig(rows=2, cols=2, formats=("int8", "e4m3"), a_depth=8, w_depth=8, o_depth=4, s_depth=4,
                   mem_words=64)
    E = isa.encode
    st = E("STORE", wide=1, wide64=1, src=0, count=2, addr=8, stride=8)
    assert [w.store_words for *_, w in isa.walk([st], 2)] == [16]
    # O lines holding 64-bit values, as a raw drain of a wide accumulator leaves them
    from f8hw.isasim.machine import Machine
    from f8hw.isasim.store import store

    m = Machine(np.zeros((64, 2), np.uint8), a, check_races=False)
    v = np.array([[-(1 << 40) - 3, 1 << 45], [5, -1]], np.int64)
    m.O[0:2] = v
    store(m, 0, isa.decode(st)[1], 1)
    for line in range(2):
        planes = m.mem[8 + 8 * line: 16 + 8 * line].astype(np.uint64)  # (8 planes, 2 lanes)
        got = sum(planes[j] << np.uint64(8 * j) for j in range(8)).view(np.int64)
        assert np.array_equal(got, v[line])


def test_wide64_is_ignored_on_an_int8_build():
    """An INT8 build's RTL has no 64-bit lanes and ignores STORE.wide64: the ISA simulator stores its 4
    int32 planes and counts 4 words per line there, 8 on a flexible build."""
    E = isa.encode
    prog = [E("STORE", wide=1, wide64=1, src=0, count=2, addr=8, stride=8), E("END")]
    kw = dict(rows=2, cols=2, a_depth=8, w_depth=8, o_depth=4, s_depth=4, mem_words=64)
    ends = {}
    for formats in (("int8",), ("int8", "e4m3")):
        r = isasim.run(prog, np.zeros((64, 2), np.uint8), ArchConfig(**kw, formats=formats))
        ends[formats] = r.cycles
    assert ends[("int8", "e4m3")] - ends[("int8",)] == 2 * (8 - 4)


@pytest.mark.parametrize("seed", range(12))
def test_random_int8_programs_equal_on_int8_and_flexible_builds(seed):
    """Random INT8 programs (format registers left at 0): the flexible path (wide accumulator, wide lanes)
    gives exactly the INT8 build's error, or its cycles, MARK stamps and memory."""
    from test_isasim_random import random_program

    rng = np.random.default_rng(100 + seed)
    rows, cols = [(2, 2), (4, 4), (3, 2)][seed % 3]
    kw = dict(rows=rows, cols=cols, a_depth=32, w_depth=64, b_depth=4, s_depth=8, o_depth=8, mem_words=512,
              imem_depth=1024, mark_depth=4)
    prog = [w for w in random_program(rng, ArchConfig(**kw), 120, diag=seed % 2 == 1)
            if not (isa.decode(w)[0].name == "SET" and isa.decode(w)[1]["reg"] in isa.FORMAT_REGS)]
    mem = rng.integers(0, 256, size=(512, cols)).astype(np.uint8)
    out = []
    for a in (ArchConfig(**kw), ArchConfig(formats=FLEX, **kw)):
        try:
            r = isasim.run(prog, mem, a, check_races=False)
            out.append((r.cycles, r.marks, r.memory[:512].tobytes()))
        except isasim.IsaSimError as e:
            out.append((e.code, e.pc))
    assert out[0] == out[1]


@pytest.mark.parametrize("seed", range(6))
def test_random_programs_with_random_formats_stop_cleanly(seed):
    """Random programs with random (in-range) format registers on a flexible build: they run or stop with
    a defined error code, never a Python exception (every byte decodes, every SHIFT is handled)."""
    from test_isasim_random import random_program

    rng = np.random.default_rng(200 + seed)
    kw = dict(rows=2, cols=2, a_depth=32, w_depth=64, b_depth=4, s_depth=8, o_depth=8, mem_words=512,
              imem_depth=1024, mark_depth=4)
    prog = random_program(rng, ArchConfig(**kw), 150)
    fmt = [isa.encode("SET", reg=int(r), value=int(rng.integers(0, len(FLEX))))
           for r in (isa.Reg.A_FMT, isa.Reg.W_FMT, isa.Reg.SKIP_FMT, isa.Reg.OUT_FMT)]
    prog = [w if not (isa.decode(w)[0].name == "SET" and isa.decode(w)[1]["reg"] in isa.FORMAT_REGS)
            else fmt[int(rng.integers(4))] for w in prog]
    mem = rng.integers(0, 256, size=(512, 2)).astype(np.uint8)
    try:
        r = isasim.run(fmt + prog, mem, ArchConfig(formats=FLEX, **kw), check_races=False)
        assert r.cycles > 0
    except isasim.IsaSimError as e:
        assert e.code in (isa.ErrorCode.OPCODE, isa.ErrorCode.SPAD, isa.ErrorCode.MEM)


def test_cli_sim_and_compile_with_formats(tmp_path, capsys):
    import json

    assert main(["sim", OUTLIER, "--engine", "isa", "--array", "4x4", "--formats", ",".join(FLEX), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bit_exact"] is True and all(layer["bit_exact"] is True for layer in out["layers"])
    assert main(["compile", OUTLIER, "--array", "4x4", "--formats", ",".join(FLEX), "-o", str(tmp_path / "c")]) == 0
    back = Compiled.load(tmp_path / "c")
    assert back.arch.formats == FLEX and back.symbols["buffers"]["head.fc"]["planes"] == 8

"""Mixed-format layers: the golden model equals exact rational arithmetic (fractions) on the same codes for
every activation x weight format pair; model files carry formats; bad formats are one-line errors."""

import itertools
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch

from f8hw import golden
from f8hw.arch import ArchConfig
from f8hw.cli import main
from f8hw.compiler import CompileError, compile_model
from f8hw.errors import AccumulatorOverflowError, ModelFileError
from f8hw.ir import Graph, Node, graph_to_state
from f8hw.modelfile import load_model, save_model
from f8hw.numerics import FORMATS, TensorFormat
from f8hw.testing import float_layer, mixed_layer_graph, random_images

KINDS = ["int", *FORMATS]
ML = {"e3m4": ml_dtypes.float8_e3m4, "e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2}


def value_table(kind: str) -> list:
    """Fraction value of every code (None for NaN/Inf), from ml_dtypes, or E2M5's definition."""
    if kind in ML:
        vals = np.arange(256, dtype=np.uint8).view(ML[kind]).astype(np.float64)
        return [Fraction(float(v)) if np.isfinite(v) else None for v in vals]
    return [(-1 if c & 0x80 else 1) * ((c & 31) if c & 0x60 == 0 else (32 + (c & 31)) << (((c >> 5) & 3) - 1))
            * Fraction(1, 32) for c in range(256)]


def real(stored, fmt: TensorFormat) -> np.ndarray:
    """Exact real values (object array of Fractions) of stored INT values or FP8 codes."""
    scale = Fraction(1, 2**fmt.fl) if fmt.fl >= 0 else Fraction(2 ** -fmt.fl)
    if fmt.kind == "int":
        return np.vectorize(lambda v: Fraction(int(v)) * scale, otypes=[object])(stored)
    t = value_table(fmt.kind)
    return np.vectorize(lambda c: t[int(c)] * scale, otypes=[object])(stored)


def ref_quantize(r: Fraction, fmt: TensorFormat) -> int:
    """The stored value of fmt nearest to r: INT round half even + clamp; FP8 nearest value, ties to the
    even code, saturating; ReLU first for an unsigned FP8 format; raw outputs must be exact."""
    scaled = r * Fraction(2) ** fmt.fl
    if fmt.bits != 8:
        assert scaled.denominator == 1
        return int(scaled)
    if fmt.kind == "int":
        lo, hi = fmt.qrange
        return min(hi, max(lo, round(scaled)))
    if not fmt.signed:
        scaled = max(scaled, Fraction(0))
    t = value_table(fmt.kind)
    cands = [(v, c) for c, v in enumerate(t[:128]) if v is not None]
    a = min(abs(scaled), max(v for v, _ in cands))
    v, c = min(cands, key=lambda vc: (abs(vc[0] - a), vc[1] & 1))
    return c | (0x80 if scaled < 0 and v != 0 else 0)


def ref_layer(graph: Graph, tensors: dict, name: str) -> list[np.ndarray]:
    """Exact rational conv2d/linear (+ bias, + skip), quantized to each output format."""
    node = graph.node(name)
    fx = graph.format(node.inputs[0])
    x = real(tensors[node.inputs[0]], fx)
    w = real(node.weight, TensorFormat(node.attrs["w_fl"], True, 8, node.attrs.get("w_kind", "int")))
    unit = fx.unit + TensorFormat(node.attrs["w_fl"], True, 8, node.attrs.get("w_kind", "int")).unit
    b = np.array([Fraction(int(v), 2**unit) if unit >= 0 else Fraction(int(v) * 2 ** -unit) for v in node.bias],
                 dtype=object)
    if node.op == "linear":
        out = x.dot(w.T) + b
    else:
        (ph, pw), g = node.attrs["padding"], node.attrs["groups"]
        n, c, h, wd = x.shape
        xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), Fraction(0), dtype=object)
        xp[:, :, ph:ph + h, pw:pw + wd] = x
        cout, cg, kh, kw = w.shape
        out = np.full((n, cout, h + 2 * ph - kh + 1, wd + 2 * pw - kw + 1), Fraction(0), dtype=object)
        for co, ci, i, j in itertools.product(range(cout), range(cg), range(kh), range(kw)):
            ch = (co // (cout // g)) * cg + ci
            out[:, co] += xp[:, ch, i:i + out.shape[2], j:j + out.shape[3]] * w[co, ci, i, j]
        out = out + b.reshape(1, -1, 1, 1)
    if len(node.inputs) == 2:
        out = out + real(tensors[node.inputs[1]], graph.format(node.inputs[1]))
    return [np.vectorize(lambda r: ref_quantize(r, f), otypes=[np.int64])(out) for f in node.outputs]


def out_formats(rng) -> list[TensorFormat]:
    """An INT8 and an FP8 (+ReLU) output: both requantizers on every layer."""
    fp8 = list(FORMATS)[int(rng.integers(4))]
    return [TensorFormat(int(rng.integers(2, 7)), True), TensorFormat(int(rng.integers(0, 6)), False, 8, fp8)]


def x_format(rng, kind: str) -> TensorFormat:
    if kind == "int":
        return TensorFormat(int(rng.integers(3, 7)), bool(rng.integers(2)))
    return TensorFormat(int(rng.integers(0, 8)), bool(rng.integers(2)), 8, kind)


def check_graph(graph: Graph, rng, n: int = 2) -> None:
    t = golden.run(graph, random_images(rng, graph, n))
    for ref, want in zip(graph.node("layer").refs(), ref_layer(graph, t, "layer")):
        assert np.array_equal(t[ref], want), ref


@pytest.mark.parametrize("op", ["conv", "depthwise", "linear"])
@pytest.mark.parametrize("x_kind", KINDS)
def test_every_format_pair_matches_rationals(op, x_kind):
    rng = np.random.default_rng(10 * KINDS.index(x_kind) + len(op))
    for w_kind in KINDS:
        g = mixed_layer_graph(rng, op, x_format(rng, x_kind), w_kind, out_formats(rng),
                              channels=3, size=4)
        check_graph(g, rng)


@pytest.mark.parametrize("op", ["conv", "linear"])
@pytest.mark.parametrize("skip_kind", KINDS)
def test_residual_in_every_format_matches_rationals(op, skip_kind):
    rng = np.random.default_rng(len(op) * 7 + KINDS.index(skip_kind))
    for x_kind, w_kind in [("int", "int"), ("e4m3", "e3m4"), ("e2m5", "e5m2"), (skip_kind, skip_kind)]:
        skip = x_format(rng, skip_kind)
        g = mixed_layer_graph(rng, op, x_format(rng, x_kind), w_kind, out_formats(rng),
                              skip_fmt=skip, channels=3, size=4)
        check_graph(g, rng)


def test_pools_and_64_bit_logits_on_fp8():
    """maxpool compares FP8 values and passes codes through; avgpool sums integer forms; a 64-bit raw output."""
    rng = np.random.default_rng(11)
    e4 = TensorFormat(3, True, 8, "e4m3")
    g = mixed_layer_graph(rng, "conv", TensorFormat(5, True), "e4m3", [e4], channels=3, size=4)
    gap_out = TensorFormat(4, True, 8, "e2m5")
    fc_x = gap_out.unit
    g.nodes += [Node("pool", "maxpool", ["layer"], dict(kernel=[2, 2], stride=[2, 2], padding=[1, 1]), [e4]),
                Node("gap", "avgpool_global", ["pool"], {"shift": 2}, [gap_out]),
                Node("flat", "flatten", ["gap"], {}, [gap_out])]
    fc = float_layer("fc", "linear", ["flat"], gap_out, rng.normal(0, 1, (2, 3)), [0.1, -0.2], "e5m2", [])
    fc.outputs = [TensorFormat(fc_x + fc.attrs["w_fl"] + FORMATS["e5m2"].q, True, 64)]
    g.nodes.append(fc)
    g.output = "fc"
    g.validate()
    t = golden.run(g, random_images(rng, g, 3))
    x = real(t["layer"], e4)
    pooled = np.array(t["pool"])
    for n, c, i, j in itertools.product(range(3), range(3), range(3), range(3)):
        window = x[n, c, max(2 * i - 1, 0):2 * i + 1, max(2 * j - 1, 0):2 * j + 1]
        assert real(pooled[n, c, i, j], e4) == max(window.flat)
    s = real(t["pool"], e4).sum(axis=(2, 3)) / 4
    assert np.array_equal(t["gap"].reshape(3, 3), np.vectorize(lambda r: ref_quantize(r, gap_out))(s))
    assert t["fc"].dtype == np.int64
    assert np.array_equal(t["fc"], ref_layer(g, t, "fc")[0])


def test_model_file_round_trip_and_old_files(tmp_path):
    rng = np.random.default_rng(3)
    g = mixed_layer_graph(rng, "conv", TensorFormat(2, False, 8, "e3m4"), "e4m3",
                          [TensorFormat(3, False, 8, "e2m5")], skip_fmt=TensorFormat(5, True))
    save_model(g, tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["version"] == 2 and state["graph"]["nodes"][2]["weight"].dtype == torch.uint8
    assert state["graph"]["nodes"][2]["bias"].dtype == torch.int64
    g2, _ = load_model(tmp_path / "m.pt")
    assert g2.format("pre").kind == "e3m4" and g2.node("layer").attrs["w_kind"] == "e4m3"
    images = random_images(rng, g, 2)
    a, b = golden.run(g, images), golden.run(g2, images)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # an INT8 graph is still written as IR v1 exactly: version 1, no "kind" keys, int8 weights, int32 biases
    from f8hw.flow.model import bundled_path

    old = torch.load(bundled_path("resnet"), weights_only=True)
    og, _ = load_model(bundled_path("resnet"))
    save_model(og, tmp_path / "old.pt")
    new = torch.load(tmp_path / "old.pt", weights_only=True)
    assert new["version"] == old["version"] == 1
    for n0, n1 in zip(old["graph"]["nodes"], new["graph"]["nodes"]):
        assert n0["outputs"] == n1["outputs"] and n0["attrs"] == n1["attrs"]
        for k in ("weight", "bias"):
            assert (n0[k] is None and n1[k] is None) or (n0[k].dtype == n1[k].dtype and torch.equal(n0[k], n1[k]))


def corrupt(tmp_path, edit):
    rng = np.random.default_rng(4)
    g = mixed_layer_graph(rng, "conv", TensorFormat(2, True, 8, "e4m3"), "e5m2", [TensorFormat(3, True)])
    state = {"format": "f8hw-model", "version": 2, "graph": graph_to_state(g), "meta": {}}
    edit(state["graph"]["nodes"])
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError) as e:
        load_model(tmp_path / "bad.pt")
    msg = str(e.value)
    assert "\n" not in msg and "bad.pt" in msg
    return msg


def test_bad_formats_in_model_files_are_one_line_errors(tmp_path):
    def weight_code(code):
        def edit(nodes):
            w = nodes[2]["weight"].clone()
            w.view(-1)[0] = code
            nodes[2]["weight"] = w
        return edit

    assert "node 'pre': output 0: format 'kind' must be one of int, e2m5, e3m4, e4m3, e5m2, got 'e6m1'" in corrupt(
        tmp_path, lambda n: n[1]["outputs"][0].update(kind="e6m1"))
    assert "node 'layer': weight holds code 0x7f, not a finite e5m2 value" in corrupt(tmp_path, weight_code(0x7F))
    assert "node 'layer': weight holds code 0xfc, not a finite e5m2 value" in corrupt(tmp_path, weight_code(0xFC))
    assert "node 'layer': attr 'w_kind' must be one of int, e2m5, e3m4, e4m3, e5m2, got 'fp8'" in corrupt(tmp_path, lambda n: n[2]["attrs"].update(
        w_kind="fp8"))
    assert "node 'pre': output 0: format 'fl' must be an int, got True" in corrupt(
        tmp_path, lambda n: n[1]["outputs"][0].update(fl=True))
    assert "node 'pre': output 0: format 'fl' must be an int, got 2.0" in corrupt(
        tmp_path, lambda n: n[1]["outputs"][0].update(fl=2.0))
    assert "node 'pre': output 0: fl 40 out of range -16..31 for e4m3 8-bit" in corrupt(
        tmp_path, lambda n: n[1]["outputs"][0].update(fl=40))
    assert "node 'layer': w_fl -17 out of range -16..31 for e5m2 weights" in corrupt(
        tmp_path, lambda n: n[2]["attrs"].update(w_fl=-17))
    assert "node 'pre': output 0: e4m3 tensors are 8-bit, not 32-bit" in corrupt(
        tmp_path, lambda n: n[1]["outputs"][0].update(bits=32))


def test_a_layer_that_cannot_accumulate_exactly_names_node_and_formats():
    e5 = TensorFormat(0, True, 8, "e5m2")  # E5M2 max x E5M2 max is ~2^63.6: two such terms overflow 64 bits
    g = mixed_layer_graph(np.random.default_rng(5), "linear", e5, "e5m2", [TensorFormat(0, True, 8, "e5m2")])
    layer = g.node("layer")
    layer.weight = np.full_like(layer.weight, 0x7B)  # max finite e5m2
    with pytest.raises(AccumulatorOverflowError, match=r"^node 'layer': accumulator can reach \d+ in output "
                       r"channel 0, exceeding the 64-bit exact accumulator of activation e5m2 x weight e5m2$"):
        g.validate()


def test_accelerator_rejects_fp8_cleanly(tmp_path, capsys):
    rng = np.random.default_rng(6)
    g = mixed_layer_graph(rng, "conv", TensorFormat(4, True), "int", [TensorFormat(2, False, 8, "e4m3")])
    with pytest.raises(CompileError, match=r"^layer 'layer': activation format e4m3 is not supported by this "
                       r"accelerator \(built with --formats int8\)$"):
        compile_model(g, ArchConfig(rows=4, cols=4))
    g2 = mixed_layer_graph(rng, "conv", TensorFormat(4, True), "e3m4", [TensorFormat(2, True)])
    with pytest.raises(CompileError, match=r"^layer 'layer': weight format e3m4 is not supported"):
        compile_model(g2, ArchConfig(rows=4, cols=4))
    save_model(g, tmp_path / "fp8.pt")
    assert main(["sim", str(tmp_path / "fp8.pt"), "--engine", "isa", "--array", "4x4"]) == 3  # a compile error
    err = capsys.readouterr().err
    assert "activation format e4m3 is not supported by this accelerator (built with --formats int8)" in err
    assert len(err.strip().splitlines()) == 1


def test_inspect_shows_formats(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.setenv("COLUMNS", "200")  # no wrapping of the table's cells
    g = mixed_layer_graph(np.random.default_rng(7), "conv", TensorFormat(4, False, 8, "e4m3"), "e2m5",
                          [TensorFormat(2, True), TensorFormat(1, False, 8, "e5m2")])
    save_model(g, tmp_path / "m.pt")
    assert main(["inspect", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert "e4m3+relu fl4" in out and "s8 fl2" in out and "e5m2+relu fl1" in out and "e2m5 fl" in out
    assert main(["inspect", str(tmp_path / "m.pt"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    layer = next(n for n in rep["nodes"] if n["name"] == "layer")
    assert layer["inputs"][0]["kind"] == "e4m3" and layer["w_kind"] == "e2m5" and layer["outputs"][1]["kind"] == "e5m2"

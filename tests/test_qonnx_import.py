"""QONNX import of Brevitas models: bit-exact against qonnx's executor on every quantized tensor, on the
golden model, the ISA simulator and (4x4) the RTL; the CLI and f8hw.load; every refusal with its message.

The comparison is exact equality of q * 2**-fl with QONNX's float32 values.  float32 holds every
accumulator exactly below 2**24; each test asserts that bound (numerics.accumulator_bound) so an
equality here is a proof, not luck.  Larger accumulators are covered by the IR's own tests (the
importer copies integers; golden, ISA simulator and RTL are compared in integers there).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("brevitas")
pytest.importorskip("qonnx")

import qonnx_cases as qc
from torch import nn

import f8hw
from f8hw import golden
from f8hw.cli import main
from f8hw.interop import import_qonnx, qonnx_execute
from f8hw.numerics import accumulator_bound

CASES = {"convnet": qc.ConvNet, "resnet": qc.ResNet, "signed": qc.SignedNet, "mixed": qc.MixedNet}
FLOAT32_EXACT = 2**24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each Brevitas case exported once: name -> path."""
    root = tmp_path_factory.mktemp("qonnx")
    paths = {}
    for name, cls in CASES.items():
        paths[name] = root / f"{name}.onnx"
        qc.export(cls(), paths[name])
    return paths


def assert_matches_qonnx(path, result, images):
    """golden(imported) == execute_onnx(original) on every quantized tensor and the output, exactly."""
    g = result.graph
    for node in g.nodes:
        if node.op in ("conv2d", "linear"):
            acc, acc_b = accumulator_bound(node.weight, node.bias, g.format(node.inputs[0]))
            assert max(np.max(acc), np.max(acc_b)) < FLOAT32_EXACT, node.name
    ref = qonnx_execute(path, images, result.input_fl)
    out = golden.run(g, images)
    assert len(result.tensors) >= 2
    for name, tm in result.tensors.items():
        ours = out[tm.ref].astype(np.float64) * 2.0**-tm.fl
        theirs = ref[name].astype(np.float64).reshape(ours.shape)
        assert np.array_equal(ours, theirs), f"{name} -> {tm.ref}: max diff {np.abs(ours - theirs).max()}"
    return out


@pytest.mark.parametrize("case", CASES)
def test_import_bit_exact_golden_and_isa(exported, case):
    path = exported[case]
    result = import_qonnx(path)
    assert result.exact and result.input_fl == 8
    images = qc.digits_images(6, seed=7)
    out = assert_matches_qonnx(path, result, images)
    ops = {n.op for n in result.graph.nodes}
    assert {"input", "conv2d", "linear"} <= ops
    run = f8hw.simulate(result.graph, images, arch=f8hw.ArchConfig(rows=4, cols=4))
    assert run.bit_exact
    assert np.array_equal(np.array(run.logits), out[result.graph.output].reshape(len(images), -1))


def test_ops_covered(exported):
    """The cases together exercise every mapped op and format."""
    from f8hw.interop.qonnx_import import read_qonnx

    onnx_ops = {n.op_type for path in exported.values() for n in read_qonnx(path).graph.node}
    assert {"Quant", "Conv", "Gemm", "Relu", "Add", "MaxPool", "GlobalAveragePool", "ReduceMean", "Flatten",
            "Reshape", "BatchNormalization"} <= onnx_ops
    seen = set()
    for path in exported.values():
        for n in import_qonnx(path).graph.nodes:
            a = n.attrs
            seen.add(n.op)
            if n.op == "conv2d":
                seen.add("strided" if a["stride"] != [1, 1] else "dense")
                seen.add("padded" if a["padding"] != [0, 0] else "unpadded")
                seen.add("depthwise" if a["groups"] == a["in_channels"] else "grouped" if a["groups"] > 1 else "")
            if len(n.inputs) == 2:
                seen.add("residual")
            seen.update("signed" if f.signed and f.bits == 8 else "unsigned" for f in n.outputs)
    assert {"maxpool", "avgpool_global", "flatten", "linear", "strided", "padded", "depthwise", "grouped",
            "residual", "signed", "unsigned"} <= seen


def test_inexact_batchnorm_fold_is_reported(tmp_path):
    path = tmp_path / "bn.onnx"
    qc.export(qc.MixedNet(exact_bn=False), path)
    result = import_qonnx(path)
    assert not result.exact and "BatchNormalization" in result.notes[0] and "not bit-exact" in result.notes[0]
    images = qc.digits_images(6, seed=7)
    ref, out = qonnx_execute(path, images, result.input_fl), golden.run(result.graph, images)
    name, tm = next((k, v) for k, v in result.tensors.items() if v.ref == "Conv_0")
    diff = np.abs(out[tm.ref] - ref[name] * 2.0**tm.fl)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.9     # one LSB at most, rarely


def _onnx_model(nodes, inits, in_shape, out_name):
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, *in_shape])],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                               helper.make_opsetid("qonnx.custom_op.general", 1)])


def _quant(x, out, scale, bits, signed, narrow, rounding="ROUND"):
    from onnx import helper

    return helper.make_node("Quant", [x, scale, "zero", bits], [out], domain="qonnx.custom_op.general",
                            signed=signed, narrow=narrow, rounding_mode=rounding)


def test_matmul_add_and_input_scale_relabelled(tmp_path):
    """MatMul + Add(bias) as a linear layer; an input scale 2^-6 (IR input is fl 8: relabelled exactly)."""
    import onnx
    from onnx import helper

    rng = np.random.default_rng(0)
    inits = {"s_in": 2.0**-6, "s_w": 2.0**-8, "s_out": 2.0**-3, "zero": 0.0, "b8": 8.0,
             "w": rng.integers(-127, 128, (64, 10)) * 2.0**-8, "b": rng.integers(-999, 999, 10) * 2.0**-14}
    nodes = [_quant("x", "xq", "s_in", "b8", 0, 0), helper.make_node("Flatten", ["xq"], ["xf"], axis=1),
             _quant("w", "wq", "s_w", "b8", 1, 1), helper.make_node("MatMul", ["xf", "wq"], ["acc"]),
             helper.make_node("Add", ["acc", "b"], ["v"]), _quant("v", "y", "s_out", "b8", 1, 1)]
    path = tmp_path / "mm.onnx"
    onnx.save(_onnx_model(nodes, inits, (1, 8, 8), "y"), path)
    result = import_qonnx(path)
    assert result.input_fl == 6 and [n.op for n in result.graph.nodes] == ["input", "flatten", "linear"]
    assert_matches_qonnx(path, result, rng.integers(0, 256, (5, 1, 8, 8), dtype=np.uint8))


def test_refuses_one_accumulator_in_two_forms(tmp_path):
    """A conv output quantized directly and also after a residual add would need two accumulators."""
    import onnx
    from onnx import helper

    inits = {"s": 2.0**-6, "s_in": 2.0**-8, "zero": 0.0, "b8": 8.0, "w": np.full((1, 1, 3, 3), 2.0**-6)}
    nodes = [_quant("x", "xq", "s_in", "b8", 0, 0), _quant("w", "wq", "s", "b8", 1, 1),
             helper.make_node("Conv", ["xq", "wq"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             _quant("c", "a", "s", "b8", 1, 1), helper.make_node("Add", ["c", "xq"], ["v"]),
             _quant("v", "b", "s", "b8", 1, 1), helper.make_node("Add", ["a", "b"], ["y0"]),
             _quant("y0", "y", "s", "b8", 1, 1)]
    onnx.save(_onnx_model(nodes, inits, (1, 8, 8), "y"), tmp_path / "two.onnx")
    with pytest.raises(f8hw.F8Error, match=r"node 'Conv_0': its accumulator is quantized both with and without"):
        import_qonnx(tmp_path / "two.onnx")


@pytest.mark.parametrize("change, match", [
    ({"rounding": "FLOOR"}, r"node 'Quant_\d+': rounding_mode FLOOR; f8hw rounds activations half to even"),
    ({"weight": -128}, r"node 'Gemm_0': weight integers reach \[-128, \d+\]; f8hw weights lie in \[-127, 127\]"),
    ({"zero": 3.0}, r"node 'Quant_\d+': zero point 3; f8hw's fixed point needs zero point 0"),
    ({"per_channel": True}, r"node 'Quant_\d+': Quant scale is per-channel \(2 values\); f8hw needs one per tensor"),
])
def test_refuses_mutated_quantizers(tmp_path, change, match):
    """Brevitas cannot be asked for these directly: edit its QONNX file."""
    import onnx
    from onnx import numpy_helper

    src = tmp_path / "tiny.onnx"
    qc.export(qc.Tiny(), src)
    m = onnx.load(src)
    inits = {i.name: i for i in m.graph.initializer}
    quants = [n for n in m.graph.node if n.op_type == "Quant"]
    act = next(n for n in quants if not n.input[0] in inits and n.input[0] != m.graph.input[0].name)
    if "rounding" in change:
        next(a for a in act.attribute if a.name == "rounding_mode").s = change["rounding"].encode()
    if "zero" in change:
        inits[act.input[2]].CopyFrom(numpy_helper.from_array(np.array(change["zero"], np.float32), act.input[2]))
    if "per_channel" in change:
        wq = next(n for n in quants if n.input[0] == "c1.weight")
        scale = np.array([2.0**-7, 2.0**-8] * 2, np.float32).reshape(4, 1, 1, 1)
        wq.input[1] = "per_channel_scale"
        m.graph.initializer.append(numpy_helper.from_array(scale, "per_channel_scale"))
    if "weight" in change:
        wq = next(n for n in quants if n.input[0] == "fc.weight")
        next(a for a in wq.attribute if a.name == "narrow").i = 0
        w = numpy_helper.to_array(inits["fc.weight"]).copy()
        w.flat[0] = -128 * float(numpy_helper.to_array(inits[wq.input[1]]))
        inits["fc.weight"].CopyFrom(numpy_helper.from_array(w, "fc.weight"))
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(f8hw.F8Error, match=match):
        import_qonnx(tmp_path / "m.onnx")


def test_rtl_verilator_4x4(exported):
    result = import_qonnx(exported["resnet"])
    images = qc.digits_images(2, seed=3)
    run = f8hw.simulate(result.graph, images, engine="verilator", arch=f8hw.ArchConfig(rows=4, cols=4))
    assert run.bit_exact and run.isa_agrees


def test_cli_import_load_and_sim(exported, tmp_path, capsys):
    path = exported["convnet"]
    out = tmp_path / "convnet.pt"
    assert main(["import", str(path), "-o", str(out)]) == 0
    assert "bit-exact" in capsys.readouterr().out
    from_pt, from_onnx = f8hw.load(out), f8hw.load(path)
    assert from_pt.meta["input_fl"] == 8 and from_onnx.meta["exact"] is True
    images = qc.digits_images(3)
    assert np.array_equal(golden.classify(from_pt.graph, images)[0], golden.classify(from_onnx.graph, images)[0])
    assert main(["sim", str(path), "--engine", "isa", "--array", "4x4", "--batch", "2", "--json"]) == 0


# ---------------------------------------------------------------- refusals


def _refusal(tmp_path, model, match):
    path = tmp_path / "m.onnx"
    qc.export(model, path)
    with pytest.raises(f8hw.F8Error, match=match) as info:
        import_qonnx(path)
    assert "\n" not in str(info.value)
    assert main(["import", str(path), "-o", str(tmp_path / "m.pt")]) == 3
    return str(info.value)


def test_refuses_non_power_of_two_scale_and_rounds_it(tmp_path, capsys):
    import brevitas.nn as qnn
    from brevitas.quant import Uint8ActPerTensorFloat

    model = qc.Tiny(act=qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True))
    msg = _refusal(tmp_path, model, r"node 'Quant_\d+': scale [\d.e-]+ is not a power of two .*--round-scales")
    assert "2^" in msg
    capsys.readouterr()
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "r.pt"), "--round-scales"]) == 0
    text = capsys.readouterr().out
    assert "NOT bit-exact" in text and "--round-scales on 64 images (digits)" in text
    acc = f8hw.load(tmp_path / "r.pt").meta["round_scales_accuracy"]
    assert 0 <= acc["after"] <= 1 and acc["images"] == 64


def test_refuses_unsupported_op(tmp_path):
    _refusal(tmp_path, qc.Tiny(extra=nn.Sequential(nn.Sigmoid(), qc.uact())), r"node .Sigmoid_0.: unsupported op Sigmoid")


def test_refuses_4bit_activation(tmp_path):
    import brevitas.nn as qnn

    act = qnn.QuantReLU(act_quant=qc.UAct, bit_width=4, return_quant_tensor=True)
    _refusal(tmp_path, qc.Tiny(act=act), r"node 'Quant_\d+': 4-bit activation quantizer; f8hw activations are 8-bit")


def test_refuses_missing_activation_quantizer(tmp_path):
    _refusal(tmp_path, qc.Tiny(act=nn.ReLU()), r"node 'Gemm_0': its input has no activation quantizer")


def test_refuses_signed_128_range(tmp_path):
    import brevitas.nn as qnn

    act = qnn.QuantIdentity(act_quant=qc.SAct, return_quant_tensor=True)     # narrow_range False: [-128, 127]
    _refusal(tmp_path, qc.Tiny(act=act), r"signed range \[-128, 127\]; f8hw's signed 8-bit range is \[-127, 127\]")


def test_refuses_signed_input(tmp_path):
    _refusal(tmp_path, qc.Tiny(input_quant=qc.sact()), r"the input quantizer is signed")


def test_load_without_onnx_packages_is_one_line(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_onnx(name, *a, **k):
        if name.split(".")[0] in ("onnx", "qonnx"):
            raise ImportError(name=name.split(".")[0])
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(f8hw.F8Error, match=r"pip install 'f8hw\[onnx\]'"):
        f8hw.load(tmp_path / "x.onnx")
    assert main(["import", str(tmp_path / "x.onnx"), "-o", str(tmp_path / "x.pt")]) == 3
    assert main(["export-onnx", "default", "-o", str(tmp_path / "x.onnx")]) == 3
    assert f8hw.load("default").graph.nodes          # the core works without them

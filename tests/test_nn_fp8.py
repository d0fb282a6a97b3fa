"""FP8 QAT in f8hw.nn: fake quantization, per-layer formats, export, format selection."""

import json

import numpy as np
import pytest
import torch

import f8hw
import f8hw.nn as f8nn
from f8hw import digits, golden
from f8hw.errors import FormatError
from f8hw.modelfile import load_model
from f8hw.nn.fp8quant import format_kind, fp8_quant, fp8_round
from f8hw.numerics import FORMATS, TensorFormat, code_table, decode, dequantize_format, encode, quantize_format


def _float32_cases(kind: str, fl: int, rng) -> np.ndarray:
    """Random values over the whole range, every code's value, its neighbours and the midpoints (ties)."""
    vals = code_table(kind)
    vals = np.sort(vals[np.isfinite(vals)]) * 2.0**-fl
    mids = (vals[1:] + vals[:-1]) / 2
    big = vals[-1] * np.array([1.0, 1.01, 2.0, 1e6])
    edge = np.concatenate([vals, mids, big, -big, [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf]])
    edge32 = edge.astype(np.float32)
    near = np.concatenate([np.nextafter(edge32, np.float32(np.inf)), np.nextafter(edge32, np.float32(-np.inf))])
    rand = (rng.standard_normal(4000) * np.exp2(rng.uniform(-12, 12, 4000)) * vals[-1] / 8).astype(np.float32)
    return np.concatenate([edge32, near, rand]).astype(np.float32)


@pytest.mark.parametrize("kind", list(FORMATS))
@pytest.mark.parametrize("fl", [-3, 0, 5])
def test_fp8_round_equals_numpy_encode_decode(kind, fl):
    x = _float32_cases(kind, fl, np.random.default_rng(fl + 10))
    want = decode(encode(x.astype(np.float64), kind, fl), kind) * 2.0**-fl
    got = fp8_round(torch.from_numpy(x), kind, fl).numpy()
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[got == 0]).any()  # never -0
    q = fp8_quant(torch.from_numpy(x), kind, fl)
    assert q.dtype == torch.float32
    np.testing.assert_array_equal(q.numpy().astype(np.float64), want)  # exact in float32
    fmt = TensorFormat(fl, True, 8, kind)
    np.testing.assert_array_equal(dequantize_format(quantize_format(x, fmt), fmt), want)


def test_fp8_quant_straight_through_masked_at_saturation():
    x = torch.tensor([0.3, -1.7, 500.0, -1e4], requires_grad=True)
    fp8_quant(x, "e4m3", 0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_format_names():
    assert format_kind("int8") == "int" and format_kind("e3m4") == "e3m4"
    with pytest.raises(FormatError, match="conv1: unknown format 'fp8'"):
        format_kind("fp8", "conv1")


# ---------------------------------------------------------------- QAT model with mixed formats, export


class Mixed(torch.nn.Module):
    """A residual CNN whose layers use different formats (input / weight); a and b share a clipping group."""

    def __init__(self, fmts):
        super().__init__()
        self.stem = f8nn.QConv2d(1, 8, 3, 1, 1, w_format=fmts[0])
        self.a = f8nn.QConv2d(8, 8, 3, 1, 1, format=fmts[1], w_format=fmts[2])
        self.add = f8nn.QAdd()
        self.b = f8nn.QConv2d(8, 8, 3, 2, 1, format=fmts[3])
        self.pool = f8nn.QGlobalAvgPool2d()
        self.flat = torch.nn.Flatten()
        self.fc = f8nn.QLinear(8, 10, format=fmts[4], w_format=fmts[5])

    def forward(self, img):
        x = self.stem(img)
        y = self.add(self.a(x), x)
        return self.fc(self.flat(self.pool(self.b(y))))


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(digits.load()["test"][0][:48])


def _mixed_model(fmts, images, method="grid"):
    torch.manual_seed(3)
    model = Mixed(fmts)
    f8nn.prepare(model, images[:2])
    f8nn.calibrate(model, [images[:24], images[24:]], method=method, bn=True)
    return model.eval()


@pytest.mark.parametrize("fmts", [
    ("e4m3", "e2m5", "e3m4", "e2m5", "e5m2", "e2m5"),
    ("int8", "int8", "e5m2", "int8", "e3m4", "e4m3"),
    ("e2m5", "e4m3", "int8", "e4m3", "int8", "e5m2"),
])
def test_mixed_model_exports_and_integer_forward_equals_golden(tmp_path, images, fmts):
    model = _mixed_model(fmts, images)
    assert model.a.formats == (fmts[1], fmts[2])
    graph = f8hw.export(model, images[:1], tmp_path / "m.pt")
    loaded, _ = load_model(tmp_path / "m.pt")
    a = loaded.node("a")
    assert loaded.format(a.inputs[0]).kind == ("int" if fmts[1] == "int8" else fmts[1])
    assert a.attrs.get("w_kind", "int8") == fmts[2]
    assert a.weight.dtype == (np.int8 if fmts[2] == "int8" else np.uint8)
    assert a.bias.dtype == (np.int32 if fmts[1] == fmts[2] == "int8" else np.int64)
    assert len(a.inputs) == 2  # the residual, fused
    logits, unit = f8nn.integer_forward(model, images)
    out = golden.run(loaded, images.numpy())[loaded.output]
    assert loaded.format(loaded.output).fl == unit
    np.testing.assert_array_equal(out, logits.numpy())
    with torch.no_grad():  # the F8-mode float forward is the same computation
        f = model(images).double() * 2.0**unit
    np.testing.assert_allclose(f.numpy(), logits.numpy(), rtol=1e-5, atol=2.0 ** max(unit - 16, 0))
    assert [n.name for n in graph.nodes] == [n.name for n in loaded.nodes]


def test_fp8_qat_step_trains(images):
    model = _mixed_model(("e4m3", "e3m4", "e2m5", "e3m4", "e5m2", "e4m3"), images, method="sigma")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(images), torch.zeros(len(images), dtype=torch.long))
    loss.backward()
    assert model.a.conv.weight.grad.abs().sum() > 0
    opt.step()
    assert model.b.act.fl_buffer.item() != 6.0  # the FP8 scale buffer tracks the batch


def test_sibling_formats_must_agree(images):
    model = Mixed(("int8",) * 6)
    model.a.set_format("e4m3")  # a and the stem's other reader (the skip) share one clipping group with b
    model.b.set_format("e2m5")
    with pytest.raises(f8hw.errors.F8Error, match="layer 'b': input format e2m5 differs from e4m3 of 'a'"):
        f8nn.prepare(model, images[:2])
    with pytest.raises(FormatError, match="^layer 'a' input format: unknown format 'e6m1' "):
        model.a.set_format("e6m1")
    with pytest.raises(FormatError, match="^weight format: unknown format 'int4' "):
        f8nn.QLinear(4, 2, w_format="int4")


# ---------------------------------------------------------------- format selection


def test_select_formats_scores_applies_and_overrides(tmp_path, images):
    model = _mixed_model(("int8",) * 6, images)
    report = f8nn.select_formats(model, [images[:24]], cost={"e5m2": 4.0}, override={"fc:weight": "e3m4"},
                                 criterion="tensor")
    assert report.formats() == f8nn.model_formats(model)  # applied
    by = {(c.layer, c.tensor): c for c in report.choices}
    assert by["stem", "input"].choice == "int8" and by["stem", "input"].reason == "image input"
    assert by["fc", "weight"].choice == "e3m4" and by["fc", "weight"].reason == "override"
    assert by["a", "input"].choice == by["b", "input"].choice and by["a", "input"].reason == "group"
    w = by["stem", "weight"]
    assert w.choice == min(w.candidates, key=lambda c: c.score).format
    assert [c.format for c in w.candidates] == list(f8nn.FORMAT_NAMES)
    e5m2 = next(c for c in w.candidates if c.format == "e5m2")
    assert e5m2.cost == 4.0 and e5m2.score == 4.0 * e5m2.rel_mse
    # each candidate's error is that of its best scale: recompute one from scratch
    x = _float_weight_of(model.stem)
    c = next(c for c in w.candidates if c.format == "e4m3")
    fmt = TensorFormat(c.fl, True, 8, "e4m3")
    assert c.rel_mse == pytest.approx(np.mean((dequantize_format(quantize_format(x, fmt), fmt) - x) ** 2) / np.mean(x**2))
    table = report.table()
    assert table.splitlines()[0].split() == ["layer", "tensor", *f8nn.FORMAT_NAMES, "choice", "reason"]
    assert len(table.splitlines()) == 1 + 2 * 4 and "x4" in table
    # the selected model calibrates, exports and stays bit exact
    f8nn.prepare(model, images[:2])
    f8nn.calibrate(model, [images[:24]], method="grid")
    loaded = f8hw.export(model.eval(), images[:1], tmp_path / "sel.pt")
    np.testing.assert_array_equal(golden.run(loaded, images.numpy())[loaded.output],
                                  f8nn.integer_forward(model, images)[0].numpy())


def test_output_criterion_scores_the_layer_output_and_sees_outlier_channels(images):
    """The outlier model's third conv: one INT8 grid fits its few large input channels and rounds the
    others away, which only the layer output shows; FP8 keeps both.  The float function is unchanged."""
    import torch.nn.functional as F

    from f8hw import models

    torch.manual_seed(0)
    model = models.build("outlier")
    f8nn.prepare(model, images[:8])
    model.train()
    with torch.no_grad():
        model(images[:64])  # realistic BN statistics
    model.eval()
    with torch.no_grad():
        before = model(images[:32])
        models.add_outlier_channels(model)
        after = model(images[:32])
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
        h = torch.relu(model.features[:3](images[:32])).amax((0, 2, 3))
    assert h[:: models.OUTLIER_EVERY].min() > 8 * h[1:8].max()  # the outlier channels stand out
    out = f8nn.select_formats(model, [images[:32]], apply=False)
    assert out.criterion == "output"
    by = {(c.layer, c.tensor): c for c in out.choices}
    err = {c.format: c.rel_mse for c in by["features.3", "input"].candidates}
    assert out.formats()["features.3"][0] != "int8" and err["int8"] > 4 * min(err.values()), err
    # a weight candidate of the image reader: the output error with the exact image input, from scratch
    c = next(c for c in by["features.0", "weight"].candidates if c.format == "e4m3")
    w = _float_weight_of(model.features[0]).reshape(model.features[0].conv.weight.shape)
    fmt = TensorFormat(c.fl, True, 8, "e4m3")
    wq = dequantize_format(quantize_format(w, fmt), fmt)
    x = images[:16].double() / 256
    conv = model.features[0].conv
    exact, got = (F.conv2d(x, torch.from_numpy(v), None, conv.stride, conv.padding).numpy() for v in (w, wq))
    assert c.rel_mse == pytest.approx(np.mean((got - exact) ** 2) / np.mean(exact**2))
    # an override with a format outside the candidates is scored like them (its pairs' output errors)
    forced = f8nn.select_formats(model, [images[:32]], candidates=("int8", "e4m3"), apply=False,
                                 override={"features.3": "e2m5"})
    assert forced.formats()["features.3"] == ("e2m5", "e2m5")
    assert forced.formats()["head.fc"][1] in ("int8", "e4m3")
    with pytest.raises(f8hw.errors.F8Error, match="criterion must be one of output, tensor, not 'l1'"):
        f8nn.select_formats(model, [images[:8]], criterion="l1")


def _float_weight_of(m):
    scale = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
    return (scale[:, None, None, None] * m.conv.weight).detach().double().numpy().reshape(-1)


def test_select_formats_errors(images):
    model = _mixed_model(("int8",) * 6, images)
    with pytest.raises(f8hw.errors.F8Error, match="format override 'nope': no layer 'nope'"):
        f8nn.select_formats(model, [images[:8]], override={"nope": "e4m3"})
    with pytest.raises(FormatError, match="format override 'a': unknown format 'fp16'"):
        f8nn.select_formats(model, [images[:8]], override={"a": "fp16"})
    with pytest.raises(f8hw.errors.F8Error, match="conflict: layers a, b share one input format"):
        f8nn.select_formats(model, [images[:8]], override={"a": "e4m3", "b:input": "e2m5"})
    with pytest.raises(FormatError, match="candidate: unknown format 'int4'"):
        f8nn.select_formats(model, [images[:8]], candidates=("int8", "int4"))


# ---------------------------------------------------------------- training with formats


def test_train_flexible_cli_and_uniform_api(tmp_path, capsys):
    from f8hw import train
    from f8hw.cli import main

    out = tmp_path / "flex.pt"
    assert main(["train", "--arch", "cnn", "-o", str(out), "--formats", "flexible",
                 "--fp32-epochs", "1", "--qat-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "choice" in printed and "reason" in printed  # the selection table
    model = f8hw.load(str(out))
    xt = torch.from_numpy(digits.load()["test"][0])
    logits, _ = golden.classify(model.graph, xt.numpy())
    qat = train.load_checkpoint(train.checkpoint_path(str(out)))  # formats restored from the checkpoint
    np.testing.assert_array_equal(logits, f8nn.integer_forward(qat, xt)[0].numpy().reshape(len(xt), -1))
    assert main(["sim", str(out), "--engine", "isa", "--array", "4x4"]) == 3
    assert "not supported by this accelerator (built with --formats int8)" in capsys.readouterr().err

    recipe = train.Recipe(fp32_epochs=1, qat_epochs=0, calibration_batches=2)
    m, report = train.train("cnn", recipe, formats="e3m4")
    assert report["formats"] == "e3m4" and "selection" not in report
    assert {w for _, w in report["layer_formats"].values()} == {"e3m4"}
    assert {i for i, _ in report["layer_formats"].values()} == {"int8", "e3m4"}  # the image input stays u8
    g = f8hw.exporter.build_graph(m.eval())
    assert {g.format(n.inputs[0]).kind for n in g.nodes if n.op in ("conv2d", "linear")} == {"int", "e3m4"}
    with pytest.raises(f8hw.errors.F8Error, match="train formats must be one of flexible, int8, .* not 'fp8'"):
        train.train("cnn", recipe, formats="fp8")


def test_format_study_rows(tmp_path):
    from f8hw import train
    from f8hw.format_study import format_study

    study = format_study("cnn", train.Recipe(fp32_epochs=1, qat_epochs=0, calibration_batches=1), ("int8", "e4m3"))
    assert [r.formats for r in study.rows] == ["int8", "e4m3"]
    assert all(r.ptq == r.qat and 0 <= r.qat <= 1 for r in study.rows)  # no QAT epoch: QAT = PTQ
    assert {w for _, w in study.rows[1].layer_formats.values()} == {"e4m3"}
    assert set(study.rows[0].layer_formats.values()) == {("int8", "int8")}
    assert study.markdown().splitlines()[3].startswith("| int8 |")
    from f8hw.format_study import Study, record

    path = tmp_path / "accuracy.json"
    path.write_text('{"cnn.pt": {"arch": "cnn"}}')
    record([study], str(path))
    table = json.loads(path.read_text())
    assert table["cnn.pt"] == {"arch": "cnn"}  # other entries are kept
    back = Study.from_dict("cnn", table["format_study"]["cnn"])
    assert back.markdown() == study.markdown() and back.rows[1].layer_formats == study.rows[1].layer_formats


@pytest.mark.parametrize("kind", list(FORMATS))
def test_qat_sigma_constant_is_the_low_end_of_the_gaussian_optimum(kind):
    from f8hw.nn.fp8quant import flat_grid_fl, scale_fl

    x = np.random.default_rng(0).standard_normal(20000)
    for signed, v in ((True, x), (False, np.abs(x))):
        for sigma in (1.0, 2.0**-5):
            assert scale_fl(sigma, signed, kind) == flat_grid_fl(v * sigma, signed, kind)

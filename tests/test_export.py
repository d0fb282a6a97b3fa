"""Export of user-written topologies, unsupported ops, and refusing malicious model files."""

import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import f8hw
import f8hw.nn as f8nn
from f8hw import digits, golden
from f8hw.cli import main as cli_main
from f8hw.errors import F8Error, ModelFileError
from f8hw.exporter import export
from f8hw.modelfile import load_model
from f8hw.models import Classifier
from f8hw.train import load_checkpoint


class TwoBranchJoin(nn.Module):
    """Not in the zoo: two conv branches joined by an add, then an identity add over both, ReLU, maxpool."""

    def __init__(self):
        super().__init__()
        self.stem = f8nn.QConv2d(1, 8, 3, 1, 1)
        self.a1 = f8nn.QConv2d(8, 8, 3, 1, 1)
        self.a2 = f8nn.QConv2d(8, 8, 3, 1, 1)
        self.b = f8nn.QConv2d(8, 8, 1)
        self.join = f8nn.QAdd()
        self.c = f8nn.QConv2d(8, 8, 3, 1, 1)
        self.back = f8nn.QAdd()
        self.pool = nn.MaxPool2d(2)
        self.d = f8nn.QConv2d(8, 12, 3, 1, 1, groups=4)
        self.e = f8nn.QConv2d(8, 12, 1)
        self.head = Classifier(12, 10)
        self.tail = f8nn.QAdd()

    def forward(self, img):
        x = self.stem(img)
        y = self.join(self.a2(self.a1(x)), self.b(x))
        z = self.back(self.c(torch.relu(y)), x)
        p = self.pool(z)  # read by two layers (d, e) with private FLs: one maxpool copy per format
        return self.head(self.tail(self.d(p), self.e(p)))


@pytest.fixture(scope="module")
def test_images():
    return torch.from_numpy(digits.load()["test"][0][:64])


def _calibrated(model, images):
    f8nn.prepare(model, images[:2])
    f8nn.calibrate(model, [images[:32], images[32:]], method="grid", bn=True)
    return model.eval()


def test_user_topology_exports_and_runs_bit_exact(tmp_path, test_images):
    torch.manual_seed(1)
    model = _calibrated(TwoBranchJoin(), test_images)
    # private FLs for the two readers of the pooled tensor, so the maxpool needs two copies
    model.d.act.fl_buffer.fill_(5.0)
    model.e.act.fl_buffer.fill_(6.0)
    path = tmp_path / "two_branch.pt"
    graph = f8hw.export(model, test_images[:1], path)  # the package-level entry point
    loaded, meta = load_model(path)
    assert meta["input"] == {"shape": [1, 8, 8], "dtype": "uint8", "fl": 8}
    assert [n.op for n in loaded.nodes].count("maxpool") == 2
    assert len(loaded.node("c").inputs) == 2  # the identity add, fused with the stem's int8 tensor as skip
    assert loaded.node("c").inputs[1] == "stem" or loaded.node("c").inputs[1].startswith("stem:")
    logits, fl = f8nn.integer_forward(model, test_images)
    out = golden.run(loaded, test_images.numpy())[loaded.output]
    assert loaded.format(loaded.output).fl == fl
    np.testing.assert_array_equal(out, logits.numpy())
    with torch.no_grad():
        float_logits = model(test_images)
    assert torch.equal(float_logits.argmax(1), logits.argmax(1))
    assert [n.name for n in graph.nodes] == [n.name for n in loaded.nodes]


def test_file_loads_with_weights_only(tmp_path, test_images):
    torch.manual_seed(2)
    model = _calibrated(TwoBranchJoin(), test_images)
    export(model, test_images[:1], tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["format"] == "f8hw-model" and state["version"] == 1


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 8)
        self.fc = f8nn.QLinear(8, 10)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


def test_lstm_is_rejected_by_name():
    with pytest.raises(f8nn.UnsupportedOpError, match=r"'rnn' \(LSTM\)"):
        f8nn.prepare(WithLSTM(), torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


def test_plain_tensor_add_is_rejected_with_a_hint():
    class RawAdd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = f8nn.QConv2d(1, 4, 3, 1, 1)
            self.b = f8nn.QConv2d(4, 4, 3, 1, 1)

        def forward(self, x):
            y = self.a(x)
            return self.b(y) + y

    with pytest.raises(F8Error, match="QAdd"):
        f8nn.prepare(RawAdd(), torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_files(tmp_path):
    marker = tmp_path / "pwned"
    as_torch = tmp_path / "evil_torch.pt"
    torch.save({"format": "f8hw-model", "version": 1, "graph": _Payload(marker)}, as_torch)
    as_pickle = tmp_path / "evil_pickle.pt"
    with open(as_pickle, "wb") as f:
        pickle.dump(_Payload(marker), f)
    return marker, [as_torch, as_pickle]


def test_malicious_pickle_is_refused_by_every_loader(tmp_path, capsys):
    marker, files = _malicious_files(tmp_path)
    for path in files:
        with pytest.raises(ModelFileError):
            load_model(path)
        assert cli_main(["inspect", str(path)]) == 3
        assert "error:" in capsys.readouterr().err
        with pytest.raises(pickle.UnpicklingError):
            load_checkpoint(path)
    assert not marker.exists()


class Small(nn.Module):
    def __init__(self, dilation=1):
        super().__init__()
        self.stem = f8nn.QConv2d(1, 4, 3, 1, 1)
        self.stem.conv.dilation = (dilation, dilation)
        self.body = f8nn.QConv2d(4, 4, 3, 1, 1)
        self.join = f8nn.QAdd()
        self.head = Classifier(4, 10)

    def forward(self, x):
        y = self.stem(x)
        return self.head(self.join(self.body(y), y))


IMAGES = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)


def test_export_before_calibrate_is_an_error(tmp_path):
    model = Small()
    f8nn.prepare(model, IMAGES)
    with pytest.raises(F8Error, match=r"^export needs a calibrated model in F8 mode, but layer 'stem' is in float "
                       r"mode: run f8hw.nn.calibrate\(model, batches\) first$"):
        f8hw.export(model, IMAGES[:1], tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_wrong_input_channels_name_the_layer():
    wrong = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    message = r"^layer 'stem': expects 1 input channels, got 3 channels \(input shape \(2, 3, 8, 8\)\)$"
    with pytest.raises(F8Error, match=message):
        f8nn.prepare(Small(), wrong)
    model = Small()
    f8nn.prepare(model, IMAGES)
    with pytest.raises(F8Error, match=message):
        model(wrong)
    with pytest.raises(F8Error, match=r"^QConv2d: expects 1 input channels, got a 3-d tensor"):
        Small()(IMAGES[0])
    with pytest.raises(F8Error, match=r"^layer 'head.fc': expects 4 input features, got 5 features"):
        model.head.fc(torch.zeros(2, 5))
    with pytest.raises(F8Error, match=r"^add 'join': main operand of shape \(2, 4, 8, 8\) and skip of shape "
                       r"\(2, 4, 4, 4\) differ$"):
        model.join(torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 4, 4))


def test_unsupported_conv_and_pool_options_say_which():
    with pytest.raises(f8nn.UnsupportedOpError, match=r"^layer 'stem': dilation 2 is not supported"):
        f8nn.prepare(Small(dilation=2), IMAGES)

    def plain(**conv):
        return nn.Sequential(nn.Conv2d(1, 4, 3, **conv), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, 10))

    for conv, why in [(dict(dilation=2, padding=2), "dilation 2 is not supported"),
                      (dict(dilation=(1, 2), padding=2), r"dilation \[1, 2\] is not supported"),
                      (dict(padding="same"), "padding='same' is not supported"),
                      (dict(padding=1, padding_mode="reflect"), "padding_mode 'reflect' is not supported")]:
        with pytest.raises(f8nn.UnsupportedOpError, match=f"^'0': {why}"):
            f8nn.quantize(plain(**conv), IMAGES)
    pooled = nn.Sequential(f8nn.QConv2d(1, 4, 3, 1, 1), nn.MaxPool2d(3, ceil_mode=True), Classifier(4, 10))
    with pytest.raises(f8nn.UnsupportedOpError, match=r"^module '1': MaxPool2d ceil_mode=True is not supported"):
        f8nn.prepare(pooled, IMAGES)
    too_big = nn.Sequential(f8nn.QConv2d(1, 4, 3, 1, 1), nn.MaxPool2d(16), Classifier(4, 10))
    with pytest.raises(f8nn.UnsupportedOpError, match=r"^module '1' fails on the example input: .*too small"):
        f8nn.prepare(too_big, IMAGES)

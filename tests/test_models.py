"""Bundled digits models (bit-exact export, committed accuracies), training reproducibility, the zoo."""

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import f8hw.nn as f8nn
from f8hw import digits, golden, models, train
from f8hw.cli import main as cli_main
from f8hw.exporter import build_graph, export
from f8hw.modelfile import load_model

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def test_split():
    images, labels = digits.load()["test"]
    return images, labels


def accuracy_entry(arch: str) -> dict:
    """arch's entry in the accuracy.json beside its bundled file."""
    path = MODELS / train.bundled_file(arch)
    with open(path.parent / "accuracy.json") as f:
        return json.load(f)[path.name]


@pytest.mark.parametrize("arch", models.BUNDLED)
def test_bundled_model_is_bit_exact_with_its_qat_model(arch, test_split, tmp_path):
    """golden(exported file) == the QAT model's integer emulation, on the whole test split; top-1 == float QAT."""
    images, labels = test_split
    path = MODELS / train.bundled_file(arch)
    model = train.load_checkpoint(train.checkpoint_path(str(path)))
    x = torch.from_numpy(images)
    logits, fl = f8nn.integer_forward(model, x)
    fresh = export(model, x[:1], tmp_path / f"{arch}.pt")
    committed, _ = load_model(path)
    for graph in (fresh, committed):
        out = golden.run(graph, images)[graph.output]
        assert graph.format(graph.output) .fl == fl
        np.testing.assert_array_equal(out, logits.numpy())
    with torch.no_grad():
        float_logits = model(x)
    # F8 eval in float computes the same dyadic values: the products and sums are exact in float32 here
    assert torch.equal(float_logits.argmax(1), logits.argmax(1))
    assert torch.equal(float_logits * 2.0**fl, logits.to(torch.float32))


@pytest.mark.parametrize("arch", models.BUNDLED)
def test_committed_accuracy_table_matches_the_model_files(arch, test_split):
    images, labels = test_split
    graph, meta = load_model(MODELS / train.bundled_file(arch))
    pred = golden.run(graph, images)[graph.output].argmax(1)
    entry = accuracy_entry(arch)
    assert entry["f8_test_accuracy"] == pytest.approx((pred == labels).mean(), abs=1e-6)
    assert meta["f8_test_accuracy"] == entry["f8_test_accuracy"]
    assert meta["fp32_test_accuracy"] == entry["fp32_test_accuracy"]
    assert entry["f8_test_accuracy"] >= entry["fp32_test_accuracy"] - 0.003  # F8 within 0.3 points of FP32


def test_readme_format_table_is_the_recorded_study():
    """The README's accuracy table per format is models/accuracy.json's "format_study", and the outlier
    model shows what it is there for: INT8 loses to every FP8 format, the flexible choice keeps FP8 accuracy."""
    from f8hw.format_study import Study, markdown_table

    with open(MODELS / "accuracy.json") as f:
        recorded = json.load(f)["format_study"]
    assert set(recorded) == set(models.BUNDLED)
    studies = [Study.from_dict(a, recorded[a]) for a in ("cnn", "resnet", "mobilenet", "outlier")]
    readme = (MODELS.parent / "README.md").read_text()
    assert markdown_table(studies) in readme
    out = {r.formats: r for r in studies[-1].rows}
    assert all(out[f].ptq > out["int8"].ptq + 0.03 for f in ("e2m5", "e3m4", "e4m3"))
    assert out["flexible"].qat > out["int8"].qat and out["flexible"].qat >= out["e4m3"].qat
    assert "e4m3" in out["flexible"].layer_formats["features.3"]
    assert accuracy_entry("outlier")["f8_test_accuracy"] == out["flexible"].qat  # the bundled file is that run


def test_default_model_is_the_plain_cnn():
    assert filecmp.cmp(MODELS / "default.pt", MODELS / "cnn.pt", shallow=False)


def test_training_is_reproducible(tmp_path):
    """`f8hw train` twice with the same seed (a short recipe) gives identical weights and files."""
    states = []
    for run in ("a", "b"):
        out = tmp_path / run / "cnn.pt"
        out.parent.mkdir()
        assert cli_main(["train", "--arch", "cnn", "-o", str(out), "--fp32-epochs", "1", "--qat-epochs", "1"]) == 0
        states.append(torch.load(train.checkpoint_path(str(out)), weights_only=True)["state_dict"])
        assert (out.parent / "accuracy.json").exists()
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    a, _ = load_model(tmp_path / "a" / "cnn.pt")
    b, _ = load_model(tmp_path / "b" / "cnn.pt")
    for na, nb in zip(a.nodes, b.nodes):
        assert na.outputs == nb.outputs and na.attrs == nb.attrs
        assert (na.weight is None and nb.weight is None) or np.array_equal(na.weight, nb.weight)


def test_zoo_resnet20_exports_validates_and_is_bit_exact(tmp_path):
    model = models.random_calibrated("resnet20", batches=2, batch_size=2)
    assert cli_main(["zoo", "resnet20", "-o", str(tmp_path / "r20.pt")]) == 0
    graph, meta = load_model(tmp_path / "r20.pt")
    assert meta["arch"] == "resnet20" and graph.input_node.attrs["shape"] == [3, 32, 32]
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    logits, _ = f8nn.integer_forward(model, images)
    np.testing.assert_array_equal(golden.run(graph, images.numpy())[graph.output], logits.numpy())


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "mobilenetv2"])
def test_zoo_224_nets_build_and_validate(arch):
    """Shape-level only (keeps the test fast): trace, wire, and build a validated graph with default FLs."""
    model = models.build(arch)
    f8nn.prepare(model, torch.zeros((1, 3, 224, 224), dtype=torch.uint8))
    f8nn.set_quantized(model, True)
    graph = build_graph(model.eval())
    assert graph.input_node.attrs["shape"] == [3, 224, 224]
    assert graph.shapes()[graph.output] == (1000,)
    if arch == "resnet50":  # the stem's maxpool feeds a conv and a downsample shortcut
        assert sum(n.op == "conv2d" for n in graph.nodes) == 53

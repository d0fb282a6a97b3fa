"""QONNX export: the exported file computes the golden model exactly (qonnx's executor, and onnxruntime after
qonnx's QuantToQCDQ), and export -> import gives back the same IR (content hash: structure, names, integer
weights, biases and FLs) for every bundled model and zoo network."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qonnx")
pytest.importorskip("onnxruntime")

import torch

import f8hw
from f8hw import golden
from f8hw.cli import main
from f8hw.flow.model import graph_key
from f8hw.interop import export_qonnx, import_qonnx, qonnx_execute


def _logits_real(graph, images):
    out = golden.run(graph, images)[graph.output]
    return out.astype(np.float64) * 2.0**-graph.format(graph.output).fl


def _round_trip(graph, path, batch=1):
    export_qonnx(graph, path, batch=batch)
    back = import_qonnx(path)
    assert back.exact and back.input_fl == 8
    assert graph_key(back.graph) == graph_key(graph)      # same nodes, names, formats, integers
    return back


@pytest.mark.parametrize("name", f8hw.bundled_models())
def test_bundled_round_trip_and_qonnx_execution(name, tmp_path):
    graph = f8hw.load(name).graph
    path = tmp_path / f"{name}.onnx"
    _round_trip(graph, path, batch=4)
    from f8hw import digits

    images = digits.load()["test"][0][:6]
    ref = qonnx_execute(path, images, 8, outputs_only=True)
    ours = _logits_real(graph, images)
    assert np.array_equal(ours, ref.astype(np.float64).reshape(ours.shape))


def test_onnxruntime_runs_the_qcdq_form(tmp_path):
    import onnxruntime as ort
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ

    graph = f8hw.load("resnet").graph
    export_qonnx(graph, tmp_path / "r.onnx", batch=3)
    qcdq = ModelWrapper(str(tmp_path / "r.onnx")).transform(QuantToQCDQ())
    assert "Quant" not in {n.op_type for n in qcdq.graph.node}
    qcdq.save(str(tmp_path / "r_qcdq.onnx"))
    images = np.random.default_rng(1).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    y = ort.InferenceSession(str(tmp_path / "r_qcdq.onnx")).run(None, {"image": images.astype(np.float32) / 256})[0]
    ours = _logits_real(graph, images)
    assert np.array_equal(ours, y.astype(np.float64).reshape(ours.shape))


def _zoo_graph(name):
    from f8hw.exporter import build_graph
    from f8hw.models import ARCHS, random_calibrated
    from f8hw.nn import prepare

    model = random_calibrated(name, batches=1, batch_size=1)
    prepare(model, torch.zeros((1, *ARCHS[name].input_shape), dtype=torch.uint8))
    return build_graph(model)


def test_zoo_resnet20_round_trip_and_execution(tmp_path):
    graph = _zoo_graph("resnet20")
    path = tmp_path / "resnet20.onnx"
    _round_trip(graph, path)
    images = np.random.default_rng(2).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    ours = _logits_real(graph, images)
    assert np.array_equal(ours, qonnx_execute(path, images, 8, outputs_only=True).astype(np.float64).reshape(ours.shape))


@pytest.mark.slow
def test_zoo_resnet18_round_trip(tmp_path):
    _round_trip(_zoo_graph("resnet18"), tmp_path / "resnet18.onnx")


@pytest.mark.heavy      # ~25 s each at 224x224 (model build + calibration): excluded by default, run with -m heavy
@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2"])
def test_zoo_round_trip_224(name, tmp_path):
    _round_trip(_zoo_graph(name), tmp_path / f"{name}.onnx")


def test_global_sum_not_a_power_of_two_exports_as_reducesum_mul(tmp_path):
    """avgpool_global over 6x6 = 36 positions with shift 5: ReduceSum then Mul(2^-5), exact both ways."""
    from f8hw.ir import Graph, Node
    from f8hw.numerics import TensorFormat
    from f8hw.testing import conv_node

    rng = np.random.default_rng(3)
    u8 = TensorFormat(4, False)
    nodes = [Node("input", "input", [], {"shape": [1, 6, 6]}, [TensorFormat(8, False)]),
             conv_node(rng, "c1", "input", TensorFormat(8, False), 1, 4, w_fl=6, outputs=[u8]),
             Node("gap", "avgpool_global", ["c1"], {"shift": 5}, [TensorFormat(3, True)]),
             Node("flat", "flatten", ["gap"], {}, [TensorFormat(3, True)])]
    w = rng.integers(-127, 128, (10, 4)).astype(np.int8)
    nodes.append(Node("fc", "linear", ["flat"], {"in_features": 4, "out_features": 10, "w_fl": 6},
                      [TensorFormat(9, True, 32)], w, rng.integers(-500, 500, 10).astype(np.int32)))
    graph = Graph(nodes, "fc").validate()
    path = tmp_path / "gap.onnx"
    _round_trip(graph, path)
    import onnx

    assert {"ReduceSum", "Mul"} <= {n.op_type for n in onnx.load(path).graph.node}
    images = rng.integers(0, 256, (3, 1, 6, 6), dtype=np.uint8)
    ours = _logits_real(graph, images)
    assert np.array_equal(ours, qonnx_execute(path, images, 8, outputs_only=True).astype(np.float64).reshape(ours.shape))


def test_cli_export_onnx_then_import(tmp_path, capsys):
    onnx_path, pt = tmp_path / "m.onnx", tmp_path / "m.pt"
    assert main(["export-onnx", "mobilenet", "-o", str(onnx_path), "--batch", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["import", str(onnx_path), "-o", str(pt)]) == 0
    assert graph_key(f8hw.load(pt).graph) == graph_key(f8hw.load("mobilenet").graph)
    assert main(["export-onnx", "mobilenet", "-o", str(tmp_path / "m.txt")]) == 3


def test_export_refuses_bias_beyond_float32(tmp_path):
    from f8hw.testing import random_conv_graph

    graph = random_conv_graph(np.random.default_rng(0), in_shape=(1, 8, 8), channels=4)
    layer = next(n for n in graph.nodes if n.op == "conv2d")
    layer.bias = layer.bias.copy()
    layer.bias[0] = 2**25
    with pytest.raises(f8hw.F8Error, match=rf"node '{layer.name}': bias integers reach 33554432, beyond float32"):
        export_qonnx(graph, tmp_path / "x.onnx")

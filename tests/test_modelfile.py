"""Model file: round trip, and every way a file can be wrong is a ModelFileError naming the file."""

import os
import pickle

import numpy as np
import pytest
import torch

from f8hw import golden
from f8hw.errors import ModelFileError
from f8hw.ir import graph_to_state
from f8hw.modelfile import load_model, save_model
from f8hw.testing import random_conv_graph, random_images


@pytest.fixture
def graph():
    return random_conv_graph(np.random.default_rng(7))


def test_round_trip_is_bit_exact(graph, tmp_path):
    path = tmp_path / "m.pt"
    save_model(graph, path, {"dataset": "digits", "acc": 0.5})
    g2, meta = load_model(path)
    assert meta == {"dataset": "digits", "acc": 0.5}
    images = random_images(np.random.default_rng(0), graph, 3)
    a, b = golden.run(graph, images), golden.run(g2, images)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class CreatesFile:
    """A pickle payload that, if ever executed, creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, how):
    victim = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"format": "f8hw-model", "version": 1, "graph": CreatesFile(str(victim)), "meta": {}}
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    assert not victim.exists()
    why = "a plain pickle, not a torch zip archive" if how == "pickle" else "holds Python objects.*nothing in it was run"
    with pytest.raises(ModelFileError, match=why) as e:
        load_model(path)
    assert "add_safe_globals" not in str(e.value) and "weights_only" not in str(e.value)
    assert str(path) in str(e.value)
    assert not victim.exists()


def write_state(path, state):
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p, g: p, "no such model file"),
        (lambda p, g: (p.write_text("hello, not torch"), p)[1], "not a zip archive"),
        (lambda p, g: (p.mkdir(), p)[1], "is a directory"),
        (lambda p, g: (p.write_bytes(b""), p)[1], "an empty file"),
        (lambda p, g: (save_model(g, p), p.write_bytes(p.read_bytes()[:2000]), p)[2], "truncated zip archive"),
        (lambda p, g: (save_model(g, p), p.write_bytes(__import__("gzip").compress(p.read_bytes())), p)[2],
         "gzip-compressed"),
        (lambda p, g: (torch.save(torch.nn.Linear(2, 2), p), p)[1], "holds Python objects"),
        (lambda p, g: write_state(p, [1, 2, 3]), "not an f8hw model file"),
        (lambda p, g: write_state(p, {"format": "other"}), "not an f8hw model file"),
        (lambda p, g: write_state(p, {"format": "f8hw-model", "version": 99, "graph": {}}), "version 99"),
        (lambda p, g: write_state(p, {"format": "f8hw-model", "version": 1, "graph": 5, "meta": {}}), "malformed"),
    ],
)
def test_bad_files(graph, tmp_path, make, match):
    path = make(tmp_path / "bad.pt", graph)
    with pytest.raises(ModelFileError, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_invalid_graph_in_file(graph, tmp_path):
    state = graph_to_state(graph)
    state["nodes"][2]["op"] = "fancy"
    path = write_state(tmp_path / "m.pt", {"format": "f8hw-model", "version": 1, "graph": state, "meta": {}})
    with pytest.raises(ModelFileError, match="invalid graph.*'dw'.*unknown op") as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_save_refuses_invalid_graph_and_bad_path(graph, tmp_path):
    graph.nodes[2].op = "fancy"
    with pytest.raises(ModelFileError, match="invalid graph"):
        save_model(graph, tmp_path / "x.pt")
    assert not os.path.exists(tmp_path / "x.pt")
    graph.nodes[2].op = "conv2d"
    with pytest.raises(ModelFileError, match="cannot write"):
        save_model(graph, tmp_path / "no" / "such" / "dir.pt")


def _edit(nodes, name, fn):
    fn(next(d for d in nodes if d["name"] == name))


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _set_in(field, key, value, k=0):
    return lambda d: (d[field][k] if field == "outputs" else d[field]).__setitem__(key, value)


@pytest.mark.parametrize(
    "node, edit, message",
    [
        ("conv1", _set_in("outputs", "signed", "no"), "node 'conv1': output 0: format 'signed' must be a bool, got 'no'"),
        ("conv1", _set_in("outputs", "signed", 1), "node 'conv1': output 0: format 'signed' must be a bool, got 1"),
        ("dw", _set_in("outputs", "fl", True), "node 'dw': output 0: format 'fl' must be an int, got True"),
        ("dw", _set_in("outputs", "fl", 6.0), "node 'dw': output 0: format 'fl' must be an int, got 6.0"),
        ("dw", _set_in("outputs", "bits", 8.0), "node 'dw': output 0: format 'bits' must be an int, got 8.0"),
        ("dw", _set_in("outputs", "scale", 1), "node 'dw': output 0: unknown format key 'scale'"),
        ("pw", _set_in("attrs", "dilation", [2, 2]), "node 'pw': unknown attr key 'dilation'"),
        ("pw", _set_in("attrs", "groups", True), "node 'pw': attr 'groups' must be an int, got True"),
        ("pw", _set_in("attrs", "kernel", [1, 1.0]), "node 'pw': attr 'kernel' must be a list of 2 ints"),
        ("pw", _set_in("attrs", "w_fl", 6.0), "node 'pw': attr 'w_fl' must be an int, got 6.0"),
        ("input", _set_in("attrs", "shape", [3, 10, 2**40]), "node 'input': attr 'shape' must be a list of 3 ints"),
        ("gap", _set_in("attrs", "shift", 99), "node 'gap': attr 'shift' must lie in 0..63, got 99"),
        ("flat", lambda d: d.pop("attrs"), "node 'flat': node key 'attrs' is missing"),
        ("flat", _set("attrs", []), "node 'flat': attr must be a dict, got []"),
        ("flat", _set("extra", 1), "node 'flat': unknown node key 'extra'"),
        ("flat", _set("inputs", "gap"), "node 'flat': 'inputs' must be a list, got 'gap'"),
        ("pool", _set("weight", torch.zeros(2, dtype=torch.int8)), "node 'pool': op maxpool takes no weight"),
        ("gap", _set("bias", torch.zeros(2, dtype=torch.int32)), "node 'gap': op avgpool_global takes no bias"),
        ("fc", lambda d: d.__setitem__("weight", d["weight"].to(torch.uint8)),
         "node 'fc': weight must be int8 (INT8 weights), got uint8"),
        ("fc", lambda d: d.__setitem__("weight", d["weight"].float()),
         "node 'fc': weight must be int8 (INT8 weights), got float32"),
        ("fc", lambda d: d.__setitem__("bias", d["bias"].to(torch.int64)),
         "node 'fc': bias must be int32 (an INT8 x INT8 layer), got int64"),
        ("fc", _set("bias", [0] * 10), "node 'fc': bias must be a tensor, got [0, 0"),
        ("dw", lambda d: d.update(inputs=["later"], bias=d["bias"].to(torch.bfloat16)),
         "node 'dw': bias must be int32 or int64 (a layer's bias), got bfloat16"),
        ("fc", _set("op", "dense"), "node 'fc': unknown op 'dense'"),
    ],
)
def test_schema_errors_name_node_and_field(graph, tmp_path, node, edit, message):
    state = graph_to_state(graph)
    _edit(state["nodes"], node, edit)
    path = write_state(tmp_path / "m.pt", {"format": "f8hw-model", "version": 1, "graph": state, "meta": {}})
    with pytest.raises(ModelFileError) as e:
        load_model(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update(extra=1), "malformed f8hw model file: file: unknown top-level key 'extra'"),
        (lambda s: s["meta"].update(x=torch.zeros(1)), "meta['x']: must be plain data"),
        (lambda s: s["graph"].update(inputs=[]), "invalid graph: graph: unknown graph key 'inputs'"),
        (lambda s: s["graph"].pop("output"), "invalid graph: graph: graph key 'output' is missing"),
        (lambda s: s["graph"].update(nodes=tuple(s["graph"]["nodes"])), "'nodes' must be a list"),
        (lambda s: s["graph"]["nodes"][3].update(name=5), "node #3: 'name' must be a str, got 5"),
        (lambda s: s["graph"].update(output="gap"), "node 'flat': does not reach the graph output 'gap'"),
    ],
)
def test_file_and_graph_level_schema_errors(graph, tmp_path, edit, message):
    state = {"format": "f8hw-model", "version": 1, "graph": graph_to_state(graph), "meta": {"a": [1, "b"]}}
    edit(state)
    path = write_state(tmp_path / "m.pt", state)
    with pytest.raises(ModelFileError) as e:
        load_model(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_save_refuses_what_load_would_refuse(graph, tmp_path):
    graph.nodes[2].attrs["dilation"] = [1, 1]
    with pytest.raises(ModelFileError, match="refusing to save an invalid graph: node 'dw': unknown attr key"):
        save_model(graph, tmp_path / "a.pt")
    del graph.nodes[2].attrs["dilation"]
    graph.output = "gap"
    with pytest.raises(ModelFileError, match="node 'flat': does not reach the graph output"):
        save_model(graph, tmp_path / "b.pt")
    graph.output = "fc"
    with pytest.raises(ModelFileError, match=r"refusing to save: meta\['n'\]: must be plain data"):
        save_model(graph, tmp_path / "c.pt", {"n": np.float64(1.0)})
    assert not any(tmp_path.iterdir())


def test_every_bundled_model_loads():
    from glob import glob

    import f8hw

    files = [p for p in glob(os.path.join(os.path.dirname(f8hw.__file__), "bundled", "*.pt")) if ".qat." not in p]
    assert len(files) >= 4
    for path in files:
        load_model(path)[0].validate()


def test_fp8_layers_store_uint8_codes_and_int64_biases_in_version_2(tmp_path):
    from f8hw.numerics import TensorFormat
    from f8hw.testing import mixed_layer_graph

    g = mixed_layer_graph(np.random.default_rng(3), "conv", TensorFormat(2, False, 8, "e3m4"), "e4m3",
                          [TensorFormat(3, True)])
    for version, edit, message in [
        (1, lambda d: None, "a version 1 file holding FP8 formats or a 64-bit output (those need version 2)"),
        (2, lambda d: d.update(bias=d["bias"].to(torch.int32)),
         "node 'layer': bias must be int64 (a layer with an FP8 operand), got int32"),
        (2, lambda d: d.update(weight=d["weight"].to(torch.int8)),
         "node 'layer': weight must be uint8 (e4m3 weight codes), got int8"),
    ]:
        state = graph_to_state(g)
        _edit(state["nodes"], "layer", edit)
        path = write_state(tmp_path / "m.pt", {"format": "f8hw-model", "version": version, "graph": state})
        with pytest.raises(ModelFileError) as e:
            load_model(path)
        assert message in str(e.value) and "\n" not in str(e.value)

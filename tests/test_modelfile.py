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

"""Loader fuzzing: random mutations of valid model files end in a valid graph or a one-line F8Error.

A case mutates a valid file either as bytes (flips, truncation, zeroed or repeated spans) or as
content: tensors' dtypes, shapes and values; any dict field or list item changed, removed, added
or swapped for another type; the node order.  The outcome must be a graph that validates and
runs in the golden model on one image, or an F8Error with a one-line message: never another
exception, never a hang (each case has a time limit).  Seeded (F8HW_SEED); ``F8HW_SOAK=N`` runs
N cases per base model instead of the default.
"""

from __future__ import annotations

import copy
import io
import os
import random
import signal

import numpy as np
import pytest
import torch

from f8hw import golden
from f8hw.errors import F8Error
from f8hw.ir import Node
from f8hw.modelfile import load_model, save_model
from f8hw.numerics import FORMATS, TensorFormat
from f8hw.testing import float_layer, mixed_layer_graph, random_conv_graph, random_images

CASES = int(os.environ.get("F8HW_SOAK", "0")) or 120
SEED = os.environ.get("F8HW_SEED", "0")
CASE_SECONDS = 30
"""A case taking longer than this is a hang (the slowest valid case takes well under a second)."""


def _fp8_graph(rng):
    """A version 2 file: FP8 activations and weights, a residual, FP8 maxpool/avgpool and 64-bit logits."""
    e2 = TensorFormat(3, False, 8, "e2m5")
    g = mixed_layer_graph(rng, "conv", TensorFormat(2, False, 8, "e3m4"), "e4m3", [e2], skip_fmt=TensorFormat(5, True))
    gap_out = TensorFormat(4, True, 8, "e3m4")
    g.nodes += [Node("pool", "maxpool", ["layer"], dict(kernel=[2, 2], stride=[2, 2], padding=[1, 1]), [e2]),
                Node("gap", "avgpool_global", ["pool"], {"shift": 2}, [gap_out]),
                Node("flat", "flatten", ["gap"], {}, [gap_out])]
    fc = float_layer("fc", "linear", ["flat"], gap_out, rng.normal(0, 1, (3, 4)), [0.1, -0.2, 0.3], "e5m2", [])
    fc.outputs = [TensorFormat(gap_out.unit + fc.attrs["w_fl"] + FORMATS["e5m2"].q, True, 64)]
    g.nodes.append(fc)
    g.output = "fc"
    return g.validate()


def _bases():
    from f8hw.flow.model import bundled_path

    rng = np.random.default_rng(0)
    return {"cnn": str(bundled_path("cnn")), "resnet": str(bundled_path("resnet")),
            "random": random_conv_graph(rng, in_shape=(2, 6, 6), channels=4), "fp8": _fp8_graph(rng)}


BASES = _bases()


@pytest.fixture(scope="module")
def base_files(tmp_path_factory):
    """Each base model's file bytes and loaded content."""
    out = {}
    for name, base in BASES.items():
        if not isinstance(base, str):
            path = tmp_path_factory.mktemp("base") / f"{name}.pt"
            save_model(base, path, {"seed": 0, "note": "fuzz base"})
            base = str(path)
        with open(base, "rb") as f:
            data = f.read()
        out[name] = (data, torch.load(io.BytesIO(data), weights_only=True))
    return out


def _mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    how = rng.choice(["flip", "truncate", "zero", "repeat"])
    if how == "flip":
        spots = [rng.randrange(len(b)) for _ in range(rng.randint(1, 8))]
        for i in spots:
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip bits at {spots}"
    i = rng.randrange(len(b))
    if how == "truncate":
        return bytes(b[:i]), f"truncate at {i}"
    n = rng.randint(1, 64)
    if how == "zero":
        b[i:i + n] = bytes(len(b[i:i + n]))
        return bytes(b), f"zero {n} bytes at {i}"
    return bytes(b[:i] + b[i:i + n] + b[i:]), f"repeat {n} bytes at {i}"


def _slots(obj, path=()):
    """Every (container, key, path) below obj: dict entries and list items, tensors as leaves."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield obj, k, (*path, k)
        yield from _slots(v, (*path, k))


def _other_value(rng: random.Random, v):
    """A value to put where v was: mostly a near miss of its own type, else a value of another type."""
    if isinstance(v, bool):
        same, other = [not v], [int(v), "no", None]
    elif isinstance(v, int):
        same, other = [v + 1, v - 1, 0, -1, 2 * v, -v, 2**31, -(2**63), 2**64, 8], [float(v), bool(v % 2), str(v), [v]]
    elif isinstance(v, str):
        same, other = ["", ":", v + ":1", v + ":x", v + "x", "input", "int", "e4m3", "e9m9"], [0, None, [v]]
    elif isinstance(v, float):
        same, other = [float("nan"), float("inf"), 0.5], [int(v), "1.0"]
    elif isinstance(v, list):
        same = [[], v[:-1], v + v[-1:], v * 2, v[::-1]]
        other = [tuple(v), {"0": v}, None, 0]
    elif isinstance(v, dict):
        same, other = [{}], [list(v.values()), None, "dict"]
    elif isinstance(v, torch.Tensor):
        same, other = [_tensor_variant(rng, v)], [v.tolist(), None, v.numpy(), 0]
    else:
        same, other = [None], [0, "x", {}, torch.zeros(2, dtype=torch.int8)]
    return rng.choice(same if rng.random() < 0.6 else other)


def _tensor_variant(rng: random.Random, t: torch.Tensor) -> torch.Tensor:
    how = rng.choice(["dtype", "shape", "values", "values"])
    if how == "dtype":
        return t.to(rng.choice([torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.float32,
                                torch.bool, torch.bfloat16]))
    if how == "shape":
        options = [t.reshape(-1), t.unsqueeze(0), t[:0], t.flatten()[:-1] if t.numel() else t]
        if t.dim() > 1:
            options += [t[:-1], t.transpose(0, 1)]
        return rng.choice(options)
    t = t.clone(memory_format=torch.contiguous_format)
    if t.numel():
        extremes = [0, 1, -1, 127, -127, -128, 255, 2**31 - 1, -(2**31), 2**40]
        info = torch.iinfo(t.dtype) if not t.dtype.is_floating_point and t.dtype != torch.bool else None
        for _ in range(rng.randint(1, 4)):
            value = rng.choice(extremes)
            if info is not None and info.min <= value <= info.max:
                t.view(-1)[rng.randrange(t.numel())] = value
    return t


def _mutate_content(rng: random.Random, state: dict) -> str:
    done = []
    for _ in range(rng.randint(1, 3)):
        how = rng.choice(["change", "change", "remove", "add", "tensor", "order"])
        nodes = state.get("graph", {}).get("nodes") if isinstance(state.get("graph"), dict) else None
        if how == "order" and isinstance(nodes, list) and len(nodes) > 1:
            i, j = rng.sample(range(len(nodes)), 2)
            nodes[i], nodes[j] = nodes[j], nodes[i]
            done.append(f"swap nodes {i} and {j}")
            continue
        slots = list(_slots(state))
        if how == "tensor":
            slots = [s for s in slots if isinstance(s[0][s[1]], torch.Tensor)] or slots
        parent, key, path = rng.choice(slots)
        value = parent[key]
        if how == "remove":
            del parent[key]
        elif how == "add":
            if isinstance(parent, dict):
                parent[rng.choice(["extra", "dilation", "kind", "bits", "w_kind", "weight"])] = rng.choice([1, "e4m3", None])
            else:
                parent.insert(key, copy.deepcopy(value))
        elif how == "tensor" and isinstance(value, torch.Tensor):
            parent[key] = _tensor_variant(rng, value)
        else:
            parent[key] = _other_value(rng, value)
        done.append(f"{how} {'/'.join(map(str, path))}")
    return "; ".join(done)


def _on_alarm(signum, frame):
    raise TimeoutError(f"a case ran longer than {CASE_SECONDS} s")


def _outcome(path) -> str:
    """"valid" or "error"; anything else (another exception, a multi-line message) fails the test."""
    try:
        graph, _ = load_model(path)
    except F8Error as e:
        message = str(e)
        assert message and "\n" not in message, message
        return "error"
    graph.validate()
    golden.run(graph, random_images(np.random.default_rng(0), graph, 1))
    return "valid"


@pytest.mark.parametrize("name", list(BASES))
def test_mutated_model_files_load_or_fail_cleanly(name, base_files, tmp_path):
    data, state = base_files[name]
    rng = random.Random(f"{name}-{SEED}")
    path = tmp_path / "m.pt"
    seen = {"valid": 0, "error": 0}
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for case in range(CASES):
            if rng.random() < 0.3:
                mutated, what = _mutate_bytes(rng, data)
                path.write_bytes(mutated)
            else:
                mutated_state = copy.deepcopy(state)
                what = _mutate_content(rng, mutated_state)
                torch.save(mutated_state, path)
            signal.alarm(CASE_SECONDS)
            try:
                seen[_outcome(path)] += 1
            except Exception as e:
                raise AssertionError(f"{name} case {case} ({what}): {type(e).__name__}: {e}") from e
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert seen["error"] > 0 and seen["valid"] > 0, seen  # the mutations reach both outcomes

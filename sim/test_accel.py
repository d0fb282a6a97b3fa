"""Accelerator level: compiled programs on the sim-only top, against f8hw.golden and f8hw.isasim.

Every layer's output tensor is read back from the dumped main memory
(Compiled.read_tensor) and compared with the golden model; the whole memory,
the counters (cycles, busy, stall) and the MARK stamps must equal the ISA
simulator's.  A failure names the first mismatching layer/element and writes
a waveform (path in the message).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import pytest

from accel_lib import LAYER_KINDS, random_single_layer, run_and_check, small_arch
from conftest import FULL
from f8hw import testing
from f8hw.arch import ArchConfig

REPO = Path(__file__).resolve().parents[1]

# (simulator, array size, layers per kind): small arrays on Verilator, a smaller subset on Icarus
RANDOM_LAYER_RUNS = [
    ("verilator", "4x4", 2),
    ("verilator", "2x2", 1),
    ("verilator", "4x2", 1),
    ("icarus", "2x2", 1),
]
if FULL:
    RANDOM_LAYER_RUNS += [("icarus", "4x4", 1), ("icarus", "4x2", 1)]


def bundled_models() -> list[str]:
    """Every bundled integer model file (models/*.pt; *.qat.pt are training checkpoints)."""
    return sorted(os.path.basename(p) for p in glob.glob(str(REPO / "models" / "*.pt"))
                  if not p.endswith(".qat.pt"))


def _params():
    out = []
    for sim, size, reps in RANDOM_LAYER_RUNS:
        for kind in LAYER_KINDS:
            for rep in range(reps):
                out.append(pytest.param(sim, size, kind, rep, id=f"{sim}-{size}-{kind}-{rep}"))
    return out


@pytest.mark.parametrize("simulator,size,kind,rep", _params())
def test_random_layer(simulator, size, kind, rep, seed, tmp_path):
    arch = small_arch(size)
    rng = np.random.default_rng(seed)
    graph = random_single_layer(rng, kind, arch.cols)
    images = testing.random_images(rng, graph, 1)
    r = run_and_check(graph, arch, simulator, images, tmp_path, what=f"random {kind} layer (seed {seed})")
    print(f"[f8hw] {simulator} {size} {kind}: {r['cycles']} cycles, {r['checked']} tensors bit-exact, "
          f"{r['cps']:,.0f} cycles/s")


def _model_params():
    out = []
    for name in bundled_models():
        out.append(pytest.param("verilator", "4x4", name, id=f"verilator-4x4-{name}"))
    if bundled_models():
        out.append(pytest.param("verilator", "4x2", bundled_models()[0], id=f"verilator-4x2-{bundled_models()[0]}"))
        out.append(pytest.param("icarus", "2x2", bundled_models()[0], id=f"icarus-2x2-{bundled_models()[0]}"))
    return out


def _model_images(graph, n, seed):
    shape = tuple(graph.input_node.attrs["shape"])
    if shape == (1, 8, 8):
        from f8hw import digits

        return np.ascontiguousarray(digits.load()["test"][0][:n])
    return testing.random_images(np.random.default_rng(seed), graph, n)


def test_bundled_models_exist():
    assert bundled_models(), f"no bundled model in {REPO / 'models'}"


@pytest.mark.parametrize("simulator,size,model", _model_params())
def test_bundled_model(simulator, size, model, seed, tmp_path):
    from f8hw.modelfile import load_model

    graph, _ = load_model(REPO / "models" / model)
    arch = small_arch(size)
    images = _model_images(graph, 1, seed)
    r = run_and_check(graph, arch, simulator, images, tmp_path, what=f"model {model}")
    print(f"[f8hw] {simulator} {size} {model}: {r['cycles']} cycles, {r['checked']} tensors bit-exact, "
          f"{r['cps']:,.0f} cycles/s")


def _models_16x16() -> list[str]:
    """Every bundled model once (default.pt is a copy of one of them)."""
    names = [m for m in bundled_models() if m != "default.pt"]
    return names or bundled_models()


@pytest.mark.slow
@pytest.mark.parametrize("model", _models_16x16())
def test_bundled_model_16x16(model, seed, tmp_path):
    """Every bundled model on the full default 16x16 configuration (Verilator; one build for all)."""
    from f8hw.modelfile import load_model

    graph, _ = load_model(REPO / "models" / model)
    arch = ArchConfig()
    images = _model_images(graph, 1, seed)
    r = run_and_check(graph, arch, "verilator", images, tmp_path, what=f"model {model} (16x16)")
    print(f"[f8hw] verilator 16x16 {model}: {r['cycles']} cycles, {r['checked']} tensors bit-exact, "
          f"{r['cps']:,.0f} cycles/s, build {r['build'].build_seconds:.0f} s")


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_maxpool_window_reuse(simulator, tmp_path):
    """A 3x3/2 max pool (ResNet's, after the stem) tiled in output rows with LOAD_A window reuse (A_DIAG) and
    PAD_VALUE at the edges, batch 2: RTL == golden and == the ISA simulator (memory, counters, MARKs)."""
    from f8hw.compiler import compile_model, lower, schedule
    from f8hw.ir import Graph, Node
    from f8hw.numerics import TensorFormat

    img = TensorFormat(8, False)
    g = Graph([Node("input", "input", [], {"shape": [5, 11, 12]}, [img]),
               Node("pool", "maxpool", ["input"], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1]), [img])],
              "pool").validate()
    arch = small_arch("4x4")
    ops, _ = lower(g)
    assert schedule(ops[0], arch).diag            # the row tiling with window reuse wins here
    assert compile_model(g, arch, diag=False).program != compile_model(g, arch).program
    images = testing.random_images(np.random.default_rng(5), g, 2)
    run_and_check(g, arch, simulator, images, tmp_path,
                  what="3x3/2 max pool with window reuse")

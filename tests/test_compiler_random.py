"""Compiler bit-exactness sweeps: compiled program on the ISA simulator == golden, every element.

- thousands of random single-layer models (conv with random kernel/stride/
  padding/groups incl. depthwise, signed/unsigned inputs, residuals, 1-3 output
  formats, raw int32 outputs, linear over a flattened map, maxpool, GAP) on
  random array sizes and scratchpad depths (small depths force K-split, weight
  groups, bias groups, single-buffered S/O), with batch 1-2;
- random multi-layer nets on many array sizes; the same model gives identical
  results on 1x1 .. 32x32 and non-square arrays;
- every bundled model in models/ (when present).
Seeded; F8HW_SOAK=N runs N times as many random models.
"""

import glob
import os

import numpy as np
import pytest

from f8hw.arch import ArchConfig
from f8hw.compiler import compile_model
from f8hw.testing import random_conv_graph, random_images

from compiler_cases import random_arch, random_layer_graph
from compiler_harness import check_model

SOAK = int(os.environ.get("F8HW_SOAK", "1") or 1)
SHARDS = 16
PER_SHARD = 64 * SOAK
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one(seed: int) -> None:
    rng = np.random.default_rng([2026, seed])
    g = random_layer_graph(rng)
    arch = random_arch(rng)
    batch = int(rng.integers(1, 3))
    imgs = random_images(rng, g, batch)
    c = compile_model(g, arch, batch=batch, pack_input=bool(seed % 2))
    try:
        check_model(g, c, imgs)
    except AssertionError as e:
        raise AssertionError(f"seed {seed}, arch {arch}, layer {g.nodes[-1].op} {g.nodes[-1].attrs}: {e}") from None


@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_single_layers(shard):
    for i in range(PER_SHARD):
        _one(shard * PER_SHARD + i)


@pytest.mark.parametrize("seed", range(24))
def test_random_nets(seed):
    rng = np.random.default_rng([7, seed])
    g = random_conv_graph(rng, in_shape=(int(rng.integers(1, 4)), int(rng.integers(6, 12)), int(rng.integers(6, 12))),
                          channels=4 * int(rng.integers(1, 6)), classes=int(rng.integers(2, 12)))
    arch = random_arch(rng)
    batch = int(rng.integers(1, 4))
    check_model(g, compile_model(g, arch, batch=batch, pack_input=bool(seed % 2)), random_images(rng, g, batch))


ARRAYS = [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16), (32, 32), (4, 8), (8, 2)]


def test_array_sizes_identical():
    rng = np.random.default_rng(99)
    g = random_conv_graph(rng, in_shape=(3, 8, 8), channels=12, classes=10)
    imgs = random_images(rng, g, 2)
    results = []
    for r, c in ARRAYS:
        comp = compile_model(g, ArchConfig(rows=r, cols=c), batch=2)
        res = check_model(g, comp, imgs)
        results.append(np.stack([comp.read_tensor(res["memory"], "fc", b) for b in range(2)]))
    for r in results[1:]:
        assert np.array_equal(r, results[0])


BUNDLED = sorted(p for p in glob.glob(os.path.join(ROOT, "models", "*.pt")) if not p.endswith(".qat.pt"))


@pytest.mark.skipif(not BUNDLED, reason="no bundled models in models/")
@pytest.mark.parametrize("path", BUNDLED, ids=[os.path.basename(p) for p in BUNDLED])
def test_bundled_models(path):
    from f8hw.modelfile import load_model

    g, _ = load_model(path)
    imgs = random_images(np.random.default_rng(0), g, 2)
    for arch in (ArchConfig(rows=16, cols=16), ArchConfig(rows=4, cols=8)):
        for pack_input in (False, True):
            check_model(g, compile_model(g, arch, batch=2, pack_input=pack_input), imgs)

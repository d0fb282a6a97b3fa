"""The benchmark-size networks compile and run bit-exactly on the 16x16 accelerator (ISA engine).

Every layer's tensor in simulated main memory must equal the golden model's, and the
cycle count must respect the ideal-cycle lower bound MACs / (R*C).  Through
``f8hw.compile`` + ``f8hw.simulate``: the same path as ``f8hw sim --engine isa``, incl.
the memories growing to fit (ResNet-50 needs 2^22 words and 2^18 instructions).
"""

from __future__ import annotations

import pytest

from f8hw.arch import ArchConfig
import f8hw
from f8hw.models import export_random


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("F8HW_CACHE", str(tmp_path / "cache"))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "mobilenetv2"])
def test_zoo_network_bit_exact_on_16x16(arch, tmp_path):
    path = tmp_path / f"{arch}.pt"
    export_random(arch, path, 1, 1, 0)
    cfg = ArchConfig()
    rep = f8hw.simulate(f8hw.compile(path, cfg), engine="isa", race_check=False)
    assert rep.bit_exact, rep.first_mismatch
    checked = [lr for lr in rep.layers if lr.bit_exact is not None]
    assert len(checked) >= len(rep.layers) // 2, "too few layers were checkable (buffer reuse)"
    assert rep.cycles >= rep.macs / (cfg.rows * cfg.cols)
    print(f"[f8hw] {arch} 16x16 isa: {rep.cycles} cycles, utilization {100 * rep.utilization:.1f}%, "
          f"{len(checked)}/{len(rep.layers)} layers checked, mem_words {rep.mem_words}, imem {rep.imem_depth}")

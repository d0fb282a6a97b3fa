"""Issue 15's measured answer: the bench's formats section, its recorded run and the README tables from it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "docs" / "bench" / "formats" / "bench.json"


def _recorded():
    with open(RECORDED) as f:
        bench = json.load(f)
    with open(ROOT / "models" / "accuracy.json") as f:
        acc = json.load(f)
    return bench, acc


def test_readme_format_set_tables_are_the_recorded_run():
    """The README's area / accuracy / cycles tables per format set are docs/bench/formats/bench.json (one
    `f8hw bench --only formats` run) and models/accuracy.json ("format_study" INT8, "format_sets")."""
    from f8hw import models
    from f8hw.bench.formats_table import readme_tables

    bench, acc = _recorded()
    assert bench["meta"]["sections"] == ["formats"] and not bench["errors"]
    rec = bench["formats"]
    assert set(acc["format_sets"]) == set(models.BUNDLED)
    assert readme_tables(rec, acc) in (ROOT / "README.md").read_text()
    # every bundled model ran, bit-exact, and an INT8 model takes exactly the INT8 build's cycles
    cyc = rec["cycles"]
    assert {r["network"] for r in cyc["networks"]} == set(models.BUNDLED)
    for r in cyc["networks"]:
        assert r["int8_on_int8"]["cycles"] == r["int8_on_flexible"]["cycles"] > 0
        assert r["int8_on_int8"]["bit_exact"] and r["int8_on_flexible"]["bit_exact"]
        assert all(v["bit_exact"] for v in r["formats"].values())
    # the ratios are the recorded cells over the INT8 PE's
    base = rec["pe_lane"]["int8_pe"]
    for p in rec["pe_lane"]["pe"]:
        assert p["ratio_cells"] == round(p["cells"] / base["cells"], 3)
        assert p["ratio_ecp5"] == round(p["ecp5_lut"] / base["ecp5_lut"], 3)
    by = {p["formats"]: p for p in rec["pe_lane"]["pe"]}
    assert not by["int8+e2m5+e3m4+e4m3+e5m2"]["in_hardware"] and by["int8+e2m5+e3m4+e4m3"]["in_hardware"]


def test_formats_markdown_shows_every_set():
    from f8hw.bench.formats_table import formats_markdown

    rec = _recorded()[0]["formats"]
    md = "\n".join(formats_markdown(rec))
    for p in rec["pe_lane"]["pe"]:
        assert f"| {p['formats']} | {p['acc_bits']} | {p['cells']} |" in md
    assert "no hardware (accumulator > 64 bits)" in md


def test_int8_model_cycles_equal_on_a_flexible_build():
    """run_format_cycles (small: the cnn on 4x4, INT8 + E2M5): the INT8 model's cycles are the INT8 build's,
    and every FP8 variant is bit-exact on the flexible build."""
    from f8hw.bench.formats import run_format_cycles

    r = run_format_cycles(ROOT / "build" / "test_bench_formats", ("int8", "e2m5"), rows=4, archs=("cnn",))
    (net,) = r["networks"]
    assert r["int8_cycles_equal"] and net["int8_on_int8"]["cycles"] == net["int8_on_flexible"]["cycles"]
    assert set(net["formats"]) == {"e2m5", "flexible"}
    assert all(v["bit_exact"] and v["cycles"] > 0 for v in net["formats"].values())


def test_format_study_restricts_the_selection_to_a_set():
    """format_study with a tuple of formats: the flexible selection among those candidates only."""
    from f8hw import train
    from f8hw.format_study import Study, format_study

    recipe = replace(train.RECIPES["cnn"], fp32_epochs=1, qat_epochs=0)
    s = format_study("cnn", recipe, formats=(("int8", "e4m3"), ("int8",)))
    assert [r.formats for r in s.rows] == ["int8+e4m3", "int8"]
    assert all(set(f) <= {"int8", "e4m3"} for f in s.rows[0].layer_formats.values())
    assert all(set(f) == {"int8"} for f in s.rows[1].layer_formats.values())
    assert s.cpu_s > 0
    assert Study.from_dict("cnn", s.to_dict()) == replace(s, cpu_s=round(s.cpu_s, 1), fp32=round(s.fp32, 6),
                                                          rows=tuple(replace(r, ptq=round(r.ptq, 6), qat=round(r.qat, 6))
                                                                     for r in s.rows))


def test_flexible_build_report(capsys):
    """A flexible build's area report has its flexible PE and FP8 lane beside the INT8 ones, with the ratios,
    and `f8hw build --report` prints them (quick report: generic cells, cached)."""
    import f8hw
    from f8hw.commands.build import _print

    cfg = f8hw.ArchConfig(rows=2, cols=2, formats=("int8", "e2m5"))
    hw = f8hw.build(cfg, ROOT / "build" / "test_bench_formats" / "rtl")
    rep = hw.area(quick=True)
    comps = rep["components"]
    assert {"pe", "requant_shift", "flex_pe", "fp8_lane"} <= set(comps)
    fx = rep["flexible"]
    assert fx["formats"] == "int8+e2m5"
    assert fx["flex_pe_vs_pe"]["cells"] == round(comps["flex_pe"]["cells"] / comps["pe"]["cells"], 3)
    assert fx["fp8_lane_vs_requant_shift"]["cells"] < 1
    _print(cfg, hw.manifest, rep, "rtl", hw.generate_time)
    out = capsys.readouterr().out
    assert "flex_pe" in out and "flexible build (int8+e2m5)" in out


@pytest.mark.parametrize("mode", ["quick", "default", "full"])
def test_formats_section_modes(mode):
    """formats runs in default and full modes, not in quick (unless asked for)."""
    from f8hw.bench import MODES, SECTIONS

    assert "formats" in SECTIONS
    assert MODES[mode]["formats"] == (mode != "quick")

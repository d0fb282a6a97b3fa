"""f8hw bench: the suite runs (quick subset) and its bench.json is sane.  No timed assertions."""

from __future__ import annotations

import json

import pytest

from f8hw import cli
from f8hw.bench import MODES, SECTIONS, markdown, summary
from f8hw.flow import compile as f8_compile, next_pow2


def test_next_pow2():
    assert [next_pow2(n) for n in (0, 1, 2, 3, 4, 5, 1023, 1024, 1025)] == [2, 2, 2, 4, 4, 8, 1024, 1024, 2048]


def test_fitted_memories_fit_the_program():
    from f8hw.arch import ArchConfig
    from f8hw.compiler import compile_model

    prog = f8_compile("cnn", ArchConfig(rows=8, cols=8), memories="fit", use_cache=False)
    comp, arch, graph = prog.compiled, prog.arch, prog.model.graph
    assert arch.mem_words >= len(comp.memory) and arch.mem_words < 2 * max(len(comp.memory), 2)
    assert arch.imem_depth > len(comp.program) and arch.imem_depth <= 2 * (len(comp.program) + 1)
    # the sized configuration compiles to the same program as a roomy one
    assert compile_model(graph, arch).program == comp.program


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = cli.main(["bench", "--quick", "--only", "util,scaling", "--networks", "cnn,mobilenet,resnet20",
                   "--no-progress", "-o", str(out)])
    data = json.loads((out / "bench.json").read_text())
    return rc, out, data


def test_bench_runs(bench_json):
    rc, out, data = bench_json
    assert rc == 0, data["errors"]
    assert data["errors"] == []
    assert (out / "bench.md").read_text().startswith("# f8hw bench")
    for r in data["util"]:
        assert (out / r["plot"]).is_file()
    assert (out / "scaling.png").is_file()


def test_bench_meta(bench_json):
    _, _, data = bench_json
    m = data["meta"]
    for k in ("platform", "cpu_count", "date", "commit", "mode"):
        assert k in m
    assert m["mode"] == "quick" and m["cpu_count"] >= 1
    for r in data["util"] + data["scaling"]:
        assert set(r["at"]) == {"machine", "commit", "date"}
        assert r["array"] == f"{r['rows']}x{r['cols']}"


def test_bench_util_sane(bench_json):
    _, _, data = bench_json
    assert [r["network"] for r in data["util"]] == ["cnn", "mobilenet", "resnet20"]
    for r in data["util"] + data["scaling"]:
        R, C = r["rows"], r["cols"]
        assert 0 < r["utilization"] <= 1
        assert r["cycles"] >= r["macs"] / (R * C)
        assert r["busy"] <= r["cycles"]
        assert r["mem_words"] >= r["memory_image_words"] and r["imem_depth"] > r["instructions"]
        assert r["wall_s"] > 0
    for r in data["util"]:
        R, C = r["rows"], r["cols"]
        assert r["bit_exact"] is True
        assert len(r["layers"]) > 0
        assert sum(lr["macs"] for lr in r["layers"]) == r["macs"]
        assert sum(lr["cycles"] for lr in r["layers"]) <= r["cycles"]
        for lr in r["layers"]:
            assert lr["cycles"] is not None and lr["cycles"] > 0
            if lr["macs"]:
                assert 0 < lr["utilization"] <= 1
                assert lr["cycles"] >= lr["macs"] / (R * C)
                assert lr["steps"] * R * C >= lr["macs"]
                assert lr["utilization"] <= lr["bound"] + 1e-9 <= 1 + 1e-9   # no layer beats its shape's bound
        b8 = r["batch8"]    # the same network for 8 images: bit-exact, 8x the MACs in at most 8x the cycles
        assert b8["batch"] == 8 and b8["bit_exact"] is True
        assert b8["cycles"] <= 8 * r["cycles"] and b8["utilization"] >= r["utilization"] - 1e-9
        assert 0 < b8["utilization"] <= b8["bound"] + 1e-9


def test_bench_scaling_sane(bench_json):
    _, _, data = bench_json
    sizes = [r["rows"] for r in data["scaling"]]
    assert sizes == MODES["quick"]["scaling"]
    assert {r["network"] for r in data["scaling"]} == {"resnet20"}
    macs = {r["macs"] for r in data["scaling"]}
    assert len(macs) == 1  # the same network on every array
    cyc = [r["cycles"] for r in data["scaling"]]
    assert cyc == sorted(cyc, reverse=True)  # a bigger array never takes more cycles
    for r in data["scaling"]:   # the layers that hold each array back, most cycles lost first
        lost = [lr["lost"] for lr in r["top_losses"]]
        assert lost and lost == sorted(lost, reverse=True) and all(lr["limit"] for lr in r["top_losses"])
        assert all(abs(lr["lost"] - (lr["cycles"] - lr["ideal"])) <= 1 for lr in r["top_losses"])


def test_bench_summary_and_markdown(bench_json):
    _, _, data = bench_json
    s = summary(data)
    assert "util_resnet20" in s and "util_mobilenet" in s
    assert s["util_resnet20_round2"]["met"] == (s["util_resnet20"]["value"] >= 0.93)
    md = markdown(data)
    assert "## Array utilization" in md and "## Scaling" in md and "## Brief targets" in md
    assert "batch 8: cycles" in md and "| bound (padding) | array busy |" in md
    assert "What limits resnet20 on 32x32" in md


def test_bench_rejects_unknown_section(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--only", "nope", "-o", str(tmp_path)]) == 3
    assert "nope" in capsys.readouterr().err
    assert "rtl" in SECTIONS


def test_fmax_section_rendered():
    """The Fmax section (nextpnr, cached by Verilog hash) renders; no tools are run here."""
    assert "fmax" in SECTIONS and all("fmax_dyadic" in m for m in MODES.values())
    res = {"meta": {"mode": "quick", "platform": "p", "processor": "x", "cpu_count": 2, "commit": "c",
                    "date": "d", "python": "3"},
           "util": [], "scaling": [], "rtl": [], "gen": [], "area": None, "errors": [],
           "fmax": {"components": {"pe": dict(fmax_mhz=77.9, lcs=100, synth_s=5.0, pnr_s=10.0, cached=True)},
                    "min_mhz": 77.9}}
    md = markdown(res)
    assert "## Fmax estimate" in md and "| pe | 77.9 | 100 |" in md and "ECP5 Fmax" not in md
    res["fmax"]["ecp5"] = {"components": {"pe": dict(fmax_mhz=115.1, lcs=300, synth_s=1.0, pnr_s=2.0)},
                           "min_mhz": 115.1}
    md = markdown(res)
    assert "ECP5 LFE5U-25F" in md and "| 115.1 | 300 |" in md

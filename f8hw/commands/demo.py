"""f8hw demo: the whole flow on the bundled default model, end to end.

1. the integer golden model classifies a few digits test images;
2. the compiler lowers the model for the 16x16 accelerator (instructions, memory image);
3. the generator writes the accelerator's Verilog (build/demo/rtl);
4. the RTL runs the compiled program in Verilator (the same as ``f8hw sim``): every
   layer is compared with the golden model and the cycle count with the ISA simulator.

Nothing is faked: a failing stage stops the demo with a nonzero exit status.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole flow on the bundled default model: golden, compile, Verilog, RTL sim")
    p.add_argument("--model", default="default", help="model file or bundled model name (default: %(default)s)")
    p.add_argument("-n", "--images", type=int, default=8, help="number of test images (default: %(default)s)")
    p.add_argument("--array", default="16x16", help="MAC array RxC (default: %(default)s)")
    p.add_argument("--engine", default="verilator", choices=("verilator", "icarus"),
                   help="RTL simulator (default: %(default)s)")
    p.add_argument("-o", "--outdir", default="build/demo", help="where the Verilog and reports go (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    import f8hw
    from f8hw.arch import parse_array
    from f8hw.flow import markdown_report, mismatch_text, resolve_images, rich_table, summary_lines
    from f8hw.golden import classify

    con = Console()
    model = f8hw.load(args.model)
    con.rule(f"[bold]1. golden model[/]: {model.name} ({len(model.graph.nodes)} nodes)")
    images, source = resolve_images(None, model.input_shape, args.images)
    labels = _labels(model, args.images)
    logits, pred = classify(model.graph, images)
    fmt = model.graph.format(model.graph.output)
    t = Table(title=f"integer golden model on {len(images)} {source.split(' 0..')[0]}")
    for col in ("image", "label", "prediction", f"int32 logits ({model.graph.output}, FL {fmt.fl})"):
        t.add_column(col)
    for i in range(len(images)):
        t.add_row(str(i), "-" if labels is None else str(labels[i]), str(pred[i]), " ".join(map(str, logits[i])))
    con.print(t)
    if labels is not None:
        con.print(f"accuracy on these {len(images)} images: {(pred == labels).mean():.0%}")

    rows, cols = parse_array(args.array)
    arch = f8hw.ArchConfig(rows=rows, cols=cols)
    con.rule(f"[bold]2. compiler[/]: {model.name} for the {arch.array} accelerator, batch {len(images)}")
    prog = f8hw.compile(model, arch, batch=len(images), use_cache=False)
    con.print(f"{prog.instructions} instructions, memory image {len(prog.compiled.memory)} words x {arch.bus_bytes} B, "
              f"{len(prog.compiled.layers)} layers ({prog.compile_time:.2f} s)")

    outdir = Path(args.outdir)
    con.rule(f"[bold]3. generator[/]: Verilog of the {arch.array} accelerator")
    hw = f8hw.build(prog.arch, outdir / "rtl")
    con.print(f"wrote {hw.outdir} {', '.join(p.name for p in hw.files)} ({hw.generate_time:.1f} s)")

    con.rule(f"[bold]4. RTL simulation[/]: {args.engine}, checked against the golden model and the ISA simulator")
    err = Console(stderr=True)
    run_ = f8hw.simulate(prog, engine=args.engine, progress=True, log=lambda m: err.print(f"[dim]{m}[/]"))
    con.print(rich_table(run_))
    for line in summary_lines(run_):
        con.print(line)
    report = outdir / "sim.md"
    report.write_text(markdown_report(run_))
    con.print(f"wrote {report}")
    if not run_.ok:
        if not run_.bit_exact:
            con.print(f"[red]MISMATCH[/]: {mismatch_text(run_.first_mismatch)}")
        if run_.isa_agrees is False:
            con.print(f"[red]RTL and ISA simulator differ[/]: {run_.isa_check}")
        return 1
    con.print(f"[bold green]demo passed[/]: every layer bit-exact on the {arch.array} RTL, "
              f"{run_.cycles:,} cycles, equal to the ISA simulator")
    return 0


def _labels(model, n: int):
    """Digits test labels for a digits model (1x8x8 input), else None."""
    if model.input_shape != (1, 8, 8):
        return None
    from f8hw import digits

    return digits.load()["test"][1][:n]

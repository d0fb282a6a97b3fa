"""f8hw demo: the whole flow on the bundled default model, end to end.

1. the integer golden model classifies a few digits test images;
2. the compiler lowers the model for the 16x16 accelerator (instructions, memory image);
3. the generator writes the accelerator's Verilog (build/demo/rtl);
4. the RTL runs the compiled program in Verilator (the same as ``f8hw sim``): every
   layer is compared with the golden model and the cycle count with the ISA simulator.

Nothing is faked: a failing stage stops the demo with a nonzero exit status.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default.pt"


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole flow on the bundled default model: golden, compile, Verilog, RTL sim")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model file (default: %(default)s)")
    p.add_argument("-n", "--images", type=int, default=8, help="number of test images (default: %(default)s)")
    p.add_argument("--array", default="16x16", help="MAC array RxC (default: %(default)s)")
    p.add_argument("--engine", default="verilator", choices=("verilator", "icarus"),
                   help="RTL simulator (default: %(default)s)")
    p.add_argument("-o", "--outdir", default="build/demo", help="where the Verilog and reports go (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from f8hw import golden
    from f8hw.arch import ArchConfig, parse_array
    from f8hw.commands import sim as simcmd
    from f8hw.hw.build import write_rtl
    from f8hw.modelfile import load_model

    con = Console()
    path = Path(args.model)
    if not path.is_file():
        raise F8Error(f"--model {path}: no such file (the bundled default is {DEFAULT_MODEL}; train it: f8hw train)")
    graph, meta = load_model(path)
    con.rule(f"[bold]1. golden model[/]: {path.name} ({len(graph.nodes)} nodes)")

    shape = tuple(graph.input_node.attrs["shape"])
    if shape == (1, 8, 8):
        from f8hw import digits

        images, labels = (a[: args.images] for a in digits.load()["test"])
        source = "digits test images"
    else:
        images = np.random.default_rng(0).integers(0, 256, size=(args.images, *shape), dtype=np.uint8)
        labels = None
        source = "random images (model input is not 1x8x8 digits)"
    out = golden.run(graph, images)
    logits = out[graph.output].reshape(len(images), -1)
    pred = logits.argmax(axis=1)
    t = Table(title=f"integer golden model on {len(images)} {source}")
    t.add_column("image")
    t.add_column("label")
    t.add_column("prediction")
    t.add_column(f"int32 logits ({graph.output}, FL {graph.format(graph.output).fl})")
    for i in range(len(images)):
        t.add_row(str(i), "-" if labels is None else str(labels[i]), str(pred[i]), " ".join(map(str, logits[i])))
    con.print(t)
    if labels is not None:
        con.print(f"accuracy on these {len(images)} images: {(pred == labels).mean():.0%}")

    rows, cols = parse_array(args.array)
    arch = ArchConfig(rows=rows, cols=cols)
    con.rule(f"[bold]2. compiler[/]: {path.name} for the {arch.array} accelerator, batch {len(images)}")
    t0 = time.perf_counter()
    compiled = simcmd.compile_model(graph, arch, len(images))
    con.print(f"{len(compiled.program)} instructions, memory image {len(compiled.memory)} words x {arch.bus_bytes} B, "
              f"{len(compiled.layers)} layers ({time.perf_counter() - t0:.2f} s)")

    outdir = Path(args.outdir)
    con.rule(f"[bold]3. generator[/]: Verilog of the {arch.array} accelerator")
    t0 = time.perf_counter()
    manifest = write_rtl(arch, outdir / "rtl")
    files = ", ".join(sorted(manifest.get("files", {}))) if isinstance(manifest.get("files"), dict) else ""
    con.print(f"wrote {outdir / 'rtl'} {files} ({time.perf_counter() - t0:.1f} s)")

    con.rule(f"[bold]4. RTL simulation[/]: {args.engine}, checked against the golden model and the ISA simulator")
    err = Console(stderr=True)
    rep, _ = simcmd.simulate(path, arch, args.engine, None, len(images),
                             progress_console=err, log=lambda m: err.print(f"[dim]{m}[/]"))
    simcmd.print_table(rep, con)
    report = outdir / "sim.md"
    report.write_text(simcmd.markdown_report(rep))
    con.print(f"wrote {report}")
    if not rep.ok:
        if not rep.bit_exact:
            con.print(f"[red]MISMATCH[/]: {simcmd.mismatch_text(rep.first_mismatch)}")
        if rep.isa_agrees is False:
            con.print(f"[red]RTL and ISA simulator differ[/]: {rep.isa_check}")
        return 1
    con.print(f"[bold green]demo passed[/]: every layer bit-exact on the {arch.array} RTL, "
              f"{rep.cycles:,} cycles, equal to the ISA simulator")
    return 0

"""f8hw sim: compile a model, run it on an engine, check every layer bit-exact against the golden model.

The default engine is the generated RTL on Verilator; with an RTL engine the
ISA simulator runs the same program too and must agree on cycles, counters,
MARK stamps and final memory.  Exit status 1 names the first mismatch.
"""

from __future__ import annotations

import sys

from f8hw.commands.options import (add_compiler_options, add_formats_option, add_memory_options, arch_and_policy,
                                   compiler_options, writable)


def register(sub) -> None:
    from f8hw.flow import DEFAULT_MODEL_NAME, ENGINES

    p = sub.add_parser("sim", help="compile a model, simulate it, check every layer bit-exact, report cycles")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL_NAME,
                   help="model file or bundled model name (default: the bundled %(default)r)")
    p.add_argument("--array", default="16x16", help="MAC array RxC (default: %(default)s)")
    add_formats_option(p)
    p.add_argument("--engine", default="verilator", choices=ENGINES,
                   help="simulation engine: the RTL on verilator or icarus, or the ISA simulator (default: %(default)s)")
    p.add_argument("--waves", default=None, metavar="FILE",
                   help="RTL engines: write waveforms to FILE (.vcd for verilator, .fst or .vcd for icarus)")
    p.add_argument("--no-isa-check", action="store_true",
                   help="RTL engines: skip the cycle cross-check against the ISA simulator")
    p.add_argument("--input", default=None,
                   help="input image(s): .npy uint8 (N,C,H,W) or (C,H,W), or a PNG (default: digits test images)")
    p.add_argument("--batch", type=int, default=1, help="images per run (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON, with logits and predictions per image (no table, no progress)")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a per-layer utilization/cycles plot")
    p.add_argument("--report", default=None, metavar="MD", help="write a markdown report")
    add_memory_options(p)
    add_compiler_options(p)
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory a run may use, e.g. 8G (default: half of the available memory); a larger batch "
                        "runs as several programs that fit, estimated before anything big is allocated")
    p.add_argument("--no-cache", action="store_true", help="compile even if a cached compilation exists")
    p.add_argument("--no-race-check", action="store_true", help="isa engine: skip race detection (faster)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    import f8hw
    from f8hw.flow import RTL_ENGINES, markdown_report, mismatch_text, rich_table, summary_lines, write_plot
    from f8hw.fileio import write_text
    from f8hw.flow.images import resolve_images
    from f8hw.flow.chunks import simulate_in_chunks
    from f8hw.flow.resources import fitting_batch, parse_size

    writable(args.plot, "--plot", (".png",))
    writable(args.report, "--report")
    writable(args.waves, "--waves", (".vcd", ".fst"))
    if args.waves and args.engine not in RTL_ENGINES:
        raise f8hw.F8Error(f"--waves {args.waves}: waveforms come from an RTL engine (verilator, icarus), "
                           f"not {args.engine!r}")
    arch, memories = arch_and_policy(args)
    if args.engine in RTL_ENGINES:
        from f8hw.arch import require_rtl

        require_rtl(arch, f"--engine {args.engine}")
    err = Console(stderr=True)
    log = None if args.json else (lambda s: err.print(f"[dim]{s}[/]"))
    model = f8hw.load(args.model)
    images, desc = resolve_images(args.input, model.input_shape, args.batch)
    chunk = fitting_batch(model, arch, args.batch, None if args.max_memory is None else parse_size(args.max_memory),
                          compiler_options(args), log)
    if chunk < args.batch:
        if args.waves:
            raise f8hw.F8Error(f"--waves {args.waves}: batch {args.batch} runs as several programs of {chunk} "
                               f"images (--max-memory); waveforms need one program: use --batch {chunk}")
        run_ = simulate_in_chunks(model, images, arch, chunk, compile_options=compiler_options(args),
                                  memories=memories, use_cache=not args.no_cache, log=log, engine=args.engine,
                                  isa_check=not args.no_isa_check, race_check=not args.no_race_check)
    else:
        prog = f8hw.compile(model, arch, batch=args.batch, memories=memories, use_cache=not args.no_cache, log=log,
                            **compiler_options(args))
        run_ = _simulate(prog, images, args, None if args.json else err, log)
    run_.input = desc if args.input is None else f"{args.input} images 0..{args.batch - 1}"
    if args.plot:
        write_plot(run_, args.plot)
    if args.report:
        write_text(args.report, markdown_report(run_))
    if args.json:
        print(run_.to_json())
    else:
        out = Console()
        out.print(rich_table(run_))
        for line in summary_lines(run_):
            out.print(line)
        for path in (args.plot, args.report, args.waves):
            if path:
                out.print(f"wrote {path}")
    status = 0
    if not run_.bit_exact:
        print(f"MISMATCH: {mismatch_text(run_.first_mismatch)}", file=sys.stderr)
        status = 1
    if run_.isa_agrees is False:
        print(f"RTL AND ISA SIMULATOR DIFFER: {run_.isa_check}", file=sys.stderr)
        status = 1
    return status


def _simulate(prog, images, args, console, log):
    """f8hw.simulate with a progress bar on ``console`` (None: quiet)."""
    import f8hw

    kw = dict(engine=args.engine, isa_check=not args.no_isa_check, race_check=not args.no_race_check,
              waves=args.waves, log=log)
    if console is None or args.engine != "isa":  # RTL engines show their own build/run status
        return f8hw.simulate(prog, images, progress=console is not None, **kw)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(f"[bold]{args.engine}[/] simulating"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} instructions"), TimeElapsedColumn(),
                   console=console, transient=True)
    task = bar.add_task("sim", total=prog.instructions)
    with bar:
        return f8hw.simulate(prog, images, progress=lambda done, total: bar.update(task, completed=min(done, total)),
                             **kw)

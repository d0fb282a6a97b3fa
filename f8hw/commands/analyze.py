"""f8hw analyze fl / fp8: the paper's FL-vs-sigma analysis (Fig. 3/4) and its FP8 analogue."""

from __future__ import annotations

import math


def register(sub) -> None:
    p = sub.add_parser("analyze", help="numerical analyses (fl: optimal FL vs sigma, paper Fig. 3/4; "
                                       "fp8: the same for INT8 and the FP8 formats)")
    what = p.add_subparsers(title="analyses", metavar="ANALYSIS", required=True)
    fl = what.add_parser("fl", help="relative quantization error per FL vs sigma; fit the 40/70 thresholds")
    fl.add_argument("-o", "--outdir", default="build/analyze", help="output directory (default: %(default)s)")
    fl.add_argument("--samples", type=int, default=10000, help="Gaussian samples per sigma (paper: 10000)")
    fl.add_argument("--json", action="store_true", help="print the fitted thresholds as JSON")
    fl.set_defaults(func=run_fl)
    fp8 = what.add_parser("fp8", help="relative error of INT8/E2M5/E3M4/E4M3/E5M2 per scale vs sigma (Gaussian and "
                                      "heavy-tailed); fit the FP8 sigma rule")
    fp8.add_argument("-o", "--outdir", default="build/analyze", help="output directory (default: %(default)s)")
    fp8.add_argument("--samples", type=int, default=10000, help="samples per distribution (default: %(default)s)")
    fp8.add_argument("--json", action="store_true", help="print the fitted constants and errors as JSON")
    fp8.set_defaults(func=run_fp8)


def run_fl(args) -> int:
    from f8hw.analyze import write_fl_analysis

    png, csv_path, results = write_fl_analysis(args.outdir, n_samples=args.samples)
    if args.json:
        import json

        print(json.dumps({"plot": str(png), "csv": str(csv_path), "results": [
            dict(kind="signed" if r.signed else "unsigned", constant=r.constant, paper_constant=r.paper_constant,
                 rule_excess=r.rule_excess,
                 switches=[dict(fl_from=hi, fl_to=lo, sigma=s, c=c) for hi, lo, s, c in r.switches])
            for r in results]}, indent=2))
        return 0
    for r in results:
        kind = "signed" if r.signed else "unsigned"
        print(f"{kind}: optimum switches (FL from -> to at sigma, c = sigma * 2^(to+1)):")
        for hi, lo, s, c in r.switches:
            print(f"  {hi} -> {lo}  sigma {s:9.4f}  c {c:6.2f}")
        off = math.log2(r.constant / r.paper_constant)
        print(
            f"  fitted c = {r.constant:.2f}, paper {r.paper_constant:g} "
            f"({off:+.2f} in log2, i.e. {abs(off):.0%} of one FL step)"
        )
        print(f"  paper's rule vs optimal FL: at most {r.rule_excess:.2%} more relative error")
    print(f"wrote {png}")
    print(f"wrote {csv_path}")
    return 0


def run_fp8(args) -> int:
    from f8hw.analyze import write_fp8_analysis

    png, csv_path, results = write_fp8_analysis(args.outdir, n_samples=args.samples)
    rows = [dict(format="int8" if r.kind == "int" else r.kind, distribution=r.distribution, constant=r.constant,
                 rule_constant=r.rule_constant, best_error=r.best_error, rule_excess=r.rule_excess) for r in results]
    if args.json:
        import json

        print(json.dumps({"plot": str(png), "csv": str(csv_path), "results": rows}, indent=2))
        return 0
    print("format  distribution  fitted c   rule c   best rel. error  rule's extra error")
    for r in rows:
        print(f"{r['format']:7} {r['distribution']:12} {r['constant']:9.3g} {r['rule_constant']:8.3g} "
              f"{r['best_error']:12.4%} {r['rule_excess']:14.4%}")
    print("sigma rule: fl = floor(log2(c / sigma)), c fitted on the Gaussian (f8hw.numerics.FP8_SIGMA_CONSTANT)")
    print(f"wrote {png}")
    print(f"wrote {csv_path}")
    return 0

"""f8hw compile: model file -> program + memory image + symbols for an accelerator configuration."""

from __future__ import annotations

from f8hw.commands.options import (add_compiler_options, add_formats_option, add_memory_options, arch_and_policy,
                                   compiler_options)


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile an integer model file for an accelerator configuration")
    p.add_argument("model", help="f8hw model file (.pt) or bundled model name")
    p.add_argument("--array", default="16x16", help="MAC array RxC (default: %(default)s)")
    add_formats_option(p)
    p.add_argument("--batch", type=int, default=1, help="images per run (default: %(default)s)")
    p.add_argument("-o", "--output", default=None, help="output directory (default: build/<model name>)")
    add_memory_options(p)
    add_compiler_options(p)
    p.add_argument("--json", action="store_true", help="print the summary (per-layer tiling) as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    import f8hw

    arch, memories = arch_and_policy(args)
    model = f8hw.load(args.model)
    out = Path(args.output or Path("build") / Path(model.name).stem)
    if out.exists() and not out.is_dir():
        raise f8hw.F8Error(f"-o {out}: exists and is not a directory")
    prog = f8hw.compile(model, arch, batch=args.batch, memories=memories, **compiler_options(args))
    paths = prog.save(out)
    if args.json:
        print(json.dumps({**prog.to_dict(), "output": str(out), "files": paths}, indent=2))
        return 0
    s = prog.to_dict()
    rows, cols = arch.rows, arch.cols
    print(f"{args.model} -> {out}  (array {s['array']}, batch {args.batch}"
          f"{', input packed for ' + s['input_packing'] if s['input_packing'] else ''})")
    for k, (a, b) in prog.grown.items():
        print(f"  {k} grown {a} -> {b} to fit the model")
    print(f"  {s['instructions']} instructions, {s['memory_words']} memory words of {cols} bytes, "
          f"{s['macs']} MACs (ideal {s['macs'] / (rows * cols):.0f} cycles)")
    print(f"  {'layer':<16s} {'kind':<6s} {'MACs':>10s} {'px tiles':>8s} {'co tiles':>8s} {'K chunks':>8s} "
          f"{'A loads':>7s} {'W loads':>7s}")
    for li in s["layers"]:
        t = li["tiles"]
        print(f"  {li['name']:<16s} {li['kind']:<6s} {li['macs']:>10d} {t['pixel_tiles']:>8d} {t['co_tiles']:>8d} "
              f"{t['k_chunks']:>8d} {t['a_loads']:>7d} {t['w_loads']:>7d}")
    print(f"  wrote {', '.join(Path(p).name for p in paths.values())}")
    return 0

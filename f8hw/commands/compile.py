"""f8hw compile: model file -> program + memory image + symbols for an accelerator configuration."""

from __future__ import annotations


def register(sub) -> None:
    from f8hw.commands.sim import add_compiler_options

    p = sub.add_parser("compile", help="compile an integer model file for an accelerator configuration")
    p.add_argument("model", help="f8hw model file (.pt)")
    p.add_argument("--array", default="16x16", help="MAC array RxC (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="images per run (default: %(default)s)")
    p.add_argument("-o", "--output", default=None, help="output directory (default: build/<model name>)")
    p.add_argument("--imem-depth", type=int, default=None, help="instruction memory words of the target (default: ArchConfig's)")
    p.add_argument("--mem-words", type=int, default=None, help="main-memory words of the target (default: ArchConfig's)")
    add_compiler_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from f8hw.arch import ArchConfig, parse_array
    from f8hw.commands.sim import compiler_options
    from f8hw.compiler import compile_file

    rows, cols = parse_array(args.array)
    extra = {k: v for k, v in (("imem_depth", args.imem_depth), ("mem_words", args.mem_words)) if v is not None}
    arch = ArchConfig(rows=rows, cols=cols, **extra)
    out = args.output or os.path.join("build", os.path.splitext(os.path.basename(args.model))[0])
    compiled = compile_file(args.model, arch, batch=args.batch, **compiler_options(args))
    paths = compiled.save(out)
    macs = sum(li.macs for li in compiled.layers)
    packed = (compiled.symbols.get("input_packing") or {}).get("layer")
    print(f"{args.model} -> {out}  (array {arch.array}, batch {args.batch}"
          f"{f', input packed for {packed}' if packed else ''})")
    print(f"  {len(compiled.program)} instructions, {compiled.memory.shape[0]} memory words of {cols} bytes, "
          f"{macs} MACs (ideal {macs / (rows * cols):.0f} cycles)")
    print(f"  {'layer':<16s} {'kind':<6s} {'MACs':>10s} {'px tiles':>8s} {'co tiles':>8s} {'K chunks':>8s} "
          f"{'A loads':>7s} {'W loads':>7s}")
    for li in compiled.layers:
        t = li.tiles
        print(f"  {li.name:<16s} {li.kind:<6s} {li.macs:>10d} {t['pixel_tiles']:>8d} {t['co_tiles']:>8d} "
              f"{t['k_chunks']:>8d} {t['a_loads']:>7d} {t['w_loads']:>7d}")
    print(f"  wrote {', '.join(os.path.basename(p) for p in paths.values())}")
    return 0

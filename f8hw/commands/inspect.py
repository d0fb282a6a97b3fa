"""f8hw inspect: per-layer weight and activation formats and scales of a model file."""

from __future__ import annotations

from f8hw.commands.options import writable


def register(sub) -> None:
    p = sub.add_parser("inspect", help="per-layer table of weight/activation formats and FLs of a model file")
    p.add_argument("model", help="f8hw model file or bundled model name")
    p.add_argument("--plot", metavar="PNG", help="also plot the FLs per layer (like F8Net Fig. 2b)")
    p.add_argument("--json", action="store_true", help="print the formats of every node as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    import f8hw
    from f8hw.flow.report import plot_fls

    writable(args.plot, "--plot", (".png",))
    model = f8hw.load(args.model)
    if args.plot:
        plot_fls(model, args.plot)
    if args.json:
        print(json.dumps(model.to_dict(), indent=2))
        return 0
    table = Table(title=f"{args.model}  ({model.meta.get('arch', 'model')}, {len(model.graph.nodes)} nodes)")
    for col in ("node", "op", "output shape", "input formats", "w_fl", "output formats"):
        table.add_column(col)
    for n in model.layers():
        table.add_row(n.name, n.op, "x".join(map(str, n.shape)), ", ".join(map(str, n.inputs)),
                      n.weight_text, ", ".join(map(str, n.outputs)))
    con = Console()
    con.print(table)
    for key in ("fp32_test_accuracy", "f8_test_accuracy"):
        if key in model.meta:
            con.print(f"{key}: {100 * model.meta[key]:.2f}%")
    if args.plot:
        con.print(f"plot -> {args.plot}")
    return 0

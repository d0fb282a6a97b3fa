"""f8hw inspect: per-layer weight and activation fractional lengths of a model file."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("inspect", help="per-layer table of weight/activation FLs of a model file")
    p.add_argument("model", help="f8hw model file")
    p.add_argument("--plot", metavar="PNG", help="also plot the FLs per layer (like F8Net Fig. 2b)")
    p.set_defaults(func=run)


def layer_rows(graph) -> list[dict]:
    """One row per node: op, output shape, input formats, weight FL, output formats."""
    shapes = graph.shapes()
    rows = []
    for node in graph.nodes:
        ins = [graph.format(r) for r in node.inputs]
        rows.append(
            {
                "name": node.name,
                "op": node.op,
                "shape": shapes[node.refs()[0]],
                "inputs": ins,
                "w_fl": node.attrs.get("w_fl"),
                "outputs": node.outputs,
            }
        )
    return rows


def _fmt(f) -> str:
    if f.bits == 32:
        return f"int32 fl{f.fl}"
    return f"{'s' if f.signed else 'u'}8 fl{f.fl}"


def plot(rows: list[dict], path: str, title: str) -> None:
    """Weight FL and input-activation FL of every conv/linear layer, in graph order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r for r in rows if r["w_fl"] is not None]
    idx = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(layers) + 3), 3.5))
    ax.plot(idx, [r["w_fl"] for r in layers], "o-", label="weight FL")
    ax.plot(idx, [r["inputs"][0].fl for r in layers], "s--", label="activation (input) FL")
    ax.set_xlabel("layer")
    ax.set_ylabel("fractional length")
    ax.set_yticks(range(0, 9))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from f8hw.modelfile import load_model

    graph, meta = load_model(args.model)
    rows = layer_rows(graph)
    table = Table(title=f"{args.model}  ({meta.get('arch', 'model')}, {len(graph.nodes)} nodes)")
    for col in ("node", "op", "output shape", "input formats", "w_fl", "output formats"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["op"],
            "x".join(map(str, r["shape"])),
            ", ".join(_fmt(f) for f in r["inputs"]),
            "" if r["w_fl"] is None else str(r["w_fl"]),
            ", ".join(_fmt(f) for f in r["outputs"]),
        )
    con = Console()
    con.print(table)
    for key in ("fp32_test_accuracy", "f8_test_accuracy"):
        if key in meta:
            con.print(f"{key}: {100 * meta[key]:.2f}%")
    if args.plot:
        plot(rows, args.plot, f"{meta.get('arch', args.model)}: fractional lengths per layer")
        con.print(f"plot -> {args.plot}")
    return 0

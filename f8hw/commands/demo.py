"""f8hw demo: run every stage that exists, end to end, on the bundled default model.

A thin orchestrator: each stage is one function; a stage whose module does not
exist yet is reported as "not there yet", never faked.  Engineers adding a
stage replace its entry in STAGES with a function that runs it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default.pt"

STAGES = [
    ("f8hw.compiler", "compiler (tiling, instruction stream, memory image)"),
    ("f8hw.isasim", "ISA simulator (bit-exact, cycle model)"),
    ("f8hw.hw", "hardware generator (Amaranth -> Verilog, area report)"),
    ("f8hw.rtlsim", "RTL simulation (cocotb + Verilator, bit-exact check vs golden)"),
]


def register(sub) -> None:
    p = sub.add_parser("demo", help="run what exists end to end on the bundled default model")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model file (default: %(default)s)")
    p.add_argument("-n", "--images", type=int, default=8, help="number of test images (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from f8hw import golden
    from f8hw.modelfile import load_model

    con = Console()
    rng = np.random.default_rng(0)
    path = Path(args.model)
    if path.is_file():
        graph, meta = load_model(path)
        con.print(f"[bold]model[/]: {path} ({len(graph.nodes)} nodes) meta={meta}")
        trained = True
    else:
        from f8hw.testing import random_conv_graph

        con.print(f"[yellow]not there yet[/]: trained default model ({path}); "
                  "using a random-weight graph from f8hw.testing instead: its predictions mean nothing")
        graph = random_conv_graph(rng, in_shape=(1, 8, 8))
        trained = False

    shape = tuple(graph.input_node.attrs["shape"])
    if shape == (1, 8, 8):
        from f8hw import digits

        images, labels = (a[: args.images] for a in digits.load()["test"])
        source = "digits test images"
    else:
        images = rng.integers(0, 256, size=(args.images, *shape), dtype=np.uint8)
        labels = None
        source = "random images (model input is not 1x8x8 digits)"

    out = golden.run(graph, images)
    logits = out[graph.output].reshape(len(images), -1)
    pred = logits.argmax(axis=1)
    t = Table(title=f"golden model (integer numpy) on {len(images)} {source}")
    t.add_column("image")
    t.add_column("label")
    t.add_column("prediction")
    t.add_column(f"logits ({graph.output}, fl {graph.format(graph.output).fl})")
    for i in range(len(images)):
        t.add_row(str(i), "-" if labels is None else str(labels[i]), str(pred[i]), " ".join(map(str, logits[i])))
    con.print(t)
    if labels is not None and trained:
        con.print(f"accuracy on these {len(images)} images: {(pred == labels).mean():.0%}")

    for module, what in STAGES:
        if importlib.util.find_spec(module) is None:
            con.print(f"[yellow]not there yet[/]: {what} ({module})")
        else:
            con.print(f"[yellow]not wired into the demo yet[/]: {what} ({module} exists)")
    return 0

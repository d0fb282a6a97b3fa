"""f8hw zoo: export a benchmark-size network (random weights, calibrated on random images)."""

from __future__ import annotations

from f8hw.commands.options import writable
from f8hw.models import ARCHS


def register(sub) -> None:
    p = sub.add_parser("zoo", help="export a benchmark network (random weights calibrated on random images)")
    p.add_argument("name", choices=list(ARCHS), help="architecture")
    p.add_argument("-o", "--output", required=True, help="model file to write")
    p.add_argument("--batches", type=int, default=2, help="calibration batches (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=2, help="images per calibration batch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and images (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from f8hw.models import export_random

    writable(args.output, "-o", (".pt",))  # before the long work, not after it
    graph = export_random(args.name, args.output, args.batches, args.batch_size, args.seed)
    layers = sum(n.op in ("conv2d", "linear") for n in graph.nodes)
    Console().print(f"{args.name}: {len(graph.nodes)} nodes, {layers} conv/linear layers -> {args.output}")
    return 0

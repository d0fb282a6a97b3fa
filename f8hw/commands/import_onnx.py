"""f8hw import: a QONNX file (e.g. a Brevitas export) as an f8hw model file."""

from __future__ import annotations

from f8hw.commands.options import writable


def register(sub) -> None:
    p = sub.add_parser("import", help="import a QONNX model (Brevitas, FINN) as an f8hw model file, exactly")
    p.add_argument("model", help="QONNX file (.onnx) with power-of-two Quant nodes")
    p.add_argument("-o", "--output", required=True, help="f8hw model file to write (.pt)")
    p.add_argument("--round-scales", action="store_true",
                   help="round non-power-of-two scales to the nearest power of two (not exact: reports the "
                        "accuracy change on calibration data)")
    p.add_argument("--calibration", default=None, metavar="NPY",
                   help="--round-scales: uint8 images (N,C,H,W) .npy to measure the change on "
                        "(default: digits test images for 1x8x8, else random)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from f8hw.flow.images import read_image_file
    from f8hw.interop import import_qonnx
    from f8hw.modelfile import save_model

    writable(args.output, "--output", (".pt",))
    calib = read_image_file(args.calibration, None) if args.calibration else None
    result = import_qonnx(args.model, round_scales=args.round_scales, calibration=calib)
    save_model(result.graph, args.output, result.meta(args.model))
    con = Console()
    layers = sum(n.op in ("conv2d", "linear") for n in result.graph.nodes)
    con.print(f"imported {args.model}: {len(result.graph.nodes)} nodes ({layers} conv/linear), input scale "
              f"2^-{result.input_fl}, {'bit-exact' if result.exact else 'NOT bit-exact'}")
    for line in result.rounded_scales + result.notes:
        con.print(f"  {line}")
    if result.accuracy:
        a = result.accuracy
        con.print(f"  --round-scales on {a['images']} images ({a['labels']}): top-1 {100 * a['before']:.2f}% -> "
                  f"{100 * a['after']:.2f}% ({100 * a['agreement']:.2f}% same predictions)")
    con.print(f"wrote {args.output}")
    return 0

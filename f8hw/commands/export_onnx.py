"""f8hw export-onnx: an f8hw model as QONNX (power-of-two Quant nodes) for FINN, hls4ml, onnxruntime."""

from __future__ import annotations

from f8hw.commands.options import writable


def register(sub) -> None:
    p = sub.add_parser("export-onnx", help="write an f8hw model as QONNX (Quant nodes with power-of-two scales)")
    p.add_argument("model", help="f8hw model file or bundled model name")
    p.add_argument("-o", "--output", required=True, help="QONNX file to write (.onnx)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the ONNX input (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    import f8hw
    from f8hw.interop import export_qonnx

    writable(args.output, "--output", (".onnx",))
    if args.batch < 1:
        raise f8hw.F8Error(f"--batch {args.batch}: must be a positive integer")
    model = f8hw.load(args.model)
    export_qonnx(model.graph, args.output, batch=args.batch)
    print(f"wrote {args.output}: {len(model.graph.nodes)} nodes; input = image * 2^-8 "
          f"(float, shape ({args.batch}, {', '.join(map(str, model.input_shape))}))")
    return 0

"""Pass 1 (legalize): is every node supported by the target configuration?

Rejects, with a CompileError naming the layer and the reason (never a silent
host fallback):
- ops the accelerator has no lowering for (anything outside IR v1's
  input/conv2d/linear/maxpool/avgpool_global/flatten);
- number formats other than INT8 (and the INT32 logits): FP8 activations or
  weights and 64-bit outputs are golden-model only for now;
- layers whose 32-bit accumulator (or accumulator + bias, or GAP sum) could
  overflow (proof: f8hw.numerics.accumulator_bound, valid for any
  accumulation order, so also for the K-split order of the schedule);
- a residual operand that is not stored in the output's layout;
- shapes that do not fit the instruction fields (coordinates, channel blocks).
Scratchpad-capacity problems are found by the tiling pass (schedule.py),
which raises the same error type.
"""

from __future__ import annotations

from f8hw.arch import ArchConfig
from f8hw.compiler.errors import CompileError
from f8hw.errors import AccumulatorOverflowError, F8Error
from f8hw.ir import OPS, Graph, canonical_ref
from f8hw.isa import OP_BY_NAME
from f8hw.numerics import check_accumulator

SUPPORTED = ("input", "conv2d", "linear", "maxpool", "avgpool_global", "flatten")


def _field_hi(op: str, name: str) -> int:
    return next(f.hi for f in OP_BY_NAME[op].fields if f.name == name)


def _check_formats(node) -> None:
    """INT8 only: FP8 activations/weights and 64-bit raw outputs have no lowering yet."""
    w_kind = node.attrs.get("w_kind", "int")
    if w_kind != "int":
        raise CompileError(f"layer {node.name!r}: weight format {w_kind} is not supported by this accelerator "
                           f"(INT8 only)")
    for f in node.outputs:
        kind = getattr(f, "kind", "int")
        if kind != "int":
            raise CompileError(f"layer {node.name!r}: activation format {kind} is not supported by this "
                               f"accelerator (INT8 only)")
        if getattr(f, "bits", 8) == 64:
            raise CompileError(f"layer {node.name!r}: a 64-bit output is not supported by this accelerator "
                               f"(INT8 with int32 logits only)")


def legalize(graph: Graph, arch: ArchConfig) -> Graph:
    """Check graph against arch; returns the graph (validated) or raises CompileError."""
    for node in graph.nodes:
        if node.op not in SUPPORTED:
            known = ", ".join(o for o in OPS if o in SUPPORTED)
            raise CompileError(f"layer {node.name!r}: unsupported op {node.op!r} (the accelerator lowers {known})")
        _check_formats(node)
    # accumulator overflow proof, per layer, before anything else can complain
    try:
        shapes = graph.shapes()
    except F8Error as e:
        raise CompileError(f"invalid graph: {e}") from None
    for node in graph.nodes:
        if node.op in ("conv2d", "linear"):
            try:
                check_accumulator(node.name, node.weight, node.bias, graph.format(node.inputs[0]))
            except AccumulatorOverflowError as e:
                raise CompileError(f"layer {node.name!r}: accumulator overflow possible: {e}") from None
    try:
        graph.validate()
    except AccumulatorOverflowError as e:
        raise CompileError(f"accumulator overflow possible: {e}") from None
    except F8Error as e:
        raise CompileError(f"invalid graph: {e}") from None
    coord_hi = _field_hi("LOAD_A", "ih0")
    ncb_hi = _field_hi("LOAD_A", "ncb")
    for node in graph.nodes:
        for ref in [canonical_ref(r) for r in node.inputs] + node.refs():
            s = shapes[ref]
            if len(s) == 3:
                c, h, w = s
                if max(h, w) + 8 > coord_hi:
                    raise CompileError(f"layer {node.name!r}: tensor {ref!r} of {h}x{w} pixels exceeds the "
                                       f"LOAD_A coordinate range ({coord_hi})")
                if -(-c // arch.cols) > ncb_hi:
                    raise CompileError(f"layer {node.name!r}: {c} channels exceed {ncb_hi} channel blocks")
        if node.op in ("conv2d", "maxpool"):
            ph, pw = node.attrs["padding"]
            kh, kw = node.attrs["kernel"]
            if max(ph, pw, kh, kw) > 64:
                raise CompileError(f"layer {node.name!r}: kernel/padding larger than 64 not supported")
    return graph

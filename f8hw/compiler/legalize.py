"""Pass 1 (legalize): is every node supported by the target configuration?

Rejects, with a CompileError naming the layer and the reason (never a silent
host fallback):
- ops the accelerator has no lowering for (anything outside IR v1's
  input/conv2d/linear/maxpool/avgpool_global/flatten);
- formats outside ArchConfig.formats (activations, weights; 64-bit outputs
  need a flexible build), naming the layer, the format and the build's set;
- layers whose accumulator (32-bit for INT8 x INT8, ArchConfig.acc_bits for a
  layer with an FP8 operand), accumulator + bias, or GAP sum could overflow
  (proof: f8hw.numerics.accumulator_bound on the integer forms, valid for any
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
from f8hw.ir import OPS, Graph, canonical_ref, weight_format
from f8hw.isa import OP_BY_NAME
from f8hw.numerics import check_accumulator, int_form

SUPPORTED = ("input", "conv2d", "linear", "maxpool", "avgpool_global", "flatten")


def _field_hi(op: str, name: str) -> int:
    return next(f.hi for f in OP_BY_NAME[op].fields if f.name == name)


def _hw_name(fmt) -> str:
    return "int8" if fmt.kind == "int" else fmt.kind


def _check_formats(node, arch: ArchConfig) -> None:
    """Every activation and weight format of the node is one the accelerator was built with."""
    built = f"built with --formats {','.join(arch.formats)}"
    if node.op in ("conv2d", "linear"):
        w = _hw_name(weight_format(node))
        if w not in arch.formats:
            raise CompileError(f"layer {node.name!r}: weight format {w} is not supported by this accelerator ({built})")
    for f in node.outputs:
        if f.bits == 8 and _hw_name(f) not in arch.formats:
            raise CompileError(f"layer {node.name!r}: activation format {_hw_name(f)} is not supported by this "
                               f"accelerator ({built})")
        if f.bits == 64 and not arch.flexible:
            raise CompileError(f"layer {node.name!r}: a 64-bit output is not supported by this accelerator "
                               f"({built}: int32 logits only)")


def _check_accumulators(graph: Graph, arch: ArchConfig) -> None:
    """The accelerator's accumulator holds every partial sum (and + bias, and GAP sums) exactly."""
    for node in graph.nodes:
        x = graph.format(node.inputs[0]) if node.inputs else None
        if node.op in ("conv2d", "linear"):
            wf = weight_format(node)
            mixed = x.kind != "int" or wf.kind != "int"
            bits = arch.acc_bits if mixed else 32
            formats = f"this accelerator (activation {_hw_name(x)} x weight {_hw_name(wf)})" if mixed else ""
            try:
                check_accumulator(node.name, int_form(node.weight, wf), node.bias, x, bits, formats)
            except AccumulatorOverflowError as e:
                raise CompileError(f"layer {node.name!r}: accumulator overflow possible: {e}") from None
        elif node.op == "avgpool_global" and x.kind != "int":
            _, h, w = graph.shapes()[canonical_ref(node.inputs[0])]
            worst = h * w * max(abs(v) for v in x.qrange)
            if worst >= 1 << (arch.acc_bits - 1):
                raise CompileError(f"layer {node.name!r}: the {x.kind} sum over {h}x{w} pixels can reach {worst}, "
                                   f"beyond the {arch.acc_bits}-bit accumulator")


def check_lane_fields(ops, arch: ArchConfig) -> None:
    """Lowered shifts fit the lanes' fields (FP8 SHIFT: fp8_shift_bits signed; alignments: lshift_bits)."""
    lmax = (1 << arch.lshift_bits) - 1
    for op in ops:
        if max(op.acc_lshift, op.skip_lshift) > lmax:
            raise CompileError(f"layer {op.name!r}: residual alignment by {max(op.acc_lshift, op.skip_lshift)} "
                               f"exceeds the lanes' {arch.lshift_bits}-bit ACC_LSHIFT/SKIP_LSHIFT")
        for o in op.outputs:
            if o.raw or o.lane == "int8":
                continue  # the INT8 lane clamps SHIFT exactly (numerics.requant_lane)
            half = 1 << (arch.fp8_shift_bits - 1)
            if not -half <= o.shift < half:
                raise CompileError(f"layer {op.name!r}: output {o.ref!r} needs SHIFT {o.shift}, outside the FP8 "
                                   f"lane's {arch.fp8_shift_bits}-bit field")


def legalize(graph: Graph, arch: ArchConfig) -> Graph:
    """Check graph against arch; returns the graph (validated) or raises CompileError."""
    for node in graph.nodes:
        if node.op not in SUPPORTED:
            known = ", ".join(o for o in OPS if o in SUPPORTED)
            raise CompileError(f"layer {node.name!r}: unsupported op {node.op!r} (the accelerator lowers {known})")
        _check_formats(node, arch)
    # accumulator overflow proof, per layer, before anything else can complain
    try:
        shapes = graph.shapes()
    except F8Error as e:
        raise CompileError(f"invalid graph: {e}") from None
    _check_accumulators(graph, arch)
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

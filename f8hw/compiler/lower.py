"""Pass 2 (lower): IR nodes -> accelerator layer ops.

Every compute node becomes one ``LayerOp``; ``flatten`` becomes a view (an
alias of its input's buffer: flatten is C-major and a linear layer reading it
is lowered to a convolution with KH = H, KW = W over the unflattened map, so no
data moves).  Kinds:

- ``dense``: conv2d (any kernel/stride/padding; groups other than depthwise
  become dense with block-sparse zero weights) and linear (conv over the whole
  map), Mode.DENSE.
- ``dw``: conv2d with groups == in_channels == out_channels, Mode.DEPTHWISE.
- ``max``: maxpool, Mode.MAX, PAD_VALUE 0x80 for signed inputs (below every
  int8 value the model produces, -127..127) and 0 for unsigned ones.
- ``gap``: avgpool_global, Mode.DEPTHWISE with a tile of ones, KH = H, KW = W,
  requantizer shift = fl_x + shift - fl_out.

Formats (a flexible ArchConfig): a LayerOp names its activation, weight and skip formats ("int8" or
an FP8 kind, the values of the format registers) and each OutSpec its lane; shifts are in units
(TensorFormat.unit = fl + q), so INT8 x INT8 layers get exactly IR v1's shifts.  FP8 weights are
stored as their codes, maxpool pads an FP8 input with the most negative code.

Residual adds are fused into the requantizer (USE_SKIP with ACC_LSHIFT /
SKIP_LSHIFT).  Several output formats: the requantizer runs once per format on
the same accumulators (see emit.py: a re-drain COMPUTE with nlines = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from f8hw.compiler.errors import CompileError
from f8hw.ir import Graph, canonical_ref, weight_format
from f8hw.numerics import INT32_MAX, INT32_MIN, TensorFormat, fp8_format


def hw_format(fmt: TensorFormat) -> str:
    """The PE/lane format name of a tensor format ("int8" for INT, else the FP8 kind)."""
    return "int8" if fmt.kind == "int" else fmt.kind


@dataclass
class View:
    """Where a tensor ref lives: the buffer (a producing ref) and its memory shape."""

    buffer: str                    # canonical ref of the buffer holding the data
    mem_shape: tuple[int, int, int]  # (C, H, W) of the stored layout
    logical: tuple[int, ...]       # golden model per-sample shape
    fmt: TensorFormat


@dataclass
class OutSpec:
    ref: str
    fmt: TensorFormat
    shift: int        # requantizer SHIFT (fl_v - out.unit); 0 for raw
    raw: bool         # raw int32/int64 output (RQ_RAW, wide STORE)

    @property
    def lane(self) -> str:
        """The output lane: "int8" or the FP8 kind (OUT_FMT)."""
        return hw_format(self.fmt)

    @property
    def planes(self) -> int:
        """Main-memory words per channel block of a pixel: 1 byte, or 4/8 byte planes of a raw output."""
        return self.fmt.bits // 8 if self.raw else 1


@dataclass
class LayerOp:
    name: str
    op: str                       # IR op
    kind: str                     # dense | dw | max | gap
    src: str                      # buffer ref of the input
    in_shape: tuple[int, int, int]
    in_signed: bool
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    outputs: list[OutSpec]
    weight: np.ndarray | None = None   # (Cout, Cin/groups, KH, KW) int8
    groups: int = 1
    bias: np.ndarray | None = None     # (Cout,) int32
    skip: str | None = None            # buffer ref of the residual operand
    skip_signed: bool = False
    acc_lshift: int = 0
    skip_lshift: int = 0
    macs: int = 0                      # real MACs of one inference (0 for maxpool / GAP)
    inputs: list[str] = field(default_factory=list)  # buffer refs read (for liveness)
    gather: int = 0                    # LOAD_A tap gather (A_GATHER = input channels per tap; 0 = off)
    a_fmt: str = "int8"                # format registers: A_FMT, W_FMT, SKIP_FMT (names)
    w_fmt: str = "int8"
    skip_fmt: str = "int8"

    @property
    def bias64(self) -> bool:
        """The bias needs 64 bits (BIAS64: two B entries per co-tile)."""
        b = self.bias
        return b is not None and len(b) > 0 and (int(b.min()) < INT32_MIN or int(b.max()) > INT32_MAX)

    @property
    def pad_value(self) -> int:
        if self.kind != "max":
            return 0
        if self.a_fmt != "int8":
            return 0x80 | fp8_format(self.a_fmt).max_code  # the most negative value: never wins
        return 0x80 if self.in_signed else 0


def lower(graph: Graph) -> tuple[list[LayerOp], dict[str, View]]:
    """Lower a legal graph; returns (layer ops in program order, views of every ref)."""
    shapes = graph.shapes()
    views: dict[str, View] = {}
    ops: list[LayerOp] = []

    def mem3(shape):
        return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)

    for node in graph.nodes:
        a = node.attrs
        if node.op == "input":
            views[node.name] = View(node.name, tuple(shapes[node.name]), tuple(shapes[node.name]), node.outputs[0])
            continue
        x = views[canonical_ref(node.inputs[0])]
        if node.op == "flatten":
            ref = node.refs()[0]
            views[ref] = View(x.buffer, x.mem_shape, tuple(shapes[ref]), node.outputs[0])
            continue
        out_shape = mem3(shapes[node.refs()[0]])
        for ref, fmt in zip(node.refs(), node.outputs):
            views[ref] = View(ref, out_shape, tuple(shapes[ref]), fmt)
        common = dict(name=node.name, op=node.op, src=x.buffer, in_shape=x.mem_shape, in_signed=x.fmt.signed,
                      out_shape=out_shape, inputs=[x.buffer])
        common["a_fmt"] = hw_format(x.fmt)
        if node.op in ("conv2d", "linear"):
            wfmt = weight_format(node)
            fl_a = x.fmt.unit + wfmt.unit
            skip = None
            fl_v, acc_l, skip_l, skip_signed, skip_fmt = fl_a, 0, 0, False, "int8"
            if len(node.inputs) == 2:
                s = views[canonical_ref(node.inputs[1])]
                if s.mem_shape != out_shape:
                    raise CompileError(f"layer {node.name!r}: residual operand {node.inputs[1]!r} is stored as "
                                       f"{s.mem_shape}, not in the output layout {out_shape}")
                skip, skip_signed, skip_fmt = s.buffer, s.fmt.signed, hw_format(s.fmt)
                fl_v = max(fl_a, s.fmt.unit)
                acc_l, skip_l = fl_v - fl_a, fl_v - s.fmt.unit
            outs = [OutSpec(r, f, 0 if f.bits != 8 else fl_v - f.unit, f.bits != 8)
                    for r, f in zip(node.refs(), node.outputs)]
            if node.op == "conv2d":
                cin, cout, g = a["in_channels"], a["out_channels"], a["groups"]
                kh, kw = a["kernel"]
                kind = "dw" if (g == cin == cout and g > 1) else "dense"
                weight = np.asarray(node.weight)
                ho, wo = out_shape[1], out_shape[2]
                macs = cout * ho * wo * (cin // g) * kh * kw
                kernel, stride, padding = (kh, kw), tuple(a["stride"]), tuple(a["padding"])
            else:
                c, h, w = x.mem_shape
                cout, g, kind = a["out_features"], 1, "dense"
                weight = np.asarray(node.weight).reshape(cout, c, h, w)
                macs = cout * a["in_features"]
                kernel, stride, padding = (h, w), (1, 1), (0, 0)
            op = LayerOp(kind=kind, kernel=kernel, stride=stride, padding=padding, outputs=outs, weight=weight,
                         groups=g, bias=np.asarray(node.bias), skip=skip, skip_signed=skip_signed,
                         acc_lshift=acc_l, skip_lshift=skip_l, macs=macs, w_fmt=hw_format(wfmt), skip_fmt=skip_fmt,
                         **common)
            if skip:
                op.inputs.append(skip)
        elif node.op == "maxpool":
            fmt = node.outputs[0]
            op = LayerOp(kind="max", kernel=tuple(a["kernel"]), stride=tuple(a["stride"]),
                         padding=tuple(a["padding"]), outputs=[OutSpec(node.refs()[0], fmt, 0, False)], **common)
        elif node.op == "avgpool_global":
            c, h, w = x.mem_shape
            fl_v = x.fmt.unit + a["shift"]
            outs = [OutSpec(r, f, fl_v - f.unit, False) for r, f in zip(node.refs(), node.outputs)]
            op = LayerOp(kind="gap", kernel=(h, w), stride=(1, 1), padding=(0, 0), outputs=outs, **common)
        else:  # legalize rejects everything else first
            raise CompileError(f"layer {node.name!r}: op {node.op!r} cannot be lowered")
        ops.append(op)
    return ops, views


def pack_input(ops: list[LayerOp], views: dict[str, View], input_ref: str, output_ref: str, C: int) -> dict | None:
    """Host-side im2col of the graph input for a narrow first convolution ("stem packing").

    A stem like 7x7x3 reads 3 useful bytes per C-byte word: KH*KW*ceil(Cin/C) A lines and
    C steps each per pixel, of which Cin*KH*KW are useful (19 % for 3 channels on 16 columns).
    When the input is read by exactly one DENSE (groups = 1) convolution and packing saves
    lines, the host writes the input as the convolution's im2col matrix instead: pixel
    (oh, ow) holds the KH*KW*Cin window bytes in (kh, kw, c) order (zeros at padded
    positions: the conv pads with 0), i.e. a (KH*KW*Cin, OH, OW) tensor, and the layer
    becomes a 1x1 convolution over it with ceil(KH*KW*Cin/C) lines per pixel
    (Compiled.write_inputs does the transform).  Returns the packing record (also in the
    symbols) or None.  The same reduction, so the overflow proof and results are unchanged.
    """
    readers = [op for op in ops if input_ref in op.inputs]
    if len(readers) != 1 or input_ref == output_ref:
        return None
    op = readers[0]
    if op.kind != "dense" or op.op != "conv2d" or op.groups != 1 or op.skip == input_ref or op.src != input_ref:
        return None
    cin, ih, iw = op.in_shape
    kh, kw = op.kernel
    kp = kh * kw * cin
    if -(-kp // C) >= kh * kw * -(-cin // C):
        return None
    _, oh, ow = op.out_shape
    rec = dict(layer=op.name, in_shape=[cin, ih, iw], kernel=[kh, kw], stride=list(op.stride),
               padding=list(op.padding), out_hw=[oh, ow], packed_channels=kp)
    w = np.asarray(op.weight)
    op.weight = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(w.shape[0], kp, 1, 1))
    op.in_shape = (kp, oh, ow)
    op.kernel, op.stride, op.padding = (1, 1), (1, 1), (0, 0)
    v = views[input_ref]
    views[input_ref] = View(v.buffer, (kp, oh, ow), v.logical, v.fmt)
    return rec


def fold_batch(op: LayerOp, batch: int) -> LayerOp:
    """The op as scheduled for a batch: a dense layer whose kernel is one row high, without vertical padding,
    and whose input rows are exactly its output rows times the stride (1x1 convolutions, linear heads over a
    pooled vector) reads and writes the batch's images as ONE map of batch*H rows, so pixel tiles run across
    image boundaries (a 7x7 map fills 49 of 64 rows per image alone, 392 of 400 for 8 images; a linear
    head at batch 8 fills 8 rows instead of 1).  Exact: batch items are contiguous (Buffer.item(b) = addr +
    b * H*W*CB words) and no output pixel's window reaches another image.  Other ops are returned as they are."""
    _, ih, iw = op.in_shape
    cout, oh, ow = op.out_shape
    if batch == 1 or op.kind != "dense" or op.kernel[0] != 1 or op.padding[0] != 0 or ih != oh * op.stride[0]:
        return op
    return replace(op, in_shape=(op.in_shape[0], batch * ih, iw), out_shape=(cout, batch * oh, ow),
                   macs=op.macs * batch)


def gather_lines(op: LayerOp, C: int) -> int:
    """A lines per pixel of a tap-gathered convolution: ceil(KH*KW / P), P = C // Cin taps per line."""
    kh, kw = op.kernel
    return -(-(kh * kw) // (C // op.gather))


def tap_gather(ops: list[LayerOp], C: int, a_half: int, w_half: int) -> list[str]:
    """Mark the dense convolutions over narrow tensors that use LOAD_A tap gather (no host help).

    A dense (groups = 1) conv2d or linear layer over a tensor of Cin < C channels reads Cin useful
    bytes of each C-byte word: KH*KW A lines (and KH*KW*C MAC steps and weight entries) per pixel.
    With A_GATHER = Cin the load unit packs P = C // Cin taps per A line (docs/architecture.md,
    LOAD_A), so the layer runs ceil(KH*KW / P) lines; the words read from memory (and the load
    time) are the same.  Not only the graph input: a wider array pads every narrow tensor to more
    bytes, and without the gather a linear head over 8 channels runs twice the steps on 16 columns
    that it runs on 8.  Used when it saves lines and one gathered kernel row fits a K-chunk (an A
    half, its weights a W half: K-chunks of a gathered layer are whole kernel rows, schedule.py).
    The weights are laid out to match (memory.gather_weight).  Returns the names of the gathered layers.
    """
    out = []
    for op in ops:
        if op.kind != "dense" or op.groups != 1:
            continue
        cin = op.in_shape[0]
        kh, kw = op.kernel
        if not 1 <= cin < C or C // cin < 2 or kh * kw < 2:
            continue
        op.gather = cin
        lines = gather_lines(op, C)
        row = -(-kw // (C // cin))   # lines of one gathered kernel row
        if lines >= kh * kw or row > min(a_half, w_half // C):
            op.gather = 0
            continue
        out.append(op.name)
    return out


def im2col_image(img: np.ndarray, rec: dict) -> np.ndarray:
    """(Cin, H, W) uint8 image -> (KH*KW*Cin, OH, OW) packed input of pack_input's record."""
    cin, ih, iw = rec["in_shape"]
    kh, kw = rec["kernel"]
    sh, sw = rec["stride"]
    ph, pw = rec["padding"]
    oh, ow = rec["out_hw"]
    x = np.zeros((cin, ih + 2 * ph + kh, iw + 2 * pw + kw), np.uint8)
    x[:, ph:ph + ih, pw:pw + iw] = img
    out = np.empty((kh, kw, cin, oh, ow), np.uint8)
    for a in range(kh):
        for b in range(kw):
            out[a, b] = x[:, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw]
    return out.reshape(kh * kw * cin, oh, ow)

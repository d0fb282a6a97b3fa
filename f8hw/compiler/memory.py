"""Pass 4 (memory allocation + image): constants, input slots, activations.

Main memory words are C = cols bytes.  Layout (docs/architecture.md):
activation (Ch, H, W) of one batch item = H*W*CB words, pixel-major with the
channel block innermost; raw tensors are byte-planar (4 words per channel
block for int32, 8 for int64).  Regions, in order:

    [weights of every layer][biases][ones tile (GAP)][input slots][activations]

Weights are stored in the order the W scratchpad wants them: per co-tile and
K-chunk, entry k = the C output-channel weights of reduction step k.  DENSE:
steps walk (kh, kw, channel block, byte) -- the order LOAD_A fills A lines and
COMPUTE consumes bytes (with LOAD_A tap gather: step k reads tap (k // C)*P +
(k % C) // Cin, channel (k % C) % Cin, see gather_weight); DEPTHWISE: steps walk (kh, kw).  Biases: 4 byte-planar
words per co-tile (8 for a 64-bit bias, BIAS64).  Activation buffers are allocated first-fit; with reuse a
buffer is freed after its last reader, so a later layer may overwrite it (the
emitter's ordering guarantees the reads finished first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from f8hw.arch import ArchConfig
from f8hw.compiler.errors import CompileError
from f8hw.compiler.lower import LayerOp, View
from f8hw.compiler.schedule import Plan


@dataclass
class Buffer:
    ref: str
    addr: int
    words: int        # per batch item
    shape: tuple[int, int, int]
    raw: bool
    batch: int
    order: int = 0   # allocation order (a later buffer may overwrite an earlier one it overlaps)
    planes: int = 1  # words per channel block of a pixel (4: int32, 8: int64)

    def item(self, b: int) -> int:
        return self.addr + b * self.words


@dataclass
class MemoryMap:
    words: int
    buffers: dict[str, Buffer]
    wblocks: dict[tuple[str, int, int], int]   # (layer, co, k) -> word address
    biases: dict[str, int]                     # layer -> word address of co-tile 0
    ones: int
    zero: int
    image: np.ndarray
    regions: dict = field(default_factory=dict)


def dense_weight(op: LayerOp, C: int) -> np.ndarray:
    """(n_co*C, CB*C, KH, KW) int64 dense weight, zeros across groups and in padding."""
    cin, cout = op.in_shape[0], op.out_shape[0]
    kh, kw = op.kernel
    n_co, cbi = -(-cout // C), -(-cin // C)
    wd = np.zeros((n_co * C, cbi * C, kh, kw), np.int64)
    g = op.groups
    cpg_in, cpg_out = cin // g, cout // g
    w = np.asarray(op.weight, np.int64)
    for gi in range(g):
        wd[gi * cpg_out:(gi + 1) * cpg_out, gi * cpg_in:(gi + 1) * cpg_in] = w[gi * cpg_out:(gi + 1) * cpg_out]
    return wd


def gather_weight(op: LayerOp, ct_j: int, lines: int, C: int, kh0: int = 0, kh1: int | None = None) -> np.ndarray:
    """(lines*C, C) W block of co-tile ct_j of a tap-gathered conv (LOAD_A with A_GATHER = Cin), kernel
    rows kh0..kh1 (a K-chunk): step k reads line k // C, byte k % C = tap t = (k // C)*P + (k % C) // Cin
    (t = (kh - kh0)*KW + kw), channel (k % C) % Cin; zero weight for bytes >= P*Cin and taps past the chunk."""
    cin, cout = op.in_shape[0], op.out_shape[0]
    kw = op.kernel[1]
    kh1 = op.kernel[0] if kh1 is None else kh1
    taps = (kh1 - kh0) * kw
    P = C // op.gather
    w = np.asarray(op.weight, np.int64)[:, :, kh0:kh1]           # (Cout, Cin, kh1 - kh0, KW)
    wt = np.zeros((C, lines * P, cin), np.int64)                 # (co lane, tap, channel)
    o0, o1 = ct_j * C, min(cout, (ct_j + 1) * C)
    wt[:o1 - o0, :taps] = w[o0:o1].transpose(0, 2, 3, 1).reshape(o1 - o0, taps, cin)
    blk = np.zeros((C, lines, C), np.int64)
    blk[:, :, :P * cin] = wt.reshape(C, lines, P * cin)
    return blk.reshape(C, lines * C).T


def weight_blocks(op: LayerOp, plan: Plan, C: int) -> dict[tuple[int, int], np.ndarray]:
    """(co, k) -> (entries, C) int8 weight block in W-scratchpad order."""
    out = {}
    if op.kind == "dense" and op.gather:
        for ct in plan.cotiles:
            for k, ch in enumerate(ct.chunks):
                out[(ct.j, k)] = gather_weight(op, ct.j, ch.lines, C, ch.kh0, ch.kh1)
    elif op.kind == "dense":
        wd = dense_weight(op, C)
        for ct in plan.cotiles:
            for k, ch in enumerate(ct.chunks):
                blk = wd[ct.j * C:(ct.j + 1) * C, ch.cb0 * C:ch.cb1 * C, ch.kh0:ch.kh1, ch.kw0:ch.kw1]
                out[(ct.j, k)] = blk.transpose(2, 3, 1, 0).reshape(-1, C)
    elif op.kind == "dw":
        cout = op.out_shape[0]
        n_co = -(-cout // C)
        wdw = np.zeros((n_co * C,) + tuple(op.kernel), np.int64)
        wdw[:cout] = np.asarray(op.weight, np.int64)[:, 0]
        for ct in plan.cotiles:
            for k, ch in enumerate(ct.chunks):
                out[(ct.j, k)] = wdw[ct.j * C:(ct.j + 1) * C, ch.kh0:ch.kh1, ch.kw0:ch.kw1].transpose(1, 2, 0).reshape(-1, C)
    return out


def bias_words(bias: np.ndarray, C: int, wide: bool = False) -> np.ndarray:
    """Byte-planar lanes: 4 words per co-tile, word j = byte j of every lane (int32); wide (BIAS64):
    8 words, bytes 0..7 of the int64 lanes (two B entries: low 32 bits, then high 32 bits)."""
    n_co = -(-len(bias) // C)
    nb = 8 if wide else 4
    b = np.zeros(n_co * C, np.int64)
    b[:len(bias)] = np.asarray(bias, np.int64)
    u = b.view(np.uint64).reshape(n_co, C)
    planes = np.stack([(u >> np.uint64(8 * j)) & np.uint64(0xFF) for j in range(nb)], axis=1)  # (n_co, nb, C)
    return planes.reshape(n_co * nb, C).astype(np.uint8)


def tensor_words(shape, C: int, planes: int) -> int:
    c, h, w = shape
    return h * w * -(-c // C) * planes


def allocate(ops: list[LayerOp], plans: list[Plan], views: dict[str, View], input_ref: str, outputs_of_graph: str,
             arch: ArchConfig, batch: int, reuse: bool | str = "auto") -> MemoryMap:
    C = arch.cols
    chunks: list[np.ndarray] = []
    top = 0

    def put(arr: np.ndarray) -> int:
        nonlocal top
        addr = top
        chunks.append(np.asarray(arr, np.int64).astype(np.int8).view(np.uint8) if arr.dtype != np.uint8 else arr)
        top += len(arr)
        return addr

    wblocks = {}
    for op, plan in zip(ops, plans):
        for (co, k), blk in sorted(weight_blocks(op, plan, C).items()):
            wblocks[(op.name, co, k)] = put(blk)
    w_end = top
    biases = {}
    for op in ops:
        if op.bias is not None:
            biases[op.name] = put(bias_words(op.bias, C, op.bias64))
    ones_lines = max([ch.lines for op, plan in zip(ops, plans) if op.kind == "gap"
                      for ct in plan.cotiles for ch in ct.chunks] or [0])
    ones = put(np.ones((ones_lines, C), np.uint8)) if ones_lines else 0
    zero = put(np.zeros((1, C), np.uint8))
    const_end = top

    # activation buffers
    produced = {}  # buffer ref -> (shape, raw, planes)
    inp = views[input_ref]
    produced[input_ref] = (inp.mem_shape, False, 1)
    for op in ops:
        for o in op.outputs:
            produced[o.ref] = (op.out_shape, o.raw, o.planes)
    sizes = {r: tensor_words(s, C, planes) * batch for r, (s, _, planes) in produced.items()}
    final = views[outputs_of_graph].buffer
    if reuse == "auto":
        reuse = const_end + sum(sizes.values()) > arch.mem_words
    last_use = {r: -1 for r in produced}
    for i, op in enumerate(ops):
        for r in op.inputs:
            last_use[r] = max(last_use[r], i)
    addrs: dict[str, int] = {}
    free: list[list[int]] = []  # [addr, size]
    end = const_end

    def alloc(ref):
        nonlocal end
        n = sizes[ref]
        for blk in free:
            if blk[1] >= n:
                a = blk[0]
                blk[0] += n
                blk[1] -= n
                if blk[1] == 0:
                    free.remove(blk)
                return a
        a = end
        end += n
        return a

    def release(ref):
        if ref == final or ref not in addrs:
            return
        free.append([addrs[ref], sizes[ref]])
        free.sort()
        merged = []
        for a, n in free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1][1] += n
            else:
                merged.append([a, n])
        free[:] = merged

    order = [input_ref] + [o.ref for op in ops for o in op.outputs]
    addrs[input_ref] = alloc(input_ref)
    for i, op in enumerate(ops):
        for o in op.outputs:
            addrs[o.ref] = alloc(o.ref)
        if reuse:
            for r in set(op.inputs) | {o.ref for o in op.outputs}:
                if last_use.get(r, -1) <= i and r != final:
                    release(r)
    if end > arch.mem_words:
        raise CompileError(f"model needs {end} main-memory words (constants {const_end}), "
                           f"but mem_words is {arch.mem_words}")
    image = np.zeros((end, C), np.uint8)
    pos = 0
    for arr in chunks:
        image[pos:pos + len(arr)] = arr
        pos += len(arr)
    buffers = {r: Buffer(r, addrs[r], sizes[r] // batch, produced[r][0], produced[r][1], batch, order.index(r),
                         produced[r][2]) for r in produced}
    return MemoryMap(end, buffers, wblocks, biases, ones, zero, image,
                     {"weights": (0, w_end), "constants": (0, const_end), "activations": (const_end, end),
                      "reuse": bool(reuse)})

"""The f8hw compiler: integer model (IR graph) -> instruction stream + memory image + symbols.

Passes (each a module, each testable alone):

1. ``legalize``  (legalize.py): every node supported by the target; accumulator
   overflow proof; field ranges.  Errors: CompileError naming the layer.
2. ``lower``     (lower.py):    IR nodes -> LayerOps (dense / dw / max / gap) and views.
3. ``schedule``  (schedule.py): LayerOp -> co-tiles, K-chunks, pixel tiles, work items.
4. ``allocate``  (memory.py):   weights/biases/ones/input/activation addresses + image.
5. ``emit``      (emit.py):     instruction stream with resource masks (double buffering).
6. ``listing``   (here):        human-readable assembly, layer names as comments.

``compile_model(graph, arch, batch=1) -> Compiled`` runs them all; ``compile_file``
loads a model file first.
"""

from __future__ import annotations

from f8hw.arch import ArchConfig
from f8hw.compiler.compiled import Compiled, LayerInfo
from f8hw.compiler.emit import Emitter, Instr
from f8hw.compiler.errors import CompileError
from f8hw.compiler.legalize import check_lane_fields, legalize
from f8hw.compiler.lower import fold_batch, gather_lines, lower, tap_gather
from f8hw.compiler.lower import pack_input as pack_input_fn
from f8hw.compiler.memory import allocate, tensor_words
from f8hw.compiler.schedule import schedule
from f8hw.ir import Graph, canonical_ref
from f8hw.isa import Reg

__all__ = ["compile_model", "compile_file", "Compiled", "CompileError", "LayerInfo", "legalize", "lower",
           "schedule", "allocate", "Emitter", "listing"]


def _fmt_fields(ins: Instr) -> str:
    f = dict(ins.fields)
    if ins.name == "SET":
        return f"{Reg(f['reg']).name}, {f['value']}"
    parts = []
    for k, v in f.items():
        if k == "mask":
            parts.append(f"mask=0x{v:02x}")
        elif k == "addr":
            parts.append(f"addr=0x{v:x}")
        elif k == "mode":
            from f8hw.isa import Mode
            parts.append(f"mode={Mode(v).name}")
        elif k == "target":
            from f8hw.isa import LoadTarget
            parts.append(f"target={LoadTarget(v).name}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


def listing(instrs: list[Instr]) -> str:
    lines = []
    for n, ins in enumerate(instrs):
        if ins.name == "MARK":
            lines.append(f"\n; ---- {ins.comment}")
        text = f"{n:6d}  {ins.name:<8s}{_fmt_fields(ins)}"
        if ins.comment and ins.name != "MARK":
            text = f"{text:<100s} ; {ins.comment}"
        lines.append(text)
    return "\n".join(lines) + "\n"


def _check_folded(ops, sops, mem, C: int) -> None:
    """A batch-folded op (lower.fold_batch) addresses image b's pixels at item(0) + b * H*W*CB: every buffer it
    reads or writes must hold its items back to back at exactly that size."""
    for op, s in zip(ops, sops):
        if s is op:
            continue
        refs = [(op.src, op.in_shape), *((o.ref, op.out_shape) for o in op.outputs)] + \
            ([(op.skip, op.out_shape)] if op.skip else [])
        for ref, (_, h, w) in refs:
            b = mem.buffers[ref]
            if tuple(b.shape[1:]) != (h, w) or b.words != tensor_words(b.shape, C, b.planes):
                raise CompileError(f"{op.name}: buffer {ref} ({b.words} words per item, shape {b.shape}) cannot "
                                   f"be read as one map across the batch (internal)")


def compile_model(graph: Graph, arch: ArchConfig | None = None, batch: int = 1, reuse="auto",
                  prefetch: bool = True, pack_input: bool = False, gather: bool = True,
                  diag: bool = True, fold: bool = True, lbuf: bool = True) -> Compiled:
    """Compile a (valid) IR graph for arch.  reuse: reuse dead activation buffers
    (True/False, or "auto": only when everything does not fit main memory); prefetch: load the next
    layer's first weights and first activation tile while the current layer computes; pack_input
    (opt-in): let the host write a narrow stem's input as its im2col matrix (lower.pack_input; the
    input is then written by Compiled.write_inputs in that layout and is not readable back).  Off by
    default: the accelerator then reads the raw image and does all of the network's work itself.
    gather (default on): a dense convolution or linear layer reading a narrow
    tensor (Cin < cols, e.g. the raw image) uses LOAD_A tap gather, C // Cin kernel taps per A line
    (lower.tap_gather); the accelerator does it, the host writes the raw image.
    diag (default on): depthwise and max-pooling layers use LOAD_A window reuse (A_DIAG) with pixel tiles
    inside one output row where that is estimated faster (schedule.diag_tiles); lbuf (default on, with
    diag): such a layer's tiles walk down column strips with the window rows in a line buffer, each tile
    loading only its new input rows, where that is estimated faster (schedule.ring_tiles).
    fold (default on): at batch > 1, 1x1-row dense layers (1x1 convolutions, linear heads) tile the batch's
    images as one map, so pixel tiles cross image boundaries (lower.fold_batch)."""
    arch = arch or ArchConfig()
    if not isinstance(batch, int) or batch < 1:
        raise CompileError(f"batch must be a positive integer, got {batch!r}")
    legalize(graph, arch)
    ops, views = lower(graph)
    check_lane_fields(ops, arch)
    packing = pack_input_fn(ops, views, graph.input_node.name, canonical_ref(graph.output), arch.cols) \
        if pack_input else None
    gathered = tap_gather(ops, arch.cols, arch.a_depth // 2, arch.w_depth // 2 - 1) if gather else []
    # a W entry of zeros serves the re-drain of extra output formats and the drain step of one-line tiles
    zero_entry = any(len(op.outputs) > 1 for op in ops) or (arch.w_depth // 2 - 1 >= arch.cols and any(
        op.kind == "dense" and ((op.kernel == (1, 1) and op.in_shape[0] <= arch.cols)
                                or (op.gather and gather_lines(op, arch.cols) == 1)) for op in ops))
    em = Emitter(arch, zero_entry)
    if em.w_half < 1:
        raise CompileError(f"w_depth {arch.w_depth} leaves no W entries per half")
    # the ops as scheduled and emitted: 1x1-row layers of a batch as one tall map (lower.fold_batch)
    sops = [fold_batch(op, batch) if fold else op for op in ops]
    plans = [schedule(s, arch, batch if s is op else 1, em.w_half, diag, lbuf) for op, s in zip(ops, sops)]
    out_ref = canonical_ref(graph.output)
    mem = allocate(ops, plans, views, graph.input_node.name, out_ref, arch, batch, reuse)
    _check_folded(ops, sops, mem, arch.cols)
    if len(ops) + 1 > arch.mark_depth:
        raise CompileError(f"{len(ops)} layers need {len(ops) + 1} MARK slots, mark_depth is {arch.mark_depth}")
    em.start(mem)
    infos = []
    ctxs = [em.loads.prepare(li, op, plan, mem) for li, (op, plan) in enumerate(zip(sops, plans))]
    if prefetch:
        for cur, nxt in zip(ctxs, ctxs[1:]):
            em.loads.prefetch(cur, nxt)
    for ctx in ctxs:
        em.loads.place(ctx)
    for li, (op, ctx) in enumerate(zip(ops, ctxs)):
        tiles = em.layer(ctx)
        infos.append(LayerInfo(op.name, op.op, op.kind, op.macs * batch, li, [o.ref for o in op.outputs], tiles))
    em.finish(len(ops))
    try:
        program = em.words()
    except Exception as e:  # an IsaError: a field out of range
        raise CompileError(f"instruction field out of range: {e}") from None
    if len(program) > arch.imem_depth:
        raise CompileError(f"program has {len(program)} instructions, imem_depth is {arch.imem_depth} "
                           f"(a larger instruction memory: ArchConfig.imem_depth, f8hw compile --imem-depth)")
    # which buffers are intact at the end (never handed to a later tensor)
    intact = set(mem.buffers)
    if mem.regions["reuse"]:
        for r, b in mem.buffers.items():
            for r2, b2 in mem.buffers.items():
                if b2.order > b.order and b2.addr < b.addr + b.words * b.batch and b.addr < b2.addr + b2.words * b2.batch:
                    intact.discard(r)
    symbols = {
        "batch": batch,
        "input": graph.input_node.name,
        "input_packing": packing,
        "input_gather": [op.name for op in ops if op.name in gathered and op.src == graph.input_node.name],
        "gather": gathered,
        "output": out_ref,
        "buffers": {r: {"addr": b.addr, "words": b.words, "shape": list(b.shape), "raw": b.raw,
                        **({"planes": b.planes} if b.planes not in (1, 4) else {})}
                    for r, b in mem.buffers.items()},
        "views": {r: {"buffer": v.buffer, "logical": list(v.logical), "signed": v.fmt.signed, "fl": v.fmt.fl,
                      "bits": v.fmt.bits, **({"kind": v.fmt.kind} if v.fmt.kind != "int" else {})}
                  for r, v in views.items()},
        "intact": sorted(intact),
        "regions": {k: list(v) if isinstance(v, tuple) else v for k, v in mem.regions.items()},
        "weights": {f"{k[0]}:{k[1]}:{k[2]}": a for k, a in mem.wblocks.items()},
        "biases": mem.biases,
    }
    instrs = em.instrs
    return Compiled(arch, program, mem.image, symbols, infos, lambda: listing(instrs))


def compile_file(path: str, arch: ArchConfig | None = None, batch: int = 1, pack_input: bool = False,
                 gather: bool = True, diag: bool = True, lbuf: bool = True) -> Compiled:
    from f8hw.modelfile import load_model

    graph, _ = load_model(path)
    return compile_model(graph, arch, batch, pack_input=pack_input, gather=gather, diag=diag, lbuf=lbuf)

"""Pass 5a (load planning): which loads a layer needs, which half each one uses, where it goes in the program.

Double buffering (docs/architecture.md mask convention, see emit.py): A and W
loads alternate halves across the whole program; a load into a half is placed
right after the last COMPUTE that reads the half's previous contents.  Flexible
loads (W pieces, A-group and window pieces, the next layer's prefetches) get a
window of positions, and ``place`` picks one from a rough timing estimate.
Correctness depends only on the windows (hazard rules), never on that choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from f8hw.arch import LOAD_LATENCY, ArchConfig
from f8hw.compiler.lower import LayerOp
from f8hw.compiler.memory import MemoryMap
from f8hw.compiler.schedule import Chunk, Item, Plan

__all__ = ["BOTH_HALVES", "LoadEvent", "LayerCtx", "LoadPlanner", "awin"]

BOTH_HALVES = 2
"""LoadEvent.half of a "big" weight load that takes the whole W scratchpad."""


@dataclass(eq=False)
class LoadEvent:
    """One load of a layer: what it loads and the program position it is emitted at (before item ``pos``).

    Compared by identity: the planner keeps references to events (the contents a load replaces).
    """

    kind: str                           # "A", "W", "B" (biases) or "S" (skip lines)
    ctx: LayerCtx
    first: int                          # the first item that reads what it loads
    pos: int = 0
    key: tuple | None = None            # A / W: what is loaded (A: tile and window, W: weight group)
    half: int = 0                       # A / W: scratchpad half (W: BOTH_HALVES for a big co-tile)
    last: int = 0                       # A / W: the last item that reads it
    item: Item | None = None            # A: the pixel tile it loads
    prevs: tuple[LoadEvent, ...] = ()   # A / W: the loads whose contents it replaces
    aoff: int | None = None             # A piece: first line inside the half
    piece: tuple[int, int, int] | None = None  # W piece: (entry offset in the half, address, count)
    group: list[int] | None = None      # B: the co-tiles whose biases it loads
    drain: int | None = None            # S: the item whose drain reads it
    wid: int | None = None              # pieces of one load share the id of the load they were cut from
    pos_min: int | None = None          # flexible: any position in [pos_min, pos_max]
    pos_max: int | None = None
    prefetched: bool = False            # moved into the previous layer's stream
    barrier: bool = False               # a prefetched A load: carries the barrier bits
    phys: int | None = None             # A of a line buffer: the A half its ring lives in (``half`` is then
                                        # only the mask bit: it alternates per tile, the lines do not)

    @property
    def prev(self) -> LoadEvent | None:
        return self.prevs[0] if self.prevs else None

    @property
    def load_id(self) -> int:
        """Identity of the whole load (shared by its pieces)."""
        return self.wid if self.wid is not None else id(self)

    @property
    def halves(self) -> tuple[int, ...]:
        return (0, 1) if self.half == BOTH_HALVES else (self.half,)

    @property
    def phys_halves(self) -> tuple[int, ...]:
        """The scratchpad halves whose lines it writes."""
        return (self.phys,) if self.phys is not None else self.halves

    @property
    def flexible(self) -> bool:
        return self.pos_max is not None and self.pos_max > self.pos_min


@dataclass(eq=False)
class LayerCtx:
    """One layer's op, plan, memory map and load events (filled by LoadPlanner.prepare)."""

    li: int
    op: LayerOp
    plan: Plan
    mem: MemoryMap
    arch: ArchConfig
    events: list[LoadEvent] = field(default_factory=list)
    a_of_item: list[LoadEvent | None] = field(default_factory=list)
    w_of_item: list[LoadEvent | None] = field(default_factory=list)
    drains: list[int] = field(default_factory=list)
    nS: int = field(init=False)       # S slots (2: double-buffered skip lines) and lines per slot
    s_slot: int = field(init=False)
    nO: int = field(init=False)       # O slots and lines per slot
    o_slot: int = field(init=False)

    def __post_init__(self):
        R = self.arch.rows
        self.nS = 2 if self.arch.s_depth // 2 >= R else 1
        self.s_slot = self.arch.s_depth // self.nS
        self.nO = 2 if self.arch.o_depth // 2 >= R else 1
        self.o_slot = self.arch.o_depth // self.nO

    def own(self, e: LoadEvent) -> bool:
        """Is e emitted in this layer's own stream (not moved into the previous layer's)?"""
        return not (e.prefetched and e.ctx is self)


class LoadPlanner:
    """Assigns halves (alternating over the whole program) and program positions to every layer's loads."""

    def __init__(self, arch: ArchConfig, w_half: int):
        self.arch = arch
        self.w_half = w_half   # W entries usable in each half
        self.a_ctr = 0
        self.w_ctr = 0

    def prepare(self, li: int, op: LayerOp, plan: Plan, mem: MemoryMap) -> LayerCtx:
        """Assign A/W halves to the layer's loads (global alternation) and their program positions."""
        ctx = LayerCtx(li, op, plan, mem, self.arch)
        items = plan.items
        for kind, keyf, ctr in (("A", lambda it: it.akey, "a_ctr"), ("W", lambda it: it.wkey, "w_ctr")):
            prev: dict[int, LoadEvent | None] = {0: None, 1: None}
            cur = None
            per_item: list[LoadEvent | None] = []
            for i, it in enumerate(items):
                key = keyf(it)
                if key is None:
                    per_item.append(None)
                    continue
                if cur is None or key != cur.key:
                    n = getattr(self, ctr)
                    setattr(self, ctr, n + 1)
                    h = n % 2
                    big = kind == "W" and self.w_entries(ctx, key) > self.w_half
                    if kind == "W" and not big and prev[h] is not None and prev[h].key == key \
                            and prev[h].half == h:
                        # the half still holds these weights (snake order): no load
                        cur = prev[h]
                        cur.last = i
                        per_item.append(cur)
                        continue
                    # a load into half h goes right after the last COMPUTE reading the half's old contents
                    prevs = tuple(p for p in ((prev[0], prev[1]) if big else (prev[h],)) if p is not None)
                    cur = LoadEvent(kind, ctx, first=i, key=key, half=BOTH_HALVES if big else h, last=i, item=it,
                                    prevs=prevs)
                    if big:
                        prev[0] = prev[1] = cur
                    else:
                        prev[h] = cur
                    ctx.events.append(cur)
                cur.last = i
                per_item.append(cur)
            if kind == "A":
                ctx.a_of_item = per_item
                self._split_a(ctx)
                if plan.ring:
                    self._ring_halves(ctx)
            else:
                ctx.w_of_item = per_item
        for e in ctx.events:
            e.pos = max([p.last + 1 for p in e.prevs], default=0)
            if e.aoff is not None:  # A pieces: anywhere before the group's first COMPUTE (place() picks)
                e.pos_min, e.pos_max = e.pos, e.first
        # split W group loads into one LOAD per co-tile block, each placed on its own (place()), so each
        # fits in the load unit's slack while the array computes
        pieces = []
        for e in [e for e in ctx.events if e.kind == "W"]:
            ctx.events.remove(e)
            for part in self.w_parts(ctx, e.key):
                # flexible: anywhere in [pos_min, pos_max]; place() picks the position
                pieces.append(replace(e, piece=part, pos_min=e.pos, pos_max=e.first, wid=id(e)))
        ctx.events.extend(pieces)
        if op.bias is not None:
            for bgi, bg in enumerate(plan.bgroups):
                first = next(i for i, it in enumerate(items) if it.bgroup == bgi)
                ctx.events.append(LoadEvent("B", ctx, first=first, pos=first, group=bg))
        ctx.drains = [i for i, it in enumerate(items) if it.last]
        if op.skip:
            for d in ctx.drains[:ctx.nS]:
                ctx.events.append(LoadEvent("S", ctx, first=d, drain=d))
        return ctx

    def _ring_halves(self, ctx: LayerCtx) -> None:
        """Line buffer: every tile's load is its own event, so the mask bits alternate per tile as for
        double buffering (the load of tile i waits for the MAC phase of tile i-2, whose rows it overwrites,
        and tile i waits for its load), but all rings live in the A half of the layer's first load; the
        next layer's first load is steered to the other half (the last tiles read this one until the end)."""
        evs = [e for e in ctx.events if e.kind == "A"]
        h0 = evs[0].half
        for e in evs:
            e.phys = h0
        if self.a_ctr % 2 == h0:
            self.a_ctr += 1

    @staticmethod
    def _split_a(ctx: LayerCtx) -> None:
        """Cut A loads that serve several COMPUTE windows into one LOAD_A piece per window."""
        items, plan = ctx.plan.items, ctx.plan
        # an A group (several pixel tiles in one half): one LOAD_A piece per pixel tile
        for e in [e for e in ctx.events if e.kind == "A" and e.key[0] == "ag"]:
            seen: dict = {}
            for it in items[e.first:e.last + 1]:
                seen.setdefault((it.b, it.p0), it)
            k = ctx.events.index(e)
            ctx.events[k:k + 1] = [replace(e, item=it, aoff=it.aoff, wid=id(e)) for it in seen.values()]
        # an A-stationary window: one LOAD_A piece per K-chunk (placed separately, so they fill the
        # load unit's gaps between the streamed weight chunks)
        for e in [e for e in ctx.events if e.kind == "A" and len(e.key) > 2 and e.key[2] == "win"]:
            it = e.item
            k = ctx.events.index(e)
            ctx.events[k:k + 1] = [replace(e, item=replace(it, awin=ch, aoff=a0), aoff=a0, wid=id(e))
                                   for ch, a0 in _win_pieces(plan, it)]

    def prefetch(self, cur: LayerCtx, nxt: LayerCtx) -> None:
        """Move the next layer's first W load and first A load into the current layer's stream.

        W: weights are constants; the load only waits for its half to be free.
        A: the first tile reads input pixels that the current layer may produce;
        it is placed after the STOREs of the last item it depends on have been
        emitted (two items later) and carries the O bits, so it waits for the
        most recent STORE (every earlier one has finished: the store unit is
        sequential).  Tensors of older layers were complete before this layer's
        barrier.
        """
        n = len(cur.plan.items)
        last_user = {}
        for kind, per in (("A", cur.a_of_item), ("W", cur.w_of_item)):
            for i, e in enumerate(per):
                if e is not None:
                    for h in e.phys_halves:
                        last_user[(kind, h)] = i
        for kind in ("W", "A"):
            evs = [e for e in nxt.events if e.kind == kind and e.first == 0 and e.prev is None]
            if kind == "A":
                # the first A load (all pieces of a first A group: they share its load_id)
                evs = [e for e in evs if e.load_id == evs[0].load_id] if evs else []
            for e in evs:
                pos = max(last_user.get((kind, h), -1) for h in e.phys_halves) + 1
                if kind == "A":
                    dep = self._last_producer(cur, nxt, e.item)
                    if dep is not None:
                        pos = max(pos, dep + 2)
                if pos >= n:
                    continue
                e.pos = e.pos_min = pos
                # W: at the latest after the last COMPUTE (pos n: nothing waits behind it there); A: before the
                # last item, whose STOREs it may need are emitted later
                e.pos_max = n if kind == "W" else n - 1
                e.first, e.prefetched, e.barrier = n, True, kind == "A"
                cur.events.append(e)

    def place(self, ctx: LayerCtx) -> None:
        """Choose positions of the flexible loads (W pieces, next-layer prefetches) inside their windows.

        A rough timing estimate of the layer (load unit busy until `load_free`,
        array busy until `mac`) places each flexible load at the first position
        of its window where the load unit is expected to be idle before the
        array needs the next instruction (so the in-order issue is not held up
        behind it), else at the end of its window.  Correctness only depends on
        the window (hazard rules), not on this choice.
        """
        items = ctx.plan.items
        n = len(items)
        fixed: dict[int, list[LoadEvent]] = {}
        flex = []
        for e in ctx.events:
            if not ctx.own(e):
                continue
            if e.flexible:
                flex.append(e)
            else:
                fixed.setdefault(e.pos, []).append(e)
        flex.sort(key=lambda e: (e.pos_max, e.pos_min))
        C = self.arch.cols
        load_free = mac = 0
        t = 0
        item_end: dict[int, int] = {}   # estimated MAC end of each item
        ready: dict[int, int] = {}      # load_id -> estimated end of its (last) load

        def start_of(e) -> int:
            # the load waits for the load unit and for the COMPUTEs reading its half's old contents
            s0 = max(load_free, t)
            for pe in e.prevs:
                if pe.ctx is ctx and pe.last in item_end:
                    s0 = max(s0, item_end[pe.last])
            return s0

        def put(e, s0) -> None:
            nonlocal load_free, t
            load_free = s0 + self.words(e) + LOAD_LATENCY * self.pieces(e)
            t = s0 + 1
            ready[e.load_id] = max(ready.get(e.load_id, 0), load_free)

        def needs(p) -> int:
            """Earliest issue of item p's first COMPUTE given the loads placed so far."""
            r = max(t, mac)
            for ev in (ctx.a_of_item[p], ctx.w_of_item[p]):
                if ev is not None:
                    r = max(r, ready.get(id(ev), 0))
            return r

        for p in range(n):
            for e in fixed.get(p, []):
                put(e, start_of(e))
            for e in list(flex):
                if e.pos_min > p:
                    continue
                s0 = start_of(e)
                # here if it issues no later than the array would otherwise start item p (the in-order issue
                # is not held up behind it), else at the end of its window
                if p >= e.pos_max or s0 <= needs(p) + 16:
                    e.pos = p
                    flex.remove(e)
                    put(e, s0)
            it = items[p]
            ch = ctx.plan.cotiles[it.co].chunks[it.k]
            steps = ch.lines * (C if ctx.op.kind == "dense" else 1)
            issue = needs(p)
            mac = issue + steps
            item_end[p] = mac
            t = issue + 2
        for e in flex:  # prefetched W loads the load unit had no room for: after the layer's last COMPUTE
            e.pos = e.pos_max

    @staticmethod
    def pieces(e: LoadEvent) -> int:
        """Instructions of the load (a line buffer's new rows: one LOAD_A per run of consecutive slots)."""
        return len(e.item.ring.loads) if e.kind == "A" and e.item.ring is not None else 1

    def words(self, e: LoadEvent) -> int:
        """Main-memory words the load reads."""
        if e.kind == "A":
            it = e.item
            plan = e.ctx.plan
            ch = awin(plan, it)
            if it.ring is not None:
                sw = e.ctx.op.stride[1]
                rows = sum(n for _, n, _ in it.ring.loads)
                return rows * (ch.cb1 - ch.cb0) * (sw * (it.npix - 1) + ch.kw1 - ch.kw0)
            if plan.diag:
                sw = e.ctx.op.stride[1]
                return (ch.kh1 - ch.kh0) * (ch.cb1 - ch.cb0) * (sw * (it.npix - 1) + ch.kw1 - ch.kw0)
            return it.npix * ch.lines
        if e.kind == "W":
            return e.piece[2]
        if e.kind == "B":
            return 4 * len(e.group)
        return self.arch.rows

    @staticmethod
    def w_parts(ctx: LayerCtx, key: tuple) -> list[tuple[int, int, int]]:
        """(W entry offset in the half, memory address, count) pieces of the weight load of ``key``."""
        plan, mem, op = ctx.plan, ctx.mem, ctx.op
        if key[0] == "ones":
            return [(0, mem.ones, max(ch.lines for ct in plan.cotiles for ch in ct.chunks))]
        parts, off = [], 0
        for j, k2 in plan.wgroups[key]:
            n = plan.cotiles[j].chunks[k2].wentries
            parts.append((off, mem.wblocks[(op.name, j, k2)], n))
            off += n
        return parts

    def w_entries(self, ctx: LayerCtx, key: tuple) -> int:
        return sum(p[2] for p in self.w_parts(ctx, key))

    @staticmethod
    def _last_producer(cur: LayerCtx, nxt: LayerCtx, it: Item) -> int | None:
        """Index of the last item of cur whose STOREs write words the first A tile of nxt reads."""
        op, nop = cur.op, nxt.op
        refs = {o.ref for o in op.outputs}
        if nop.src not in refs:
            return None
        ch = awin(nxt.plan, it)
        _, ih, iw = nop.in_shape
        _, _, ow = nop.out_shape
        sh, ph = nop.stride[0], nop.padding[0]
        oh0, oh1 = it.p0 // ow, (it.p0 + it.npix - 1) // ow
        r0 = max(0, oh0 * sh - ph + ch.kh0)
        r1 = min(ih - 1, oh1 * sh - ph + ch.kh1 - 1)
        # pixels counted across the batch (b * pixels per item + p): either layer may tile the batch as one
        # tall map (lower.fold_batch: b = 0, p across images)
        _, h, w = cur.mem.buffers[nop.src].shape
        base = it.b * h * w
        lo, hi = base + r0 * iw, base + (r1 + 1) * iw  # input pixels [lo, hi) (whole rows: conservative)
        last = None
        for i, x in enumerate(cur.plan.items):
            x0 = x.b * h * w + x.p0
            if x.last and x0 < hi and lo < x0 + x.npix and ch.cb0 <= x.co < ch.cb1:
                last = i
        return last


def _win_pieces(plan: Plan, it: Item) -> list[tuple[Chunk, int]]:
    """(chunk, line offset in the window) of the co-tile's K-chunks, in window line order."""
    chs = plan.cotiles[it.co].chunks
    offs = [0]
    for ch in chs[:-1]:
        offs.append(offs[-1] + ch.lines)
    return list(zip(chs, offs))


def awin(plan: Plan, it: Item) -> Chunk:
    """The window an item's A load covers: its chunk, or the whole window (A-stationary K-split)."""
    return it.awin if it.awin is not None else plan.cotiles[it.co].chunks[it.k]

"""Pass 5 (emit): scheduled layers -> instruction stream with resource masks.

Resource-mask convention (docs/architecture.md): bits 0/1 = A halves, 2/3 = W
halves, 4/5 = S slots, 6/7 = O slots.  Double buffering:

* A and W: loads alternate halves.  A load into a half is placed in program
  order right after the last COMPUTE that reads the half's previous contents,
  so it overlaps the COMPUTEs of the other half; the hazard check (MAC phase
  holds bits 0..3) makes it wait for that COMPUTE's MAC phase only.
* Drains: a DENSE tile's last COMPUTE is split in two (all lines but one with
  last = 0, then one line with last = 1).  The STOREs of the previous tile and
  the skip (S) load of the tile after next are emitted between the two halves
  of the split ("flush slot"): there the drain holder is still the previous
  tile's drain, so the hazard check makes them wait for exactly that drain,
  while the MAC array keeps running the current tile.  (Emitting them after the
  next last = 1 COMPUTE would also be correct -- the drain holder covers every
  drain in flight -- but would wait for the newer drain too.)
* Several output formats: the requantizer runs again on the same accumulators:
  a re-drain COMPUTE (DEPTHWISE, acc = 1, last = 1, one step that multiplies by
  a W entry of zeros reserved at the top of W and loaded once at program start:
  P is unchanged and is captured again) with the next format's SET registers; its
  output goes to the next R lines of the same O slot (the outputs of one tile
  share the slot's mask bit, so the STOREs wait for the tile's last drain).
* Layer boundary: pending STOREs are flushed, MARK is emitted, and the first
  load of the layer carries bits 6|7 (a barrier: it waits for the last STORE,
  hence for all earlier results to be in main memory, and for the last drain,
  hence for the S/B/O slots to be free).  Biases of a layer (or of a group of
  b_depth co-tiles) are loaded there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from f8hw import isa
from f8hw.arch import LOAD_LATENCY, ArchConfig
from f8hw.compiler.lower import LayerOp
from f8hw.compiler.memory import MemoryMap
from f8hw.compiler.schedule import Plan
from f8hw.isa import LoadTarget, Mode, Reg

MODE = {"dense": Mode.DENSE, "dw": Mode.DEPTHWISE, "gap": Mode.DEPTHWISE, "max": Mode.MAX}
BARRIER = 0xC0


_LAYOUT = {op.name: (op.code, [(f.name, lo, f.lo, f.hi, (1 << f.width) - 1) for f, lo in op.layout()],
                     frozenset(f.name for f in op.fields)) for op in isa.OPS}


def encode(name: str, fields: dict) -> int:
    """isa.encode with the layouts of f8hw.isa cached (same checks, same words)."""
    code, layout, names = _LAYOUT[name]
    if not names.issuperset(fields):
        return isa.encode(name, **fields)  # raises the IsaError naming the field
    word = code
    for fname, lo, vlo, vhi, m in layout:
        v = int(fields.get(fname, 0))
        if not vlo <= v <= vhi:
            return isa.encode(name, **fields)  # raises the IsaError naming the field
        word |= (v & m) << lo
    return word


@dataclass
class Instr:
    name: str
    fields: dict
    comment: str = ""


class Emitter:
    def __init__(self, arch: ArchConfig, zero_entry: bool = False):
        self.arch = arch
        # one W entry of zeros at the top of W (the re-drain step multiplies by it)
        self.zero_entry = arch.w_depth - 1 if zero_entry else None
        self.instrs: list[Instr] = []
        # known register values (reset: 0); A_GATHER is SET only by a gathered layer's LOAD_A
        self.regs: dict[int, int] = {int(Reg.A_GATHER): 0, int(Reg.A_DIAG): 0}
        self.pending: list[Instr] = []
        self.a_ctr = 0
        self.w_ctr = 0

    # ---------------------------------------------------------------- basics
    def add(self, ins: Instr) -> None:
        self.instrs.append(ins)

    def ins(self, name: str, comment: str = "", **fields) -> Instr:
        i = Instr(name, fields, comment)
        self.add(i)
        return i

    def set(self, reg: Reg, value: int) -> None:
        value = int(value)
        if self.regs.get(int(reg)) != value:
            self.ins("SET", reg=int(reg), value=value)
            self.regs[int(reg)] = value

    def flush(self) -> None:
        for p in self.pending:
            self.add(p)
        self.pending = []

    def words(self) -> list[int]:
        return [encode(i.name, i.fields) for i in self.instrs]

    # ---------------------------------------------------------------- program
    @property
    def w_half(self) -> int:
        """W entries usable in each half."""
        return self.arch.w_depth // 2 - (1 if self.zero_entry is not None else 0)

    def start(self, mem: MemoryMap) -> None:
        if self.arch.requant == "dyadic":
            self.set(Reg.RQ_MULT, 1)
        if self.zero_entry is not None:
            # never written again; every COMPUTE issues after a later load completed, so no mask is needed
            self.ins("LOAD", "W zero entry (re-drain step)", mask=0, target=int(LoadTarget.W), dst=self.zero_entry,
                     count=1, addr=mem.zero, stride=1)

    def finish(self, n_layers: int) -> None:
        self.flush()
        self.ins("MARK", "end", slot=n_layers)
        self.ins("END")

    # ---------------------------------------------------------------- layers
    def prepare(self, li: int, op: LayerOp, plan: Plan, mem: MemoryMap) -> "LayerCtx":
        """Assign A/W halves to the layer's loads (global alternation) and their program positions."""
        ctx = LayerCtx(li, op, plan, mem)
        ctx._slots(self.arch)
        items = plan.items
        for kind, keyf, ctr in (("A", lambda it: it.akey, "a_ctr"), ("W", lambda it: it.wkey, "w_ctr")):
            prev = {0: None, 1: None}
            cur = None
            per_item = []
            for i, it in enumerate(items):
                key = keyf(it)
                if key is None:
                    per_item.append(None)
                    continue
                if cur is None or key != cur["key"]:
                    n = getattr(self, ctr)
                    setattr(self, ctr, n + 1)
                    h = n % 2
                    big = kind == "W" and self._w_entries(ctx, key) > self.w_half
                    if kind == "W" and not big and prev[h] is not None and prev[h]["key"] == key \
                            and prev[h]["half"] == h:
                        # the half still holds these weights (snake order): no load
                        cur = prev[h]
                        cur["last"] = i
                        per_item.append(cur)
                        continue
                    # a load into half h goes right after the last COMPUTE reading the half's old contents
                    prevs = [p for p in ((prev[0], prev[1]) if big else (prev[h],)) if p is not None]
                    cur = {"kind": kind, "key": key, "half": 2 if big else h, "first": i, "last": i, "item": it,
                           "prev": prevs[0] if prevs else None, "prevs": prevs, "ctx": ctx}
                    if big:
                        prev[0] = prev[1] = cur
                    else:
                        prev[h] = cur
                    ctx.events.append(cur)
                cur["last"] = i
                per_item.append(cur)
            if kind == "A":
                ctx.a_of_item = per_item
                # an A group (several pixel tiles in one half): one LOAD_A piece per pixel tile
                for e in [e for e in ctx.events if e["kind"] == "A" and e["key"][0] == "ag"]:
                    seen = {}
                    for it in items[e["first"]:e["last"] + 1]:
                        seen.setdefault((it.b, it.p0), it)
                    k = ctx.events.index(e)
                    ctx.events[k:k + 1] = [dict(e, item=it, aoff=it.aoff, wid=id(e)) for it in seen.values()]
                # an A-stationary window: one LOAD_A piece per K-chunk (placed separately, so they fill the
                # load unit's gaps between the streamed weight chunks)
                for e in [e for e in ctx.events if e["kind"] == "A" and len(e["key"]) > 2 and e["key"][2] == "win"]:
                    it = e["item"]
                    k = ctx.events.index(e)
                    ctx.events[k:k + 1] = [dict(e, item=replace(it, awin=ch, aoff=a0), aoff=a0, wid=id(e))
                                           for ch, a0 in _win_pieces(plan, it)]
            else:
                ctx.w_of_item = per_item
        for e in ctx.events:
            e["pos"] = max([p["last"] + 1 for p in e["prevs"]], default=0)
            if "aoff" in e:  # A-group pieces: anywhere before the group's first COMPUTE (place() picks)
                e.update(pos_min=e["pos"], pos_max=e["first"])
        # split W group loads into one LOAD per co-tile block, spread one A tile apart before they are
        # needed, so each fits in the load unit's slack while the array computes
        n_a = sum(1 for e in ctx.events if e["kind"] == "A")
        ctx.step = max(1, round(len(items) / max(1, n_a)))
        pieces = []
        for e in [e for e in ctx.events if e["kind"] == "W"]:
            ctx.events.remove(e)
            parts = self._w_parts(ctx, e)
            for k, part in enumerate(parts):
                # flexible: anywhere in [pos_min, pos_max]; place() picks the position
                pieces.append(dict(e, piece=part, pos_min=e["pos"], pos_max=e["first"], pos=e["pos"], wid=id(e)))
        ctx.events.extend(pieces)
        if op.bias is not None:
            for bgi, bg in enumerate(plan.bgroups):
                first = next(i for i, it in enumerate(items) if it.bgroup == bgi)
                ctx.events.append({"kind": "B", "pos": first, "first": first, "group": bg, "ctx": ctx})
        ctx.drains = [i for i, it in enumerate(items) if it.last]
        if op.skip:
            for d in ctx.drains[:ctx.nS]:
                ctx.events.append({"kind": "S", "pos": 0, "first": d, "drain": d, "ctx": ctx})
        return ctx

    def prefetch(self, cur: "LayerCtx", nxt: "LayerCtx") -> None:
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
                    for h in ((0, 1) if e["half"] == 2 else (e["half"],)):
                        last_user[(kind, h)] = i
        for kind in ("W", "A"):
            evs = [e for e in nxt.events if e["kind"] == kind and e["first"] == 0 and e["prev"] is None]
            if kind == "A":
                # the first A load (all pieces of a first A group: they share its "wid")
                evs = [e for e in evs if e.get("wid", id(e)) == evs[0].get("wid", id(evs[0]))] if evs else []
            for e in evs:
                pos = max(last_user.get((kind, h), -1) for h in ((0, 1) if e["half"] == 2 else (e["half"],))) + 1
                if kind == "A":
                    dep = self._last_producer(cur, nxt, e["item"])
                    if dep is not None:
                        pos = max(pos, dep + 2)
                if pos >= n:
                    continue
                e.update(pos=pos, pos_min=pos, pos_max=n - 1, first=n, prefetched=True, barrier=kind == "A")
                cur.events.append(e)

    def place(self, ctx: "LayerCtx") -> None:
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
        lat = LOAD_LATENCY
        fixed: dict[int, list] = {}
        flex = []
        for e in ctx.events:
            if e.get("prefetched") and e["ctx"] is ctx:
                continue
            if "pos_max" in e and e["pos_max"] > e["pos_min"]:
                flex.append(e)
            else:
                fixed.setdefault(e["pos"], []).append(e)
        flex.sort(key=lambda e: (e["pos_max"], e["pos_min"]))
        C = self.arch.cols
        load_free = mac = 0
        t = 0
        item_end: dict[int, int] = {}   # estimated MAC end of each item
        ready: dict[int, int] = {}      # id of an A event / W group -> estimated end of its (last) load

        def start_of(e) -> int:
            # the load waits for the load unit and for the COMPUTEs reading its half's old contents
            s0 = max(load_free, t)
            for pe in e.get("prevs") or ():
                if pe.get("ctx") is ctx and pe["last"] in item_end:
                    s0 = max(s0, item_end[pe["last"]])
            return s0

        def put(e, s0) -> None:
            nonlocal load_free, t
            load_free = s0 + self._words(e) + lat
            t = s0 + 1
            k = e.get("wid", id(e))
            ready[k] = max(ready.get(k, 0), load_free)

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
                if e["pos_min"] > p:
                    continue
                s0 = start_of(e)
                # here if it issues no later than the array would otherwise start item p (the in-order issue
                # is not held up behind it), else at the end of its window
                if p >= e["pos_max"] or s0 <= needs(p) + 16:
                    e["pos"] = p
                    flex.remove(e)
                    put(e, s0)
            it = items[p]
            ch = ctx.plan.cotiles[it.co].chunks[it.k]
            steps = ch.lines * (C if ctx.op.kind == "dense" else 1)
            issue = needs(p)
            mac = issue + steps
            item_end[p] = mac
            t = issue + 2
        for e in flex:  # windows ending past the layer (cannot happen) keep pos_min
            e["pos"] = e["pos_min"]

    def _words(self, e) -> int:
        if e["kind"] == "A":
            it = e["item"]
            plan = e["ctx"].plan
            ch = _awin(plan, it)
            if plan.diag:
                sw = e["ctx"].op.stride[1]
                return (ch.kh1 - ch.kh0) * (ch.cb1 - ch.cb0) * (sw * (it.npix - 1) + ch.kw1 - ch.kw0)
            return it.npix * ch.lines
        if e["kind"] == "W":
            return e["piece"][2]
        if e["kind"] == "B":
            return 4 * len(e["group"])
        return self.arch.rows

    def _w_parts(self, ctx: "LayerCtx", e) -> list[tuple[int, int, int]]:
        """(W entry offset in the half, memory address, count) pieces of a W event."""
        plan, mem, op = ctx.plan, ctx.mem, ctx.op
        key = e["key"]
        if key[0] == "ones":
            return [(0, mem.ones, max(ch.lines for ct in plan.cotiles for ch in ct.chunks))]
        parts, off = [], 0
        for j, k2 in plan.wgroups[key]:
            n = plan.cotiles[j].chunks[k2].wentries
            parts.append((off, mem.wblocks[(op.name, j, k2)], n))
            off += n
        return parts

    def _last_producer(self, cur: "LayerCtx", nxt: "LayerCtx", it) -> int | None:
        """Index of the last item of cur whose STOREs write words the first A tile of nxt reads."""
        op, nop = cur.op, nxt.op
        refs = {o.ref for o in op.outputs}
        if nop.src not in refs:
            return None
        ch = _awin(nxt.plan, it)
        _, ih, iw = nop.in_shape
        _, _, ow = nop.out_shape
        sh, ph = nop.stride[0], nop.padding[0]
        oh0, oh1 = it.p0 // ow, (it.p0 + it.npix - 1) // ow
        r0 = max(0, oh0 * sh - ph + ch.kh0)
        r1 = min(ih - 1, oh1 * sh - ph + ch.kh1 - 1)
        lo, hi = r0 * iw, (r1 + 1) * iw  # input pixels [lo, hi) (whole rows: conservative)
        last = None
        for i, x in enumerate(cur.plan.items):
            if x.last and x.b == it.b and x.p0 < hi and lo < x.p0 + x.npix and ch.cb0 <= x.co < ch.cb1:
                last = i
        return last

    def layer(self, ctx: "LayerCtx") -> dict:
        li, op, plan, mem = ctx.li, ctx.op, ctx.plan, ctx.mem
        arch = self.arch
        R, C = arch.rows, arch.cols
        a_half = arch.a_depth // 2
        nS, s_slot, nO, o_slot = ctx.nS, ctx.s_slot, ctx.nO, ctx.o_slot
        per_group = o_slot // R
        outs = op.outputs
        out_groups = [outs[i:i + per_group] for i in range(0, len(outs), per_group)]
        cout = op.out_shape[0]
        cbo = -(-cout // C)
        mode = MODE[op.kind]
        items = plan.items

        self.flush()
        self.ins("MARK", f"layer {li}: {op.name} ({op.op}, {op.kind})", slot=li)
        first_load = [True]

        def load(ins: Instr, barrier: bool = False) -> None:
            if first_load[0] or barrier:
                ins.fields["mask"] |= BARRIER
                first_load[0] = False
            self.add(ins)

        events = [e for e in ctx.events if not (e.get("prefetched") and e["ctx"] is ctx)]
        order = {"B": 0, "A": 1, "W": 2, "S": 3}
        events.sort(key=lambda e: (e["pos"], e["first"], order[e["kind"]]))
        by_pos: dict[int, list] = {}
        for e in events:
            by_pos.setdefault(e["pos"], []).append(e)
        s_slot_of = {d: n % nS for n, d in enumerate(ctx.drains)}

        def s_load(d: int) -> Instr:
            it = items[d]
            slot = s_slot_of[d]
            sk = mem.buffers[op.skip]
            return Instr("LOAD", dict(mask=1 << (4 + slot), target=int(LoadTarget.S), dst=slot * s_slot,
                                      count=it.npix, addr=sk.item(it.b) + it.p0 * cbo + it.co, stride=cbo),
                         f"S{slot} <- skip px {it.p0} b{it.b} co{it.co}")

        def emit_event(e) -> None:
            k = e["kind"]
            if e["ctx"] is not ctx:  # the next layer's prefetched load
                self.add(self.load_instr(e))
                if e.get("barrier"):
                    self.instrs[-1].fields["mask"] |= BARRIER
            elif k in ("A", "W"):
                load(self.load_instr(e))
            elif k == "B":
                bg = e["group"]
                load(Instr("LOAD", dict(mask=BARRIER, target=int(LoadTarget.B), dst=0, count=4 * len(bg),
                                        addr=mem.biases[op.name] + 4 * bg[0], stride=1),
                           f"B <- bias co-tiles {bg[0]}..{bg[-1]}"))
            elif k == "S":
                load(s_load(e["drain"]))

        # ---- compute-side registers for the whole layer ---------------------
        self.set(Reg.A_SIGNED, int(op.in_signed))

        def rq_regs(o) -> None:
            self.set(Reg.RQ_RAW, int(o.raw))
            self.set(Reg.USE_BIAS, int(op.bias is not None))
            if o.raw:
                return
            self.set(Reg.OUT_SIGNED, int(o.fmt.signed))
            self.set(Reg.SHIFT, o.shift)
            self.set(Reg.USE_SKIP, int(op.skip is not None))
            if op.skip:
                self.set(Reg.SKIP_SIGNED, int(op.skip_signed))
                self.set(Reg.ACC_LSHIFT, op.acc_lshift)
                self.set(Reg.SKIP_LSHIFT, op.skip_lshift)

        o_ctr = 0
        wstep = C if op.kind == "dense" else 1
        n_drain = 0
        for i, it in enumerate(items):
            for e in by_pos.get(i, []):
                emit_event(e)
            if i == 0 and first_load[0]:
                # everything was prefetched by the previous layer: still a barrier before the first drain
                load(Instr("LOAD", dict(mask=1 << 4, target=int(LoadTarget.S), dst=0, count=1, addr=mem.zero,
                                        stride=1), "barrier (S line 0 <- 0)"))
            ch = plan.cotiles[it.co].chunks[it.k]
            ae, we = ctx.a_of_item[i], ctx.w_of_item[i]
            a_base = ae["half"] * a_half + it.aoff
            w_base = (self._w_base(we) + it.woff) if we else 0
            mac_mask = (1 << ae["half"]) | (self._w_bits(we) if we else 0)
            acc0 = 0 if it.first else 1
            lines = ch.lines
            tag = f"px {it.p0} b{it.b} co{it.co} k{it.k}"
            if not it.last:
                self.ins("COMPUTE", tag, mask=mac_mask, mode=int(mode), acc=acc0, last=0, a_base=a_base,
                         w_base=w_base, nlines=lines)
                self.flush()
                continue
            if lines >= 2 and mode == Mode.DENSE:
                # split off the last line: the flush slot between the halves (see module doc); DEPTHWISE /
                # MAX tiles are bound by their R-times-larger activation loads, a split would only cost issue slots
                self.ins("COMPUTE", tag, mask=mac_mask, mode=int(mode), acc=acc0, last=0, a_base=a_base,
                         w_base=w_base, nlines=lines - 1)
                self.flush()
                tail = dict(mode=int(mode), acc=1, a_base=a_base + lines - 1, w_base=w_base + (lines - 1) * wstep,
                            nlines=1)
            elif mode == Mode.DENSE and self.zero_entry is not None:
                # one line: MAC it with last = 0, flush, then drain with one extra step times the zero W entry
                self.ins("COMPUTE", tag, mask=mac_mask, mode=int(mode), acc=acc0, last=0, a_base=a_base,
                         w_base=w_base, nlines=lines)
                self.flush()
                tail = dict(mode=int(Mode.DEPTHWISE), acc=1, a_base=a_base, w_base=self.zero_entry, nlines=1)
                mac_mask = 1 << ae["half"]
            else:
                tail = dict(mode=int(mode), acc=acc0, a_base=a_base, w_base=w_base, nlines=lines)
            sslot = s_slot_of[i]
            for gi, grp in enumerate(out_groups):
                self.flush()
                oslot = o_ctr % nO
                o_ctr += 1
                dmask = (1 << (6 + oslot)) | ((1 << (4 + sslot)) if op.skip else 0)
                for k, o in enumerate(grp):
                    rq_regs(o)
                    o_dst = oslot * o_slot + k * R
                    common = dict(last=1, b_src=it.bentry, s_src=sslot * s_slot, o_dst=o_dst)
                    if gi == 0 and k == 0:
                        self.ins("COMPUTE", f"{tag} -> {o.ref}", mask=mac_mask | dmask, **tail, **common)
                    else:
                        # requantize the same accumulators again: one DEPTHWISE step times the zero W entry
                        self.ins("COMPUTE", f"re-drain -> {o.ref}", mask=(1 << ae["half"]) | dmask,
                                 mode=int(Mode.DEPTHWISE), acc=1, a_base=a_base, w_base=self.zero_entry, nlines=1,
                                 **common)
                    ob = mem.buffers[o.ref]
                    if o.raw:
                        st = dict(wide=1, addr=ob.item(it.b) + (it.p0 * cbo + it.co) * 4, stride=4 * cbo)
                    else:
                        st = dict(wide=0, addr=ob.item(it.b) + it.p0 * cbo + it.co, stride=cbo)
                    self.pending.append(Instr("STORE", dict(mask=1 << (6 + oslot), src=o_dst, count=it.npix, **st),
                                              f"{o.ref} px {it.p0} b{it.b} co{it.co}"))
            if op.skip and n_drain + nS < len(ctx.drains):
                self.pending.insert(0, s_load(ctx.drains[n_drain + nS]))
            n_drain += 1
        own = [e for e in ctx.events if e["ctx"] is ctx]
        return {"items": len(items), "pixel_tiles": plan.n_pixel_tiles, "co_tiles": len(plan.cotiles),
                "k_chunks": plan.n_chunks, "w_loads": len({(e["key"], e["half"]) for e in own if e["kind"] == "W"}),
                "a_loads": sum(1 for e in own if e["kind"] == "A")}

    def load_instr(self, e) -> Instr:
        """The LOAD_A / LOAD W instruction of an A or W event (SETs of the LOAD_A registers emitted first)."""
        ctx = e["ctx"]
        op, plan, mem = ctx.op, ctx.plan, ctx.mem
        C = self.arch.cols
        if e["kind"] == "A":
            it = e["item"]
            ch = _awin(plan, it)
            cin, ih, iw = op.in_shape
            _, _, ow = op.out_shape
            cbi = -(-cin // C)
            sh, sw = op.stride
            ph, pw = op.padding
            p_oh, p_ow = divmod(it.p0, ow)
            ih0 = p_oh * sh - ph + ch.kh0
            iw0 = p_ow * sw - pw + ch.kw0
            self.set(Reg.IN_H, ih)
            self.set(Reg.IN_W, iw)
            self.set(Reg.OUT_W, ow)
            self.set(Reg.KH, ch.kh1 - ch.kh0)
            self.set(Reg.KW, ch.kw1 - ch.kw0)
            self.set(Reg.STRIDE_H, sh)
            self.set(Reg.STRIDE_W, sw)
            self.set(Reg.PAD_W, pw - ch.kw0)
            self.set(Reg.STEP_KH, iw * cbi)
            self.set(Reg.STEP_KW, cbi)
            self.set(Reg.STEP_OW, sw * cbi)
            self.set(Reg.STEP_WRAP, (sh * iw - (ow - 1) * sw) * cbi)
            self.set(Reg.PAD_VALUE, op.pad_value)
            self.set(Reg.A_GATHER, op.gather)
            self.set(Reg.A_DIAG, 1 if plan.diag else 0)
            src = mem.buffers[op.src]
            addr = (src.item(it.b) + (ih0 * iw + iw0) * cbi + ch.cb0) % (1 << 32)
            half = e["half"]
            return Instr("LOAD_A", dict(mask=1 << half, dst=half * (self.arch.a_depth // 2) + e.get("aoff", 0),
                                        npix=it.npix,
                                        ncb=ch.cb1 - ch.cb0, ih0=ih0, iw0=iw0, ow0=p_ow, addr=addr),
                         f"{op.name}: A{half} <- px {it.p0}..{it.p0 + it.npix - 1} b{it.b} kh{ch.kh0}:{ch.kh1} "
                         f"kw{ch.kw0}:{ch.kw1} cb{ch.cb0}:{ch.cb1}")
        key = e["key"]
        off, addr, count = e["piece"]
        half = e["half"]
        return Instr("LOAD", dict(mask=self._w_bits(e), target=int(LoadTarget.W), dst=self._w_base(e) + off,
                                  count=count, addr=addr, stride=1),
                     f"{op.name}: W{'0+1' if half == 2 else half}+{off} <- {key}")

    def _w_base(self, e) -> int:
        return 0 if e["half"] == 2 else e["half"] * self.w_half

    @staticmethod
    def _w_bits(e) -> int:
        return 0x0C if e["half"] == 2 else 1 << (2 + e["half"])

    def _w_entries(self, ctx: "LayerCtx", key) -> int:
        return sum(p[2] for p in self._w_parts(ctx, {"key": key}))


def _win_pieces(plan: Plan, it) -> list:
    """(chunk, line offset in the window) of the co-tile's K-chunks, in window line order."""
    chs = plan.cotiles[it.co].chunks
    offs = [0]
    for ch in chs[:-1]:
        offs.append(offs[-1] + ch.lines)
    return list(zip(chs, offs))


def _awin(plan: Plan, it):
    """The window an item's A load covers: its chunk, or the whole window (A-stationary K-split)."""
    return it.awin if it.awin is not None else plan.cotiles[it.co].chunks[it.k]


class LayerCtx:
    """One layer's op, plan, memory map and load events (filled by Emitter.prepare)."""

    def __init__(self, li: int, op: LayerOp, plan: Plan, mem: MemoryMap):
        self.li, self.op, self.plan, self.mem = li, op, plan, mem
        self.events: list[dict] = []
        self.a_of_item: list = []
        self.w_of_item: list = []
        self.drains: list[int] = []

    def _slots(self, arch):
        R = arch.rows
        self.nS = 2 if arch.s_depth // 2 >= R else 1
        self.s_slot = arch.s_depth // self.nS
        self.nO = 2 if arch.o_depth // 2 >= R else 1
        self.o_slot = arch.o_depth // self.nO

"""Pass 5 (emit): scheduled layers -> instruction stream with resource masks.

Resource-mask convention (``f8hw.isa.Resource``, docs/architecture.md): bits
0/1 = A halves, 2/3 = W halves, 4/5 = S slots, 6/7 = O slots.  Double buffering:

* A and W: loads alternate halves (planned in loads.py).  A load into a half is
  placed in program order right after the last COMPUTE that reads the half's
  previous contents, so it overlaps the COMPUTEs of the other half; the hazard
  check (MAC phase holds bits 0..3) makes it wait for that COMPUTE's MAC phase only.
* Drains: a DENSE (or depthwise) tile's last COMPUTE is split in two (all lines but one with
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
* Formats (flexible builds): A_FMT / W_FMT / BIAS64 per layer, OUT_FMT / SKIP_FMT per output, SET
  only when they change; they reset to 0 (INT8), so INT8 layers never SET them and an INT8-only
  build's program is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.compiler.loads import BOTH_HALVES, LayerCtx, LoadEvent, LoadPlanner, awin
from f8hw.compiler.memory import MemoryMap
from f8hw.isa import BARRIER, LoadTarget, Mode, Reg, a_half_mask, o_slot_mask, s_slot_mask

__all__ = ["Emitter", "Instr", "encode"]

MODE = {"dense": Mode.DENSE, "dw": Mode.DEPTHWISE, "gap": Mode.DEPTHWISE, "max": Mode.MAX}


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
        self.regs: dict[int, int] = {int(Reg.A_GATHER): 0, int(Reg.A_DIAG): 0,
                                     **{int(r): 0 for r in isa.FORMAT_REGS}}
        self.pending: list[Instr] = []
        self.loads = LoadPlanner(arch, self.w_half)

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
    def layer(self, ctx: LayerCtx) -> dict:
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
        bw = 8 if op.bias64 else 4  # B words per co-tile

        self.flush()
        self.ins("MARK", f"layer {li}: {op.name} ({op.op}, {op.kind})", slot=li)
        first_load = [True]

        def load(ins: Instr, barrier: bool = False) -> None:
            if first_load[0] or barrier:
                ins.fields["mask"] |= BARRIER
                first_load[0] = False
            self.add(ins)

        events = [e for e in ctx.events if ctx.own(e)]
        order = {"B": 0, "A": 1, "W": 2, "S": 3}
        events.sort(key=lambda e: (e.pos, e.first, order[e.kind]))
        by_pos: dict[int, list[LoadEvent]] = {}
        for e in events:
            by_pos.setdefault(e.pos, []).append(e)
        s_slot_of = {d: n % nS for n, d in enumerate(ctx.drains)}

        def s_load(d: int) -> Instr:
            it = items[d]
            slot = s_slot_of[d]
            sk = mem.buffers[op.skip]
            return Instr("LOAD", dict(mask=s_slot_mask(slot), target=int(LoadTarget.S), dst=slot * s_slot,
                                      count=it.npix, addr=sk.item(it.b) + it.p0 * cbo + it.co, stride=cbo),
                         f"S{slot} <- skip px {it.p0} b{it.b} co{it.co}")

        def emit_event(e: LoadEvent) -> None:
            k = e.kind
            if e.ctx is not ctx:  # the next layer's prefetched load
                for ins in self.load_instrs(e):
                    self.add(ins)
                    if e.barrier:
                        self.instrs[-1].fields["mask"] |= BARRIER
            elif k in ("A", "W"):
                for ins in self.load_instrs(e):
                    load(ins)
            elif k == "B":
                bg = e.group
                load(Instr("LOAD", dict(mask=BARRIER, target=int(LoadTarget.B), dst=0, count=bw * len(bg),
                                        addr=mem.biases[op.name] + bw * bg[0], stride=1),
                           f"B <- bias co-tiles {bg[0]}..{bg[-1]}"))
            elif k == "S":
                load(s_load(e.drain))

        # ---- compute-side registers for the whole layer ---------------------
        self.set(Reg.A_SIGNED, int(op.in_signed))
        fmt = arch.formats.index  # format registers hold indices into arch.formats (0 = int8: never SET on INT8)
        self.set(Reg.A_FMT, fmt(op.a_fmt))
        if op.kind in ("dense", "dw"):
            self.set(Reg.W_FMT, fmt(op.w_fmt))
        elif op.kind == "gap":
            self.set(Reg.W_FMT, 0)  # the ones tile is int8
        if op.bias is not None:
            self.set(Reg.BIAS64, int(op.bias64))

        def rq_regs(o) -> None:
            self.set(Reg.RQ_RAW, int(o.raw))
            self.set(Reg.USE_BIAS, int(op.bias is not None))
            if o.raw:
                return
            self.set(Reg.OUT_FMT, fmt(o.lane))
            self.set(Reg.OUT_SIGNED, int(o.fmt.signed))
            self.set(Reg.SHIFT, o.shift)
            self.set(Reg.USE_SKIP, int(op.skip is not None))
            if op.skip:
                self.set(Reg.SKIP_FMT, fmt(op.skip_fmt))
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
                load(Instr("LOAD", dict(mask=s_slot_mask(0), target=int(LoadTarget.S), dst=0, count=1, addr=mem.zero,
                                        stride=1), "barrier (S line 0 <- 0)"))
            ch = plan.cotiles[it.co].chunks[it.k]
            ae, we = ctx.a_of_item[i], ctx.w_of_item[i]
            a_base = ae.half * a_half + it.aoff
            w_base = (self._w_base(we) + it.woff) if we else 0
            mac_mask = a_half_mask(ae.half) | (self._w_bits(we) if we else 0)
            acc0 = 0 if it.first else 1
            lines = ch.lines
            tag = f"px {it.p0} b{it.b} co{it.co} k{it.k}"
            if it.ring is not None:
                # line buffer: kernel rows s0.. of the ring, in order, wrapping at its end: one COMPUTE per
                # run of consecutive slots (acc = 1 continues the sum; the weights are unchanged, the split
                # costs no array step), the last run is emitted below as usual
                segs = self._ring_segments(ctx, it, ae)
                for sa, sw_off, sn in segs[:-1]:
                    self.ins("COMPUTE", f"{tag} ring", mask=mac_mask, mode=int(mode), acc=acc0, last=0, a_base=sa,
                             w_base=w_base + sw_off, nlines=sn)
                    acc0 = 1
                a_base, w_off, lines = segs[-1]
                w_base += w_off
            if not it.last:
                self.ins("COMPUTE", tag, mask=mac_mask, mode=int(mode), acc=acc0, last=0, a_base=a_base,
                         w_base=w_base, nlines=lines)
                self.flush()
                continue
            if lines >= 2 and (mode == Mode.DENSE or op.kind == "dw"):
                # split off the last line: the flush slot between the halves (see module doc); depthwise too:
                # unsplit, its STOREs wait ahead of the next COMPUTE for an R-row drain (a larger array lost R
                # cycles per tile); MAX / GAP tiles are bound by their far longer activation loads
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
                mac_mask = a_half_mask(ae.half)
            else:
                tail = dict(mode=int(mode), acc=acc0, a_base=a_base, w_base=w_base, nlines=lines)
            sslot = s_slot_of[i]
            for gi, grp in enumerate(out_groups):
                self.flush()
                oslot = o_ctr % nO
                o_ctr += 1
                dmask = o_slot_mask(oslot) | (s_slot_mask(sslot) if op.skip else 0)
                for k, o in enumerate(grp):
                    rq_regs(o)
                    o_dst = oslot * o_slot + k * R
                    common = dict(last=1, b_src=it.bentry, s_src=sslot * s_slot, o_dst=o_dst)
                    if gi == 0 and k == 0:
                        self.ins("COMPUTE", f"{tag} -> {o.ref}", mask=mac_mask | dmask, **tail, **common)
                    else:
                        # requantize the same accumulators again: one DEPTHWISE step times the zero W entry
                        self.ins("COMPUTE", f"re-drain -> {o.ref}", mask=a_half_mask(ae.half) | dmask,
                                 mode=int(Mode.DEPTHWISE), acc=1, a_base=a_base, w_base=self.zero_entry, nlines=1,
                                 **common)
                    ob = mem.buffers[o.ref]
                    if o.raw:
                        pl = o.planes
                        st = dict(wide=1, addr=ob.item(it.b) + (it.p0 * cbo + it.co) * pl, stride=pl * cbo,
                                  **({"wide64": 1} if pl == 8 else {}))
                    else:
                        st = dict(wide=0, addr=ob.item(it.b) + it.p0 * cbo + it.co, stride=cbo)
                    self.pending.append(Instr("STORE", dict(mask=o_slot_mask(oslot), src=o_dst, count=it.npix, **st),
                                              f"{o.ref} px {it.p0} b{it.b} co{it.co}"))
            if op.skip and n_drain + nS < len(ctx.drains):
                self.pending.insert(0, s_load(ctx.drains[n_drain + nS]))
            n_drain += 1
        for e in by_pos.get(len(items), []):  # prefetched W loads placed after the last COMPUTE (loads.place)
            emit_event(e)
        own = [e for e in ctx.events if e.ctx is ctx]
        return {"items": len(items), "pixel_tiles": plan.n_pixel_tiles, "co_tiles": len(plan.cotiles),
                "k_chunks": plan.n_chunks, "w_loads": len({(e.key, e.half) for e in own if e.kind == "W"}),
                "a_loads": sum(1 for e in own if e.kind == "A"), "lbuf": plan.ring}

    def ring_base(self, ctx: LayerCtx, it, ae: LoadEvent) -> int:
        """First A line of the item's ring (its region of the ring's A half)."""
        plan = ctx.plan
        ch = plan.cotiles[it.co].chunks[it.k]
        slot = (ch.kw1 - ch.kw0) * (ch.cb1 - ch.cb0)
        return ae.phys * (self.arch.a_depth // 2) + it.ring.region * plan.ring * slot

    def _ring_segments(self, ctx: LayerCtx, it, ae: LoadEvent) -> list[tuple[int, int, int]]:
        """(A line, W entry offset, lines) per run of consecutive ring slots of the tile's KH kernel rows."""
        ch = ctx.plan.cotiles[it.co].chunks[it.k]
        S, slot = ctx.plan.ring, (ch.kw1 - ch.kw0) * (ch.cb1 - ch.cb0)
        base = self.ring_base(ctx, it, ae)
        kh, s0 = ch.kh1 - ch.kh0, it.ring.s0
        first = min(kh, S - s0)
        segs = [(base + s0 * slot, 0, first * slot)]
        if first < kh:
            segs.append((base, first * slot, (kh - first) * slot))
        return segs

    def load_instrs(self, e: LoadEvent) -> list[Instr]:
        """The instructions of an A or W event: one, or a line buffer's LOAD_A per run of new rows."""
        it = e.item
        if e.kind != "A" or it.ring is None:
            return [self.load_instr(e)]
        ctx = e.ctx
        ch = awin(ctx.plan, it)
        slot = (ch.kw1 - ch.kw0) * (ch.cb1 - ch.cb0)
        base = self.ring_base(ctx, it, e)
        return [self.load_instr(e, rows=(r0, n), dst=base + s * slot) for r0, n, s in it.ring.loads]

    def load_instr(self, e: LoadEvent, rows: tuple[int, int] | None = None, dst: int | None = None) -> Instr:
        """The LOAD_A / LOAD W instruction of an A or W event (SETs of the LOAD_A registers emitted first)."""
        ctx = e.ctx
        op, plan, mem = ctx.op, ctx.plan, ctx.mem
        C = self.arch.cols
        if e.kind == "A":
            it = e.item
            ch = awin(plan, it)
            cin, ih, iw = op.in_shape
            _, _, ow = op.out_shape
            cbi = -(-cin // C)
            sh, sw = op.stride
            ph, pw = op.padding
            p_oh, p_ow = divmod(it.p0, ow)
            # rows: a line buffer's load of kernel rows r0 .. r0+n-1 of the window (into ring slots at dst)
            r0, nrows = rows if rows is not None else (0, ch.kh1 - ch.kh0)
            ih0 = p_oh * sh - ph + ch.kh0 + r0
            iw0 = p_ow * sw - pw + ch.kw0
            self.set(Reg.IN_H, ih)
            self.set(Reg.IN_W, iw)
            self.set(Reg.OUT_W, ow)
            self.set(Reg.KH, nrows)
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
            half = e.half
            if dst is None:
                dst = half * (self.arch.a_depth // 2) + (e.aoff or 0)
            khs = f"kh{ch.kh0}:{ch.kh1}" if rows is None else f"rows {ih0}:{ih0 + nrows} (ring)"
            return Instr("LOAD_A", dict(mask=a_half_mask(half), dst=dst, npix=it.npix,
                                        ncb=ch.cb1 - ch.cb0, ih0=ih0, iw0=iw0, ow0=p_ow, addr=addr),
                         f"{op.name}: A{half} <- px {it.p0}..{it.p0 + it.npix - 1} b{it.b} {khs} "
                         f"kw{ch.kw0}:{ch.kw1} cb{ch.cb0}:{ch.cb1}")
        key = e.key
        off, addr, count = e.piece
        half = e.half
        return Instr("LOAD", dict(mask=self._w_bits(e), target=int(LoadTarget.W), dst=self._w_base(e) + off,
                                  count=count, addr=addr, stride=1),
                     f"{op.name}: W{'0+1' if half == BOTH_HALVES else half}+{off} <- {key}")

    def _w_base(self, e: LoadEvent) -> int:
        return 0 if e.half == BOTH_HALVES else e.half * self.w_half

    @staticmethod
    def _w_bits(e: LoadEvent) -> isa.Resource:
        return isa.W_BOTH_HALVES if e.half == BOTH_HALVES else isa.w_half_mask(e.half)

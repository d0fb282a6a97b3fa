"""Pass 3 (tile/schedule): a layer op -> co-tiles, K-chunks, pixel tiles and work items.

- Pixel tiles: R consecutive output pixels (row-major, across output rows: the
  LOAD_A address generator wraps rows itself), one per batch item.
- Co-tiles: C output channels (DENSE) or one channel block (DEPTHWISE / MAX /
  GAP, where column c reads byte c of the activation line).
- K-chunks: the reduction is split (kernel rows x input channel blocks) when a
  pixel's window does not fit one A half (a_depth/2 lines) or the co-tile's
  weights do not fit one W half (w_depth/2 entries); chunks accumulate (acc=1)
  and only the last one drains (last=1).
- Weight reuse: without K-split, co-tiles are grouped so a group's weights fit
  one W half; the group's weights are loaded once and stay resident while every
  pixel tile streams through, and each A tile is reused by every co-tile of the
  group that reads the same channel blocks (DENSE convolutions: all of them).
- "Big" co-tiles: weights larger than a W half but within the whole W (and a
  window within an A half) take both W halves (no K-split; not double-buffered,
  but resident across all pixel tiles).
- Bias groups: at most b_depth co-tiles' biases are resident at once (b_depth / 2 for 64-bit biases).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from f8hw.arch import ArchConfig
from f8hw.compiler.errors import CompileError
from f8hw.compiler.lower import LayerOp


@dataclass(frozen=True)
class Chunk:
    kh0: int
    kh1: int
    kw0: int
    kw1: int
    cb0: int
    cb1: int
    lines: int     # A lines per pixel (and COMPUTE nlines)
    wentries: int  # W entries of this chunk (0 for MAX)


@dataclass
class CoTile:
    j: int
    cb0: int       # input channel blocks read by this co-tile
    cb1: int
    chunks: list[Chunk]


@dataclass(frozen=True)
class Item:
    """One COMPUTE (or split COMPUTE) of the layer: a pixel tile x co-tile x K-chunk."""

    b: int
    p0: int
    npix: int
    co: int
    k: int
    first: bool
    last: bool
    akey: tuple
    wkey: tuple | None
    woff: int      # W entry offset of this co-tile/chunk inside its W load
    bentry: int    # bias entry (co-tile index inside its bias group, x2 for a 64-bit bias)
    bgroup: int
    aoff: int = 0  # first A line of this item's chunk inside its A load (A-stationary K-split)
    awin: Chunk | None = None  # the window of the item's A load if not its chunk's (A-stationary K-split)
    ring: RingTile | None = None  # line buffer (ring_tiles): where the tile's window rows are


@dataclass(frozen=True)
class RingTile:
    """A depthwise tile of a line buffer (ring_tiles): the window's kernel rows live in a ring of S row slots
    (S = KH + SH, KW*ncb A lines each, slot of the strip's window row q = q mod S) in ring region ``region``
    (0 / 1: consecutive strips alternate, so a strip's first full load never overwrites rows the previous
    strip's last tile still reads).  Kernel row kh of the tile is in slot (s0 + kh) mod S."""

    region: int
    s0: int
    loads: tuple[tuple[int, int, int], ...]  # LOAD_As: (first kernel row of the tile's window, rows, first slot)


@dataclass
class Plan:
    cotiles: list[CoTile]
    items: list[Item]
    bgroups: list[list[int]]            # co-tiles whose biases are resident together
    wgroups: dict = field(default_factory=dict)  # wkey -> list of (co, k) blocks loaded together
    n_pixel_tiles: int = 0
    diag: bool = False                  # LOAD_A window reuse (A_DIAG): pixel tiles never cross an output row
    ring: int = 0                       # line buffer (ring_tiles): row slots per ring (KH + SH); 0 = off

    @property
    def n_chunks(self) -> int:
        return max(len(c.chunks) for c in self.cotiles)


def _chunks(op: LayerOp, arch: ArchConfig, cb0: int, cb1: int, w_half: int, big: bool = True,
            max_rows: int | None = None) -> list[Chunk]:
    """The K-chunks of a co-tile; max_rows: at most that many kernel rows per chunk where chunks are whole rows."""
    C = arch.cols
    kh, kw = op.kernel
    a_half = arch.a_depth // 2
    per_line_w = {"dense": C, "dw": 1, "gap": 1, "max": 0}[op.kind]
    lmax = a_half if per_line_w == 0 else min(a_half, w_half // per_line_w)
    ncb = cb1 - cb0
    if lmax < 1:
        raise CompileError(
            f"layer {op.name!r}: one reduction step needs {per_line_w} weight entries, but a W scratchpad half "
            f"holds {w_half} (w_depth={arch.w_depth})")

    def mk(h0, h1, w0, w1, c0, c1):
        taps = (h1 - h0) * (w1 - w0)
        # LOAD_A tap gather (lower.tap_gather): C // Cin taps per A line, each chunk's lines start afresh
        lines = -(-taps // (C // op.gather)) if op.gather else taps * (c1 - c0)
        return Chunk(h0, h1, w0, w1, c0, c1, lines, lines * per_line_w)

    if op.gather:
        # whole kernel rows per chunk (a gathered window cannot be cut inside a row: lower.tap_gather)
        whole = mk(0, kh, 0, kw, cb0, cb1)
        if max_rows is None and (whole.lines <= lmax or (big and whole.lines <= a_half
                                                         and whole.wentries <= 2 * w_half)):
            return [whole]
        rows = max(r for r in range(1, kh + 1) if mk(0, r, 0, kw, cb0, cb1).lines <= lmax)
        if max_rows:
            rows = min(rows, max_rows)
        elif not big:
            rows = kh // next(n for n in range(-(-kh // rows), kh + 1) if kh % n == 0)
        return [mk(h, min(kh, h + rows), 0, kw, cb0, cb1) for h in range(0, kh, rows)]

    if kh * kw * ncb <= lmax and max_rows is None:
        return [mk(0, kh, 0, kw, cb0, cb1)]
    if big and per_line_w and kh * kw * ncb <= a_half and kh * kw * ncb * per_line_w <= 2 * w_half:
        # "big" co-tile: its weights take both W halves (resident while every pixel tile streams through,
        # not double-buffered): far fewer loads than a K-split that reloads weights for every pixel tile
        return [mk(0, kh, 0, kw, cb0, cb1)]
    if kw * ncb <= lmax:
        rows = lmax // (kw * ncb)
        if max_rows:
            rows = min(rows, max_rows)
        elif not big:
            # streamed chunks (A-stationary): equal sizes, so each chunk's weight load fits under the
            # previous chunk's compute
            n = next(n for n in range(-(-kh // rows), kh + 1) if kh % n == 0)
            rows = kh // n
        return [mk(h, min(kh, h + rows), 0, kw, cb0, cb1) for h in range(0, kh, rows)]
    if ncb <= lmax:
        cols = lmax // ncb
        return [mk(h, h + 1, x, min(kw, x + cols), cb0, cb1) for h in range(kh) for x in range(0, kw, cols)]
    return [mk(h, h + 1, x, x + 1, c, min(cb1, c + lmax)) for h in range(kh) for x in range(kw)
            for c in range(cb0, cb1, lmax)]


def _ks_cycles(cotiles: list[CoTile], tiles: list[int], C: int) -> int:
    """Estimated cycles of an A-stationary K-split: the first weight chunk's load (nothing to hide it under),
    then per pixel tile every chunk's MAC steps or the next chunk's weight load, whichever is longer, and the
    tiles' A loads (npix lines per window line: a map of fewer than R pixels loads fewer)."""
    lat = 2
    chs = [ch for c in cotiles for ch in c.chunks]   # the chunk sequence of one pixel tile
    per_tile = sum(max(ch.lines * C, chs[(i + 1) % len(chs)].wentries + lat) for i, ch in enumerate(chs))
    window = max(sum(ch.lines for ch in c.chunks) for c in cotiles)
    return chs[0].wentries + lat + len(tiles) * per_tile + sum(npix * window + lat for npix in tiles)


def _row_chunks(op: LayerOp, arch: ArchConfig, cotiles: list[CoTile], w_half: int, tiles: list[int]) -> list[CoTile]:
    """K-chunks of whole kernel rows: the number of rows per chunk with the fewest estimated cycles (_ks_cycles).
    Large chunks need fewer loads, small ones expose less of the first weight load: a layer with one pixel
    tile (a linear head) is bound by its weight loads, and its first chunk is all that is not overlapped
    (unsplit, all of its weights load before its first MAC)."""
    kh, kw = op.kernel
    if any((ch.kw0, ch.kw1) != (0, kw) for c in cotiles for ch in c.chunks):
        return cotiles
    best, best_est = cotiles, _ks_cycles(cotiles, tiles, arch.cols)
    for rows in range(1, max(ch.kh1 - ch.kh0 for c in cotiles for ch in c.chunks)):
        cand = [CoTile(c.j, c.cb0, c.cb1, _chunks(op, arch, c.cb0, c.cb1, w_half, False, rows)) for c in cotiles]
        if not _a_stationary(op, cand, arch):
            continue
        est = _ks_cycles(cand, tiles, arch.cols)
        if est < best_est:
            best, best_est = cand, est
    return best


def _balanced_groups(sizes: list[int], cap: int) -> list[list[int]]:
    """Split consecutive indices into the fewest groups of total size <= cap, as even as possible
    (even groups leave every group the same load slack for prefetching the next group's weights)."""
    n = len(sizes)
    for k in range(max(1, -(-sum(sizes) // cap)), n + 1):
        per = -(-n // k)
        groups = [list(range(i, min(n, i + per))) for i in range(0, n, per)]
        if all(sum(sizes[i] for i in g) <= cap for g in groups):
            return groups
    return [[i] for i in range(n)]


def _a_group(op: LayerOp, cotiles: list[CoTile], groups: list[list[int]], n_pix: int, arch: ArchConfig,
             w_half: int) -> int:
    """Pixel tiles per A half for a DENSE layer whose W groups hold one co-tile each (1: no A groups)."""
    if op.kind != "dense" or len(groups) < 2 or n_pix < 2 or any(len(g) != 1 for g in groups):
        return 1
    ch = cotiles[0].chunks[0]
    if any((c.cb0, c.cb1) != (cotiles[0].cb0, cotiles[0].cb1) or c.chunks[0].wentries > w_half for c in cotiles):
        return 1
    return max(1, min(n_pix, (arch.a_depth // 2) // ch.lines))


def _a_stationary(op: LayerOp, cotiles: list[CoTile], arch: ArchConfig) -> bool:
    """K-split DENSE layer whose whole window fits one A half, every chunk a contiguous line range of it."""
    if op.kind != "dense":
        return False
    kw = op.kernel[1]
    for ct in cotiles:
        if sum(ch.lines for ch in ct.chunks) > arch.a_depth // 2:
            return False
        for ch in ct.chunks:
            if (ch.cb0, ch.cb1) != (ct.cb0, ct.cb1) or not ((ch.kw0, ch.kw1) == (0, kw) or ch.kh1 - ch.kh0 == 1):
                return False
    return True


def diag_tiles(op: LayerOp, cotiles: list[CoTile], arch: ArchConfig) -> bool:
    """Use LOAD_A window reuse (A_DIAG, docs/architecture.md) for a depthwise or max-pool layer (both read
    one channel block per column, A_DIAG is a load mode: COMPUTE is unchanged)?  It needs pixel tiles
    inside one output row (min(R, OW - ow) pixels) and STRIDE_W <= every chunk's KW; a tile then reads
    KH*(SW*(npix-1) + KW) words per chunk instead of npix*KH*KW.  Used when the estimated cycles (per
    tile and chunk: max(load words, MAC steps, R drain cycles)) of the row tiling are lower."""
    if op.kind not in ("dw", "max"):
        return False
    R = arch.rows
    _, oh, ow = op.out_shape
    sw = op.stride[1]
    chs = [ch for c in cotiles for ch in c.chunks]
    if any(not 1 <= sw <= ch.kw1 - ch.kw0 for ch in chs):
        return False

    def est(tiles, diag):
        tot = 0
        for npix in tiles:
            for ch in chs:
                kh, kw, ncb = ch.kh1 - ch.kh0, ch.kw1 - ch.kw0, ch.cb1 - ch.cb0
                words = kh * ncb * (sw * (npix - 1) + kw) if diag else npix * kh * kw * ncb
                tot += max(words, ch.lines, R)
        return tot

    flat = [min(R, oh * ow - p0) for p0 in range(0, oh * ow, R)]
    rows = [min(R, ow - o0) for _ in range(oh) for o0 in range(0, ow, R)]
    return est(rows, True) < est(flat, False)


def ring_slots(op: LayerOp) -> int:
    """Row slots of a depthwise line buffer: KH + SH (the KH rows a tile reads and the SH rows the next
    tile loads while it computes)."""
    return op.kernel[0] + op.stride[0]


def ring_tile_loads(op: LayerOp, oh: int) -> tuple[tuple[int, int], ...]:
    """(first kernel row, rows) of the LOAD_As of output row oh's tile in a line buffer, each a run of
    consecutive ring slots: the whole window for the strip's first tile, else its SH new rows."""
    kh, sh = op.kernel[0], op.stride[0]
    S = ring_slots(op)
    if oh == 0:
        return ((0, kh),)
    runs: list[list[int]] = []
    for r in range(kh - sh, kh):
        if runs and (oh * sh + r) % S != 0:
            runs[-1][1] += 1
        else:
            runs.append([r, 1])
    return tuple((a, b) for a, b in runs)


def ring_tiles(op: LayerOp, cotiles: list[CoTile], arch: ArchConfig) -> bool:
    """Use a line buffer (a rotating window) for a depthwise or max-pooling layer with window reuse (both
    read their window rows in any order: exact sums, max)?  Its tiles walk
    down strips of min(R, OW - ow0) output columns; each keeps the KH input rows of its window in a ring
    of S = KH + SH row slots of one A half, and a tile's LOAD_As (A_DIAG) read only its SH new rows
    (SH*(SW*(npix-1)+KW) words instead of KH*(...)): the next tile's rows load into the slots nobody reads
    while the current tile computes.  Needs one K-chunk per co-tile, KH > SH (rows to share), at least two
    output rows and two rings in an A half; used when its estimated cycles (per tile: max(load words and
    latencies, MAC steps, R drain cycles)) beat the row tiles of diag_tiles."""
    if op.kind not in ("dw", "max") or any(len(c.chunks) != 1 for c in cotiles):
        return False
    R = arch.rows
    (kh, kw), (sh, sw) = op.kernel, op.stride
    _, oh, ow = op.out_shape
    ch = cotiles[0].chunks[0]
    ncb = ch.cb1 - ch.cb0
    if kh <= sh or oh < 2 or 2 * ring_slots(op) * kw * ncb > arch.a_depth // 2:
        return False
    lat = 2
    strips = [min(R, ow - o0) for o0 in range(0, ow, R)]
    ring = diag = 0
    for npix in strips:
        J = (sw * (npix - 1) + kw) * ncb
        diag += oh * max(kh * J + lat, ch.lines, R)
        ring += sum(max(sum(n * J + lat for _, n in ring_tile_loads(op, y)), ch.lines, R) for y in range(oh))
    return ring < diag


def schedule(op: LayerOp, arch: ArchConfig, batch: int = 1, w_half: int | None = None, diag: bool = True,
             lbuf: bool = True) -> Plan:
    """w_half: W entries usable per half (default w_depth/2; the emitter may reserve one); diag: allow
    LOAD_A window reuse for depthwise layers (diag_tiles); lbuf: allow a line buffer on top of it
    (ring_tiles)."""
    R, C = arch.rows, arch.cols
    cin, _, _ = op.in_shape
    cout, oh, ow = op.out_shape
    w_half = arch.w_depth // 2 if w_half is None else w_half
    n_co = -(-cout // C)
    cotiles = []
    for j in range(n_co):
        if op.kind == "dense":
            cpg_in, cpg_out = cin // op.groups, cout // op.groups
            o0, o1 = j * C, min(cout, (j + 1) * C)
            g0, g1 = o0 // cpg_out, (o1 - 1) // cpg_out
            c0, c1 = g0 * cpg_in, (g1 + 1) * cpg_in
            cb0, cb1 = c0 // C, -(-c1 // C)
        else:
            cb0, cb1 = j, j + 1
        cotiles.append(CoTile(j, cb0, cb1, _chunks(op, arch, cb0, cb1, w_half)))
    tiles = [min(R, oh * ow - p0) for p0 in range(0, oh * ow, R)] * batch   # pixels of each pixel tile
    if op.kind == "dense" and any(c.chunks[0].wentries > w_half for c in cotiles):
        # "big" co-tiles (weights in both W halves, resident, A streamed per item, each co-tile's weight load
        # exposed) vs an A-stationary K-split (A once per pixel tile, W chunks streamed double-buffered):
        # take the one with fewer estimated cycles (both are bound by the load unit for R = C).  A words per
        # pixel tile are npix (not R) lines each: estimating R for a map of fewer than R pixels (a linear
        # head) would make every larger array prefer the exposed big weight loads
        alt = [CoTile(c.j, c.cb0, c.cb1, _chunks(op, arch, c.cb0, c.cb1, w_half, big=False)) for c in cotiles]
        if _a_stationary(op, alt, arch):
            lat = 2
            big_est = sum(sum(max(c.chunks[0].lines * C, npix * c.chunks[0].lines + lat) for npix in tiles)
                          + c.chunks[0].wentries + lat for c in cotiles)
            if _ks_cycles(alt, tiles, C) < big_est:
                cotiles = alt
    if op.kind == "dense" and (len(tiles) == 1 or any(len(c.chunks) > 1 for c in cotiles)) \
            and _a_stationary(op, cotiles, arch):
        # one pixel tile (a linear head at batch 1): chunks let the weight loads overlap the MACs
        cotiles = _row_chunks(op, arch, cotiles, w_half, tiles)
    single = all(len(c.chunks) == 1 for c in cotiles)
    # bias groups (and weight groups inside them)
    bw = 2 if op.bias64 else 1  # B entries per co-tile (BIAS64: low and high 32 bits)
    bgroups = [list(range(s, min(n_co, s + arch.b_depth // bw))) for s in range(0, n_co, arch.b_depth // bw)]
    use_diag = diag and diag_tiles(op, cotiles, arch)
    use_ring = use_diag and lbuf and single and ring_tiles(op, cotiles, arch)
    if use_diag:
        # window reuse: a pixel tile is min(R, OW - ow0) pixels of one output row
        pix = [(b, y * ow + o0, min(R, ow - o0)) for b in range(batch) for y in range(oh) for o0 in range(0, ow, R)]
    else:
        pix = [(b, p0, min(R, oh * ow - p0)) for b in range(batch) for p0 in range(0, oh * ow, R)]
    items: list[Item] = []
    wgroups: dict = {}
    n_rings = 0

    def akey(b, p0, co, ch):
        return (b, p0, ch.kh0, ch.kh1, ch.kw0, ch.kw1, ch.cb0, ch.cb1)

    for bgi, bg in enumerate(bgroups):
        if single:
            # weight groups: consecutive co-tiles whose weights fit one W half
            groups = _balanced_groups([cotiles[j].chunks[0].wentries for j in bg], w_half)
            groups = [[bg[i] for i in g] for g in groups]
            agroup = _a_group(op, cotiles, groups, len(pix), arch, w_half)
            for wg in groups:
                if op.kind == "max":
                    wkey = None
                elif op.kind == "gap":
                    wkey = ("ones",)
                else:
                    wkey = ("g", wg[0])
                    wgroups[wkey] = [(j, 0) for j in wg]
                offs, o = {}, 0
                for j in wg:
                    offs[j] = o if op.kind not in ("gap",) else 0
                    o += cotiles[j].chunks[0].wentries
                if agroup > 1:
                    continue
                if use_ring:
                    # line buffer: per batch item and co-tile, strips of output columns walked downwards;
                    # each strip is one ring (consecutive rings alternate between two ring regions)
                    S = ring_slots(op)
                    for b in range(batch):
                        for j in wg:
                            ch = cotiles[j].chunks[0]
                            for o0 in range(0, ow, R):
                                npix = min(R, ow - o0)
                                for y in range(oh):
                                    p0 = y * ow + o0
                                    rt = RingTile(n_rings % 2, (y * op.stride[0]) % S,
                                                  tuple((a, n, (y * op.stride[0] + a) % S)
                                                        for a, n in ring_tile_loads(op, y)))
                                    items.append(Item(b, p0, npix, j, 0, True, True, ("ring", b, p0, j), wkey,
                                                      offs[j] if wkey else 0, (j - bg[0]) * bw, bgi, ring=rt))
                                n_rings += 1
                    continue
                for (b, p0, npix) in pix:
                    for j in wg:
                        ch = cotiles[j].chunks[0]
                        items.append(Item(b, p0, npix, j, 0, True, True, akey(b, p0, j, ch), wkey,
                                          offs[j] if wkey else 0, (j - bg[0]) * bw, bgi))
            if agroup > 1:
                # A groups: one co-tile per W half (its weights stream, double-buffered) and several pixel
                # tiles per A half: each A group is loaded once and reused by every co-tile, each co-tile's
                # weights by every pixel tile of the group (loads per step 1/agroup + 1/co-tiles instead of 1)
                L = cotiles[bg[0]].chunks[0].lines
                for g0 in range(0, len(pix), agroup):
                    pg = pix[g0:g0 + agroup]
                    key = ("ag",) + tuple((b, p0) for b, p0, _n in pg)
                    for wg in groups:
                        j = wg[0]
                        for n, (b, p0, npix) in enumerate(pg):
                            items.append(Item(b, p0, npix, j, 0, True, True, key, ("g", j), 0, (j - bg[0]) * bw, bgi,
                                              n * L))
        elif _a_stationary(op, cotiles, arch):
            # K-split with the whole window in one A half: each pixel tile's window is loaded once and
            # stays resident while every co-tile's chunks stream their weights through (the chunks of a
            # (pixel tile, co-tile) pair must run back to back: one accumulator per PE)
            # Snake order: odd pixel tiles walk the co-tiles and chunks backwards, so the first chunks of a
            # pixel tile are the last ones of the previous tile, still resident in W (the emitter reuses them)
            kh, kw = op.kernel
            for n, (b, p0, npix) in enumerate(pix):
                for j in (bg if n % 2 == 0 else bg[::-1]):
                    ct = cotiles[j]
                    aoffs = [sum(ch.lines for ch in ct.chunks[:k]) for k in range(len(ct.chunks) + 1)]
                    win = Chunk(0, kh, 0, kw, ct.cb0, ct.cb1, aoffs[-1], 0)
                    ks = list(range(len(ct.chunks)))
                    if n % 2:
                        ks.reverse()
                    for k in ks:
                        ch = ct.chunks[k]
                        wkey = ("c", j, k)
                        wgroups[wkey] = [(j, k)]
                        items.append(Item(b, p0, npix, j, k, k == ks[0], k == ks[-1],
                                          (b, p0, "win", ct.cb0, ct.cb1), wkey, 0, (j - bg[0]) * bw, bgi,
                                          aoffs[k], win))
        else:
            for j in bg:
                for (b, p0, npix) in pix:
                    chs = cotiles[j].chunks
                    for k, ch in enumerate(chs):
                        if op.kind == "max":
                            wkey = None
                        elif op.kind == "gap":
                            wkey = ("ones",)
                        else:
                            wkey = ("c", j, k)
                            wgroups[wkey] = [(j, k)]
                        items.append(Item(b, p0, npix, j, k, k == 0, k == len(chs) - 1, akey(b, p0, j, ch),
                                          wkey, 0, (j - bg[0]) * bw, bgi))
    return Plan(cotiles, items, bgroups, wgroups, len(pix), use_diag, ring_slots(op) if use_ring else 0)

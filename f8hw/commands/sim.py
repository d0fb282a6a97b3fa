"""f8hw sim: compile a model, run it on an engine, check every layer bit-exact against the golden model.

    f8hw sim [MODEL] --array 16x16 --engine verilator|icarus|isa [--input FILE] [--batch N]
             [--waves FILE] [--json] [--plot util.png] [--report report.md] [--no-cache]

The default engine is the generated RTL on Verilator.  Per layer: MACs, cycles
(MARK slot differences), array utilization MACs / (R*C*cycles), bit-exact;
totals: cycles, utilization, wall time, simulated cycles/s.  With an RTL engine
the ISA simulator runs the same program too and its cycle counts (total and per
layer) must be equal.  A mismatch names the first mismatching layer, the
tensor, the first differing coordinates and both values, and exits with status 1.

Main and instruction memory of the simulated top default to the ArchConfig
sizes and grow (next power of two) when a model needs more.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO_ROOT / "models" / "default.pt"


def register(sub) -> None:
    from f8hw.engines import engine_names

    p = sub.add_parser("sim", help="compile a model, simulate it, check every layer bit-exact, report cycles")
    p.add_argument("model", nargs="?", default=None,
                   help=f"f8hw model file (default: the bundled {DEFAULT_MODEL.relative_to(REPO_ROOT)})")
    p.add_argument("--array", default="16x16", help="MAC array RxC (default: %(default)s)")
    p.add_argument("--engine", default="verilator", choices=engine_names(),
                   help="simulation engine: the RTL on verilator or icarus, or the ISA simulator (default: %(default)s)")
    p.add_argument("--waves", default=None, metavar="FILE",
                   help="RTL engines: write waveforms to FILE (.vcd for verilator, .fst or .vcd for icarus)")
    p.add_argument("--no-isa-check", action="store_true",
                   help="RTL engines: skip the cycle cross-check against the ISA simulator")
    p.add_argument("--input", default=None,
                   help="input image(s): .npy uint8 (N,C,H,W) or (C,H,W), or a PNG (default: digits test images)")
    p.add_argument("--batch", type=int, default=1, help="images per run (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (no table, no progress)")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a per-layer utilization/cycles plot")
    p.add_argument("--report", default=None, metavar="MD", help="write a markdown report")
    p.add_argument("--mem-words", type=int, default=None,
                   help="main-memory words of the sim-only top (power of two; default: the ArchConfig default, "
                        "grown to fit the model)")
    p.add_argument("--imem-depth", type=int, default=None,
                   help="instruction-memory words of the sim-only top (power of two; default: the ArchConfig default, "
                        "grown to fit the program)")
    add_compiler_options(p)
    p.add_argument("--no-cache", action="store_true", help="compile even if a cached compilation exists")
    p.add_argument("--no-race-check", action="store_true", help="isa engine: skip race detection (faster)")
    p.set_defaults(func=run)


# ------------------------------------------------------------------ helpers


def add_compiler_options(p) -> None:
    """The compiler's options on the command line (f8hw sim and f8hw compile)."""
    p.add_argument("--pack-input", action="store_true",
                   help="let the host write a narrow stem's input (e.g. 3 channels) as that layer's im2col "
                        "matrix: fewer A loads for the stem; the input itself is then not readable back")
    p.add_argument("--no-gather", action="store_true",
                   help="do not use LOAD_A tap gather for a narrow stem (on by default: C // Cin taps per A line)")
    p.add_argument("--no-diag", action="store_true",
                   help="do not use LOAD_A window reuse for depthwise layers (on by default where it is faster)")


def compiler_options(args) -> dict:
    """Keyword options of f8hw.compiler.compile_model from the command line (shared with f8hw compile)."""
    return dict(pack_input=args.pack_input, gather=not args.no_gather, diag=not args.no_diag)


def default_model_path() -> Path:
    return DEFAULT_MODEL


def cache_dir() -> Path:
    base = os.environ.get("F8HW_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "f8hw"


def _compiler_fingerprint() -> str:
    """Hash of the compiler's and the ISA's sources: a changed compiler never reuses a stale cache."""
    import f8hw

    h = hashlib.sha256(f8hw.__version__.encode())
    root = Path(f8hw.__file__).parent
    files = sorted((root / "compiler").glob("*.py")) + [root / "isa.py", root / "arch.py"]
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def compile_key(model_bytes: bytes, arch, batch: int, options: dict | None = None) -> str:
    h = hashlib.sha256()
    h.update(model_bytes)
    h.update(json.dumps(arch.to_dict(), sort_keys=True).encode())
    h.update(f"batch={batch} options={json.dumps(options or {}, sort_keys=True)}".encode())
    h.update(_compiler_fingerprint().encode())
    return h.hexdigest()[:24]


def compile_model(graph, arch, batch: int, options: dict | None = None):
    """The compiler's entry point; ``options``: keyword options of f8hw.compiler.compile_model
    (pack_input, gather, diag)."""
    from f8hw.compiler import compile_model as cm

    return cm(graph, arch, batch=batch, **(options or {}))


def compile_cached(graph, arch, batch: int, model_bytes: bytes, use_cache: bool, log=None,
                   options: dict | None = None):
    """compile_model with an on-disk cache keyed by model bytes + arch + batch + options + compiler sources."""
    key = compile_key(model_bytes, arch, batch, options)
    d = cache_dir() / "compiled" / key
    if use_cache and (d / ".complete").exists():
        try:
            from f8hw.compiler import Compiled

            comp = Compiled.load(d)
            if log:
                log(f"using cached compilation {d}")
            return comp, True
        except Exception:  # a stale/foreign cache entry: recompile
            pass
    comp = compile_model(graph, arch, batch, options)
    if use_cache and hasattr(comp, "save"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            comp.save(d)
            (d / ".complete").write_text(key)
        except Exception:  # caching is an optimization only
            pass
    return comp, False


def load_images(path: str | None, shape: tuple[int, int, int], batch: int) -> tuple[np.ndarray, str]:
    """(images uint8 (batch, C, H, W), description)."""
    if batch < 1:
        raise F8Error(f"--batch must be >= 1, got {batch}")
    if path is None:
        if tuple(shape) == (1, 8, 8):
            from f8hw import digits

            imgs = digits.load()["test"][0]
            if batch > len(imgs):
                raise F8Error(f"--batch {batch}: the digits test split has {len(imgs)} images")
            return np.ascontiguousarray(imgs[:batch]), f"digits test images 0..{batch - 1}"
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, size=(batch, *shape), dtype=np.uint8), "random images (seed 0)"
    p = Path(path)
    if not p.is_file():
        raise F8Error(f"--input {path}: no such file")
    if p.suffix.lower() == ".npy":
        try:
            x = np.load(p, allow_pickle=False)
        except Exception as e:
            raise F8Error(f"--input {path}: cannot read .npy ({e})") from None
        if x.dtype != np.uint8:
            raise F8Error(f"--input {path}: images must be uint8, got {x.dtype}")
        if x.ndim == 3:
            x = x[None]
    elif p.suffix.lower() == ".png":
        import matplotlib.image as mpimg

        try:
            img = mpimg.imread(p)
        except Exception as e:
            raise F8Error(f"--input {path}: cannot read PNG ({e})") from None
        if img.dtype != np.uint8:
            img = np.clip(np.round(np.asarray(img, np.float64) * 255), 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = img[:, :, None]
        if shape[0] == 1 and img.shape[2] in (3, 4):
            img = np.round(img[:, :, :3].astype(np.float64).mean(axis=2, keepdims=True)).astype(np.uint8)
        elif shape[0] == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        x = img.transpose(2, 0, 1)[None]
    else:
        raise F8Error(f"--input {path}: expected a .npy or .png file")
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise F8Error(f"--input {path}: images have shape {tuple(x.shape)}, the model wants (N, {', '.join(map(str, shape))})")
    if len(x) < batch:
        raise F8Error(f"--input {path}: holds {len(x)} image(s), --batch is {batch}")
    return np.ascontiguousarray(x[:batch]), f"{path} images 0..{batch - 1}"


@dataclass
class LayerReport:
    name: str
    macs: int
    cycles: int | None
    utilization: float | None
    bit_exact: bool | None        # None: the layer's outputs were overwritten (buffer reuse), not checked
    mismatch: dict | None = None
    isa_cycles: int | None = None  # RTL engines: the ISA simulator's cycles for this layer

    def to_dict(self) -> dict:
        d = dict(name=self.name, macs=self.macs, cycles=self.cycles, utilization=self.utilization,
                 bit_exact=self.bit_exact)
        if self.isa_cycles is not None:
            d["isa_cycles"] = self.isa_cycles
        if self.mismatch:
            d["mismatch"] = self.mismatch
        return d


@dataclass
class SimReport:
    model: str
    engine: str
    array: str
    batch: int
    input: str
    cycles: int
    busy: int
    stall: int
    macs: int
    utilization: float
    bit_exact: bool
    wall_time: float
    compile_time: float
    cycles_per_second: float
    cached: bool
    layers: list[LayerReport] = field(default_factory=list)
    first_mismatch: dict | None = None
    mem_words: int = 0
    imem_depth: int = 0
    isa_cycles: int | None = None   # RTL engines: the ISA simulator's total on the same program
    isa_check: str | None = None    # RTL engines: None = agrees with the ISA simulator, else what differs
    input_packing: str | None = None  # --pack-input: the stem layer whose im2col input the host wrote

    @property
    def isa_agrees(self) -> bool | None:
        return None if self.isa_cycles is None else self.isa_check is None

    @property
    def ok(self) -> bool:
        return self.bit_exact and self.isa_agrees is not False

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("model", "engine", "array", "batch", "input", "cycles", "busy", "stall",
                                            "macs", "utilization", "bit_exact", "wall_time", "compile_time",
                                            "cycles_per_second", "cached", "mem_words", "imem_depth", "isa_cycles",
                                            "isa_agrees", "isa_check", "input_packing")}
        d["layers"] = [lr.to_dict() for lr in self.layers]
        d["first_mismatch"] = self.first_mismatch
        return d


def compare_layers(compiled, memory: np.ndarray, golden: dict, batch: int):
    """[(layer, bit_exact, mismatch dict | None)] in layer order."""
    out = []
    readable = getattr(compiled, "readable", None)
    for layer in compiled.layers:
        mism = None
        refs = [r for r in layer.refs if readable is None or readable(r)]
        if not refs:
            out.append((layer, None, None))  # every output buffer was reused later: not checkable
            continue
        for ref in refs:
            exp_all = golden.get(ref)
            if exp_all is None:
                raise F8Error(f"layer {layer.name!r}: the golden model has no tensor {ref!r}")
            for b in range(batch):
                got = np.asarray(compiled.read_tensor(memory, ref, b)).astype(np.int64)
                exp = np.asarray(exp_all[b]).astype(np.int64)
                if got.shape != exp.shape:
                    mism = dict(ref=ref, batch=b, index=None, got=None, expected=None,
                                message=f"shape {got.shape} != golden {exp.shape}")
                    break
                diff = np.argwhere(got != exp)
                if len(diff):
                    idx = tuple(int(i) for i in diff[0])
                    mism = dict(ref=ref, batch=b, index=list(idx), got=int(got[idx]), expected=int(exp[idx]),
                                count=int(len(diff)), size=int(exp.size))
                    break
            if mism:
                break
        out.append((layer, mism is None, mism))
    return out


def layer_cycles(compiled, marks: dict[int, int], total_cycles: int) -> list[int | None]:
    """Cycles of each layer: from its MARK stamp to the next MARK stamp of the run (any slot: the next
    layer's, or the compiler's final one), or to the end of the run."""
    stamps = sorted(set(marks.values()))
    out = []
    for lay in compiled.layers:
        s = marks.get(getattr(lay, "mark_slot", None))
        if s is None:
            out.append(None)
            continue
        end = next((x for x in stamps if x > s), total_cycles)
        out.append(int(end - s))
    return out


# ------------------------------------------------------------------ command


RTL_ENGINES = ("verilator", "icarus")


def next_pow2(n: int) -> int:
    return 1 << max(1, (int(n) - 1).bit_length())


def compile_fitting(graph, arch, batch: int, model_bytes: bytes, use_cache: bool, grow: set[str], log=None,
                    options: dict | None = None):
    """compile_cached; when the model does not fit and ``grow`` names memories the user left at their
    defaults ("mem_words", "imem_depth"), grow those to the next power of two that fits and compile again.
    Returns (compiled, cached)."""
    from dataclasses import replace

    from f8hw.arch import ADDR_BITS
    from f8hw.compiler import CompileError

    try:
        return compile_cached(graph, arch, batch, model_bytes, use_cache, log, options)
    except CompileError:
        if not grow:
            raise
        limits = {"mem_words": 1 << ADDR_BITS, "imem_depth": 1 << 24}
        probe = compile_model(graph, replace(arch, **{k: limits[k] for k in grow}), batch, options)
        need = {"mem_words": next_pow2(len(probe.memory)), "imem_depth": next_pow2(len(probe.program) + 1)}
        bigger = replace(arch, **{k: max(getattr(arch, k), need[k]) for k in grow})
        if log:
            log("model does not fit the default memories: " +
                ", ".join(f"{k} {getattr(arch, k)} -> {getattr(bigger, k)}" for k in sorted(grow)))
        return compile_cached(graph, bigger, batch, model_bytes, use_cache, log, options)


def simulate(model_path, arch, engine_name: str, input_path, batch: int, *, use_cache=True, race_check=True,
             progress_console=None, log=None, waves: str | None = None, isa_check: bool = True,
             grow: set[str] = frozenset({"mem_words", "imem_depth"}), options: dict | None = None
             ) -> tuple[SimReport, object]:
    from f8hw import golden
    from f8hw.engines import get_engine
    from f8hw.modelfile import load_model

    model_path = Path(model_path)
    graph, _meta = load_model(model_path)
    shape = tuple(graph.input_node.attrs["shape"])
    images, desc = load_images(input_path, shape, batch)
    rtl = engine_name in RTL_ENGINES
    if waves and not rtl:
        raise F8Error(f"--waves {waves}: waveforms come from an RTL engine (verilator, icarus), not {engine_name!r}")
    t0 = time.perf_counter()
    compiled, cached = compile_fitting(graph, arch, batch, model_path.read_bytes(), use_cache, set(grow), log,
                                       options)
    arch = compiled.arch
    compile_time = time.perf_counter() - t0
    isa_res = None
    if rtl and isa_check:
        if log:
            log("running the ISA simulator for the cycle cross-check")
        isa_res = get_engine("isa", check_races=race_check).run(compiled, images)
    engine = (get_engine(engine_name, waves=waves, spinner=False if progress_console is None else None) if rtl
              else get_engine(engine_name))
    if hasattr(engine, "check_races"):
        engine.check_races = race_check
    progress_ctx = None
    if progress_console is not None and hasattr(engine, "progress"):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress_ctx = Progress(TextColumn(f"[bold]{engine_name}[/] simulating"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} instructions"), TimeElapsedColumn(),
                                console=progress_console, transient=True)
        task = progress_ctx.add_task("sim", total=len(compiled.program))
        engine.progress = lambda done, total: progress_ctx.update(task, completed=min(done, total))
    try:
        if progress_ctx is not None:
            with progress_ctx:
                res = engine.run(compiled, images)
        else:
            res = engine.run(compiled, images)
    finally:
        if hasattr(engine, "progress"):
            engine.progress = None
    gold = golden.run(graph, images)
    cmp = compare_layers(compiled, res.memory, gold, batch)
    cyc = layer_cycles(compiled, res.marks, res.cycles)
    R, C = arch.rows, arch.cols
    layers = []
    first = None
    for (layer, ok, mism), c in zip(cmp, cyc):
        macs = int(layer.macs)
        util = (macs / (R * C * c)) if c else None
        layers.append(LayerReport(layer.name, macs, c, util, ok, mism))
        if mism and first is None:
            first = dict(layer=layer.name, **mism)
    if isa_res is not None:
        isa_cyc = layer_cycles(compiled, isa_res.marks, isa_res.cycles)
        for lr, c in zip(layers, isa_cyc):
            lr.isa_cycles = c
    total_macs = sum(lr.macs for lr in layers)
    rep = SimReport(
        model=str(model_path), engine=engine_name, array=arch.array, batch=batch, input=desc,
        cycles=int(res.cycles), busy=int(res.busy), stall=int(res.stall), macs=total_macs,
        utilization=total_macs / (R * C * res.cycles) if res.cycles else 0.0,
        bit_exact=all(lr.bit_exact is not False for lr in layers), wall_time=float(res.wall_time), compile_time=compile_time,
        cycles_per_second=float(res.cycles_per_second), cached=cached, layers=layers, first_mismatch=first,
        mem_words=arch.mem_words, imem_depth=arch.imem_depth,
        input_packing=((getattr(compiled, "symbols", None) or {}).get("input_packing") or {}).get("layer"),
    )
    if isa_res is not None:
        rep.isa_cycles = int(isa_res.cycles)
        rep.isa_check = isa_agreement(res, isa_res)
    return rep, res


def isa_agreement(res, isa_res) -> str | None:
    """None when the RTL run and the ISA simulator agree on cycles, counters, MARK stamps and the whole final
    main memory; otherwise what differs first."""
    for k in ("cycles", "busy", "stall"):
        a, b = getattr(res, k), getattr(isa_res, k)
        if a != b:
            return f"{k}: RTL {a}, ISA simulator {b}"
    if res.marks != isa_res.marks:
        slot = next(s for s in sorted(set(res.marks) | set(isa_res.marks)) if res.marks.get(s) != isa_res.marks.get(s))
        return f"MARK slot {slot}: RTL cycle {res.marks.get(slot)}, ISA simulator cycle {isa_res.marks.get(slot)}"
    a, b = np.asarray(res.memory), np.asarray(isa_res.memory)
    if a.shape != b.shape:
        return f"main memory shape: RTL {a.shape}, ISA simulator {b.shape}"
    diff = np.argwhere(a != b)
    if len(diff):
        w, byte = (int(i) for i in diff[0])
        return (f"main memory word {w} byte {byte}: RTL {int(a[w, byte])}, ISA simulator {int(b[w, byte])} "
                f"({len(diff)} bytes differ)")
    return None


def mismatch_text(m: dict) -> str:
    if m.get("index") is None:
        return f"layer {m['layer']!r}, tensor {m['ref']!r}, batch item {m['batch']}: {m.get('message')}"
    return (f"layer {m['layer']!r}, tensor {m['ref']!r}, batch item {m['batch']}, first difference at "
            f"{tuple(m['index'])}: simulated {m['got']}, golden {m['expected']} "
            f"({m['count']} of {m['size']} values differ)")


def _fmt_exact(ok, rich=False):
    if ok is None:
        return "n/a"
    if rich:
        return "[green]yes[/]" if ok else "[red]NO[/]"
    return "yes" if ok else "NO"


def _fmt_int(v):
    return "-" if v is None else f"{v:,}"


def _fmt_util(u):
    return "-" if u is None else f"{100 * u:.1f}%"


def markdown_report(rep: SimReport) -> str:
    lines = [
        f"# f8hw sim: {Path(rep.model).name} on {rep.array} ({rep.engine})", "",
        f"- input: {rep.input} (batch {rep.batch})",
        f"- cycles: {rep.cycles} (busy {rep.busy}, stall {rep.stall})",
        f"- MACs: {rep.macs}, array utilization {_fmt_util(rep.utilization)}",
        f"- bit-exact: {'yes' if rep.bit_exact else 'NO'}",
        *([f"- ISA simulator: {rep.isa_cycles} cycles, "
           f"{'equal (cycles, counters, MARK stamps, final memory)' if rep.isa_agrees else 'DIFFERS: ' + str(rep.isa_check)}"]
          if rep.isa_cycles is not None else []),
        f"- memories: {rep.mem_words} main-memory words, {rep.imem_depth} instruction words",
        *([f"- input packed by the host as the im2col matrix of {rep.input_packing} (--pack-input)"]
          if rep.input_packing else []),
        f"- wall time {rep.wall_time:.3f} s, {rep.cycles_per_second:,.0f} simulated cycles/s", "",
    ]
    isa = rep.isa_cycles is not None
    lines += ["| layer | MACs | cycles |" + (" ISA cycles |" if isa else "") + " utilization | bit-exact |",
              "|---|---:|---:|" + ("---:|" if isa else "") + "---:|---|"]
    for lr in rep.layers:
        lines.append(f"| {lr.name} | {lr.macs} | {_fmt_int(lr.cycles)} |" + (f" {_fmt_int(lr.isa_cycles)} |" if isa else "")
                     + f" {_fmt_util(lr.utilization)} | {_fmt_exact(lr.bit_exact)} |")
    lines.append(f"| **total** | {rep.macs} | {rep.cycles} |" + (f" {rep.isa_cycles} |" if isa else "")
                 + f" {_fmt_util(rep.utilization)} | {'yes' if rep.bit_exact else 'NO'} |")
    if rep.first_mismatch:
        lines += ["", f"First mismatch: {mismatch_text(rep.first_mismatch)}"]
    return "\n".join(lines) + "\n"


def write_plot(rep: SimReport, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [lr.name for lr in rep.layers]
    util = [100 * (lr.utilization or 0) for lr in rep.layers]
    cyc = [lr.cycles or 0 for lr in rep.layers]
    x = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6, 0.4 * len(names) + 2), 6), sharex=True)
    a1.bar(x, util, color=["tab:red" if lr.bit_exact is False else "tab:green" for lr in rep.layers])
    a1.axhline(100 * rep.utilization, color="k", ls="--", lw=1, label=f"overall {100 * rep.utilization:.1f}%")
    a1.set_ylabel("array utilization (%)")
    a1.set_ylim(0, 105)
    a1.legend(loc="lower right")
    a1.set_title(f"{Path(rep.model).name} on {rep.array} ({rep.engine}): {rep.cycles} cycles")
    a2.bar(x, cyc, color="tab:blue")
    a2.set_ylabel("cycles")
    a2.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(rep: SimReport, console) -> None:
    from rich.table import Table

    t = Table(title=f"{Path(rep.model).name} on {rep.array} ({rep.engine}), {rep.input}")
    isa = rep.isa_cycles is not None
    cols = [("layer", "left"), ("MACs", "right"), ("cycles", "right")] + ([("ISA cycles", "right")] if isa else []) \
        + [("util", "right"), ("bit-exact", "center")]
    for col, just in cols:
        t.add_column(col, justify=just)

    def isa_cell(got, want):
        if not isa:
            return []
        return [_fmt_int(want) if got == want else f"[red]{_fmt_int(want)}[/]"]

    for lr in rep.layers:
        t.add_row(lr.name, f"{lr.macs:,}", _fmt_int(lr.cycles), *isa_cell(lr.cycles, lr.isa_cycles),
                  _fmt_util(lr.utilization), _fmt_exact(lr.bit_exact, rich=True))
    t.add_section()
    t.add_row("[bold]total[/]", f"{rep.macs:,}", f"{rep.cycles:,}", *isa_cell(rep.cycles, rep.isa_cycles),
              _fmt_util(rep.utilization), "[green]yes[/]" if rep.bit_exact else "[red]NO[/]")
    console.print(t)
    if isa:
        console.print("RTL vs ISA simulator: " + ("[green]equal[/] (cycles, counters, MARK stamps, final memory)"
                                                  if rep.isa_agrees else f"[red]DIFFERENT[/]: {rep.isa_check}"))
    console.print(f"cycles {rep.cycles:,} (busy {rep.busy:,}, stall {rep.stall:,}), utilization "
                  f"{_fmt_util(rep.utilization)}, sim wall time {rep.wall_time:.3f} s "
                  f"({rep.cycles_per_second:,.0f} cycles/s), compile {rep.compile_time:.2f} s"
                  f"{' (cached)' if rep.cached else ''}"
                  + (f"; input packed by the host for {rep.input_packing}" if rep.input_packing else ""))


def run(args) -> int:
    from rich.console import Console

    from f8hw.arch import ArchConfig, parse_array

    rows, cols = parse_array(args.array)
    extra = {k: v for k, v in (("mem_words", args.mem_words), ("imem_depth", args.imem_depth)) if v is not None}
    arch = ArchConfig(rows=rows, cols=cols, **extra)
    model = Path(args.model) if args.model else default_model_path()
    if args.model is None and not model.is_file():
        raise F8Error(f"no model given and the bundled model {model} does not exist (train it: f8hw train)")
    err = Console(stderr=True)
    quiet = args.json
    grow = {k for k in ("mem_words", "imem_depth") if k not in extra}
    rep, _res = simulate(model, arch, args.engine, args.input, args.batch, use_cache=not args.no_cache,
                         race_check=not args.no_race_check, progress_console=None if quiet else err,
                         log=None if quiet else (lambda s: err.print(f"[dim]{s}[/]")),
                         waves=args.waves, isa_check=not args.no_isa_check, grow=grow, options=compiler_options(args))
    if args.plot:
        write_plot(rep, args.plot)
    if args.report:
        Path(args.report).write_text(markdown_report(rep))
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        out = Console()
        print_table(rep, out)
        if args.plot:
            out.print(f"wrote {args.plot}")
        if args.report:
            out.print(f"wrote {args.report}")
        if args.waves:
            out.print(f"wrote {args.waves}")
    status = 0
    if not rep.bit_exact:
        print(f"MISMATCH: {mismatch_text(rep.first_mismatch)}", file=sys.stderr)
        status = 1
    if rep.isa_agrees is False:
        print(f"RTL AND ISA SIMULATOR DIFFER: {rep.isa_check}", file=sys.stderr)
        status = 1
    return status

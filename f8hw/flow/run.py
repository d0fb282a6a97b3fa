"""Running a compiled program on an engine and checking it: every layer against the golden model,
and (RTL engines) cycles, counters, MARK stamps and final memory against the ISA simulator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from f8hw.engines import ENGINES as _ENGINE_MODULES
from f8hw.errors import F8Error

__all__ = ["Run", "LayerResult", "simulate", "compare_layers", "layer_cycles", "isa_agreement", "RTL_ENGINES",
           "ENGINES"]

ENGINES = tuple(_ENGINE_MODULES)
"""Engine names, from the registry in f8hw.engines."""
RTL_ENGINES = tuple(n for n in ENGINES if n != "isa")
"""The engines that run the generated RTL (and are cross-checked against the ISA simulator)."""


@dataclass
class LayerResult:
    """One layer of a run: MACs, cycles (MARK to next MARK), utilization, bit-exactness."""

    name: str
    macs: int
    cycles: int | None
    utilization: float | None
    bit_exact: bool | None        # None: the layer's outputs were overwritten (buffer reuse), not checked
    mismatch: dict | None = None
    isa_cycles: int | None = None  # RTL engines: the ISA simulator's cycles for this layer

    def to_dict(self) -> dict:
        """Plain data (what the run's JSON lists per layer)."""
        d = dict(name=self.name, macs=self.macs, cycles=self.cycles, utilization=self.utilization,
                 bit_exact=self.bit_exact)
        if self.isa_cycles is not None:
            d["isa_cycles"] = self.isa_cycles
        if self.mismatch:
            d["mismatch"] = self.mismatch
        return d


TIMING_FIELDS = ("wall_time", "compile_time", "cycles_per_second", "cached")


@dataclass
class Run:
    """The result of ``f8hw.simulate``: totals, per-layer results, logits and predictions per image.

    ``ok``: bit-exact against the golden model and (RTL engines) equal to the ISA simulator."""

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
    layers: list[LayerResult] = field(default_factory=list)
    first_mismatch: dict | None = None
    mem_words: int = 0
    imem_depth: int = 0
    isa_cycles: int | None = None   # RTL engines: the ISA simulator's total on the same program
    isa_check: str | None = None    # RTL engines: None = agrees with the ISA simulator, else what differs
    input_packing: str | None = None  # pack_input: the stem layer whose im2col input the host wrote
    logits: list[list[int]] = field(default_factory=list)   # per image: the simulated output tensor, flattened
    predictions: list[int] = field(default_factory=list)    # per image: argmax of the logits
    output_fl: int | None = None    # fractional length of the logits
    programs: list[dict] = field(default_factory=list)  # a batch run in chunks: each program's batch and cycles
    engine_result: object = field(default=None, repr=False, compare=False)  # the engine's raw result

    @property
    def isa_agrees(self) -> bool | None:
        """RTL engines: whether the RTL equals the ISA simulator; None when it was not run."""
        return None if self.isa_cycles is None else self.isa_check is None

    @property
    def ok(self) -> bool:
        """Bit-exact, and equal to the ISA simulator where it ran."""
        return self.bit_exact and self.isa_agrees is not False

    def to_dict(self, timing: bool = True) -> dict:
        """Plain data; ``timing=False`` leaves out what differs between two identical runs (wall times, cache)."""
        keys = ("model", "engine", "array", "batch", "input", "cycles", "busy", "stall", "macs", "utilization",
                "bit_exact", *TIMING_FIELDS, "mem_words", "imem_depth", "isa_cycles", "isa_agrees", "isa_check",
                "input_packing", "output_fl")
        d = {k: getattr(self, k) for k in keys if timing or k not in TIMING_FIELDS}
        d["layers"] = [lr.to_dict() for lr in self.layers]
        d["first_mismatch"] = self.first_mismatch
        d["logits"] = self.logits
        d["predictions"] = self.predictions
        if self.programs:
            d["programs"] = self.programs
        return d

    def to_json(self, timing: bool = True) -> str:
        """``to_dict`` as JSON text (what ``f8hw sim --json`` prints)."""
        return json.dumps(self.to_dict(timing), indent=2)

    def __repr__(self) -> str:
        isa = "" if self.isa_agrees is None else (", = ISA simulator" if self.isa_agrees else ", DIFFERS from ISA")
        return (f"Run({self.model} on {self.array} ({self.engine}), batch {self.batch}: {self.cycles:,} cycles, "
                f"utilization {100 * self.utilization:.1f}%, bit-exact {'yes' if self.bit_exact else 'NO'}{isa}, "
                f"predictions {self.predictions})")

    def _repr_html_(self) -> str:
        from f8hw.flow.report import html_table

        return html_table(self)


def compare_layers(compiled, memory: np.ndarray, golden: dict, batch: int):
    """[(layer, bit_exact, mismatch dict | None)] in layer order; bit_exact None where no output is intact."""
    out = []
    for layer in compiled.layers:
        mism = None
        refs = [r for r in layer.refs if compiled.readable(r)]
        if not refs:
            out.append((layer, None, None))
            continue
        for ref in refs:
            exp_all = golden.get(ref)
            if exp_all is None:
                raise F8Error(f"layer {layer.name!r}: the golden model has no tensor {ref!r}")
            for b in range(batch):
                mism = _first_difference(np.asarray(compiled.read_tensor(memory, ref, b)), np.asarray(exp_all[b]))
                if mism:
                    mism = dict(ref=ref, batch=b, **mism)
                    break
            if mism:
                break
        out.append((layer, mism is None, mism))
    return out


def _first_difference(got: np.ndarray, exp: np.ndarray) -> dict | None:
    got, exp = got.astype(np.int64), exp.astype(np.int64)
    if got.shape != exp.shape:
        return dict(index=None, got=None, expected=None, message=f"shape {got.shape} != golden {exp.shape}")
    diff = np.argwhere(got != exp)
    if not len(diff):
        return None
    idx = tuple(int(i) for i in diff[0])
    return dict(index=list(idx), got=int(got[idx]), expected=int(exp[idx]), count=int(len(diff)), size=int(exp.size))


def layer_cycles(compiled, marks: dict[int, int], total_cycles: int) -> list[int | None]:
    """Cycles of each layer: from its MARK stamp to the next MARK stamp of the run (any slot: the next
    layer's, or the compiler's final one), or to the end of the run."""
    stamps = sorted(set(marks.values()))
    out = []
    for lay in compiled.layers:
        s = marks.get(lay.mark_slot)
        if s is None:
            out.append(None)
            continue
        out.append(int(next((x for x in stamps if x > s), total_cycles) - s))
    return out


def isa_agreement(res, isa_res) -> str | None:
    """None when an RTL run and the ISA simulator agree on cycles, counters, MARK stamps and the whole final
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


def _engine(name: str, waves, race_check: bool, progress):
    from f8hw.engines import get_engine

    if name not in ENGINES:
        raise F8Error(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    if waves and name not in RTL_ENGINES:
        raise F8Error(f"waves {waves}: waveforms come from an RTL engine (verilator, icarus), not {name!r}")
    if name in RTL_ENGINES:
        return get_engine(name, waves=waves, spinner=None if progress else False)
    return get_engine(name, check_races=race_check, progress=progress if callable(progress) else None)


def simulate(program, images=None, engine: str = "isa", *, arch=None, isa_check: bool = True,
             race_check: bool = True, waves=None, progress=None, log=None) -> Run:
    """Run ``program`` (an ``f8hw.compile`` result, or anything ``f8hw.load`` takes: it is then compiled for
    ``arch`` with the batch of ``images``) on ``engine`` ("isa", "verilator", "icarus") and check it.

    ``images``: None (the program's batch of default images: digits test images for 1x8x8 models, else
    random), a uint8 array (N, C, H, W) or (C, H, W), a .npy/.png path or a list of paths.
    ``isa_check`` (RTL engines): also run the ISA simulator and require equal cycles, counters, MARK stamps
    and final memory.  ``progress(done, total)``: called as instructions complete (ISA engine) or enables the
    build/run status (RTL engines).  ``log(message)``: progress messages."""
    from f8hw import golden
    from f8hw.flow.images import resolve_images
    from f8hw.flow.program import Program, compile

    if not isinstance(program, Program):
        from f8hw.flow.model import load

        model = load(program)
        imgs, desc = resolve_images(images, model.input_shape, None)
        program = compile(model, arch, batch=len(imgs), log=log)
    else:
        if arch is not None:
            raise F8Error("arch: a compiled Program already has its configuration (f8hw.compile(model, arch))")
        imgs, desc = resolve_images(images, program.model.input_shape, program.batch)
        if len(imgs) != program.batch:
            raise F8Error(f"images: {len(imgs)} given, the program was compiled for batch {program.batch}")
    compiled, graph = program.compiled, program.model.graph
    if engine in RTL_ENGINES:
        from f8hw.arch import require_rtl

        require_rtl(compiled.arch, f"engine {engine!r}")
    eng = _engine(engine, waves, race_check, progress)
    isa_res = None
    if engine in RTL_ENGINES and isa_check:
        if log:
            log("running the ISA simulator for the cycle cross-check")
        isa_res = _engine("isa", None, race_check, None).run(compiled, imgs)
    res = eng.run(compiled, imgs)
    gold = golden.run(graph, imgs)
    return _report(program, engine, desc, imgs, res, isa_res, gold)


def _report(program, engine: str, desc: str, imgs, res, isa_res, gold) -> Run:
    compiled = program.compiled
    arch = compiled.arch
    R, C = arch.rows, arch.cols
    layers, first = [], None
    cyc = layer_cycles(compiled, res.marks, res.cycles)
    for (layer, ok, mism), c in zip(compare_layers(compiled, res.memory, gold, len(imgs)), cyc):
        macs = int(layer.macs)
        layers.append(LayerResult(layer.name, macs, c, (macs / (R * C * c)) if c else None, ok, mism))
        if mism and first is None:
            first = dict(layer=layer.name, **mism)
    if isa_res is not None:
        for lr, c in zip(layers, layer_cycles(compiled, isa_res.marks, isa_res.cycles)):
            lr.isa_cycles = c
    out_ref = compiled.output_ref
    logits = [np.asarray(compiled.read_tensor(res.memory, out_ref, b)).reshape(-1).astype(int).tolist()
              for b in range(len(imgs))]
    macs = sum(lr.macs for lr in layers)
    run = Run(
        model=program.model.name, engine=engine, array=arch.array, batch=len(imgs), input=desc,
        cycles=int(res.cycles), busy=int(res.busy), stall=int(res.stall), macs=macs,
        utilization=macs / (R * C * res.cycles) if res.cycles else 0.0,
        bit_exact=all(lr.bit_exact is not False for lr in layers), wall_time=float(res.wall_time),
        compile_time=program.compile_time, cycles_per_second=float(res.cycles_per_second), cached=program.cached,
        layers=layers, first_mismatch=first, mem_words=arch.mem_words, imem_depth=arch.imem_depth,
        input_packing=(compiled.symbols.get("input_packing") or {}).get("layer"),
        logits=logits, predictions=[int(np.argmax(v)) for v in logits],
        output_fl=program.model.graph.format(out_ref).fl, engine_result=res)
    if isa_res is not None:
        run.isa_cycles = int(isa_res.cycles)
        run.isa_check = isa_agreement(res, isa_res)
    return run

"""Accelerator-level helpers: random single-layer graphs, RTL vs golden vs ISA-simulator checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f8hw import golden, isa, rtlsim, testing
from f8hw.arch import ArchConfig
from f8hw.ir import Graph, Node
from f8hw.numerics import TensorFormat

# The small-array configurations of the suite: one build per (simulator, size).
# Main memory and instruction memory are smaller than the defaults (faster
# load/dump in the simulators); scratchpads keep their default depths.
SMALL_MEM_WORDS = 1 << 16
SMALL_IMEM = 1 << 14


def small_arch(size: str) -> ArchConfig:
    r, c = map(int, size.split("x"))
    return ArchConfig(rows=r, cols=c, mem_words=SMALL_MEM_WORDS, imem_depth=SMALL_IMEM)


def random_single_layer(rng: np.random.Generator, kind: str, cols: int) -> Graph:
    """One layer reading the uint8 input image: conv (dense/strided/padded/grouped/depthwise),
    residual (conv + conv with skip), maxpool, global average pool, linear (8-bit or raw int32)."""
    img = TensorFormat(8, False)
    c0 = int(rng.integers(1, 2 * cols + 2))
    h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    nodes = [Node("input", "input", [], {"shape": [c0, h, w]}, [img])]
    if kind in ("conv", "dw", "residual"):
        k = int(rng.integers(1, 4))
        k = min(k, h, w)
        s = int(rng.integers(1, 3))
        p = int(rng.integers(0, k // 2 + 1))
        if kind == "dw":
            cout, groups = c0, c0
        else:
            g = int(rng.choice([1, 1, 1, 2])) if c0 % 2 == 0 else 1
            cout = g * int(rng.integers(1, cols + 2))
            groups = g
        nodes.append(testing.conv_node(rng, "layer", "input", img, c0, cout, (k, k), (s, s), (p, p), groups))
        if kind == "residual":
            x_fmt = nodes[-1].outputs[0]
            skip_fmt = nodes[-1].outputs[-1]
            skip_ref = "layer:1" if len(nodes[-1].outputs) > 1 else "layer"
            nodes.append(testing.conv_node(rng, "res", "layer", x_fmt, cout, cout, (3, 3), (1, 1), (1, 1),
                                           skip=skip_ref, skip_fmt=skip_fmt))
        out = nodes[-1].name
    elif kind == "maxpool":
        k = int(rng.integers(2, 4))
        k = min(k, h, w)
        nodes.append(Node("layer", "maxpool", ["input"], dict(kernel=[k, k], stride=[int(rng.integers(1, 3))] * 2,
                                                               padding=[int(rng.integers(0, k // 2 + 1))] * 2), [img]))
        out = "layer"
    elif kind == "gap":
        shift = int(rng.integers(0, 7))
        nodes.append(Node("layer", "avgpool_global", ["input"], {"shift": shift},
                          testing.random_outputs(rng, 8 + shift, 1)))
        out = "layer"
    elif kind in ("linear", "linear_raw"):
        nodes.append(Node("flat", "flatten", ["input"], {}, [img]))
        fin, fout = c0 * h * w, int(rng.integers(1, 2 * cols + 2))
        w_fl = int(rng.integers(0, 8))
        fl_a = 8 + w_fl
        outs = [TensorFormat(fl_a, True, 32)] if kind == "linear_raw" else testing.random_outputs(rng, fl_a)
        nodes.append(Node("layer", "linear", ["flat"], dict(in_features=fin, out_features=fout, w_fl=w_fl), outs,
                          testing.random_weight(rng, (fout, fin)), testing.random_bias(rng, fout, fl_a)))
        out = "layer"
    else:
        raise ValueError(kind)
    return Graph(nodes, out).validate()


LAYER_KINDS = ("conv", "dw", "residual", "maxpool", "gap", "linear", "linear_raw")


@dataclass
class Mismatch:
    layer: str
    ref: str
    index: tuple
    got: int
    expected: int
    count: int

    def __str__(self):
        return (f"first mismatching layer {self.layer!r}, tensor {self.ref!r}: element {self.index} "
                f"got {self.got} != golden {self.expected} ({self.count} elements differ)")


def first_mismatch(compiled, memory: np.ndarray, gold: dict, batch: int = 1) -> Mismatch | None:
    """Compare every layer's readable output tensor with the golden model, in layer order."""
    for layer in compiled.layers:
        for ref in layer.refs:
            if not compiled.readable(ref) or ref not in gold:
                continue
            for b in range(batch):
                got = compiled.read_tensor(memory, ref, b)
                exp = np.asarray(gold[ref][b])
                if got.shape != exp.shape or not np.array_equal(got, exp):
                    if got.shape != exp.shape:
                        return Mismatch(layer.name, ref, ("shape",), got.shape, exp.shape, -1)
                    diff = np.argwhere(got != exp)
                    idx = tuple(int(i) for i in diff[0])
                    return Mismatch(layer.name, ref, (b, *idx), int(got[idx]), int(exp[idx]), len(diff))
    return None


def checked_refs(compiled, gold) -> int:
    return sum(1 for layer in compiled.layers for ref in layer.refs if compiled.readable(ref) and ref in gold)


def _compare(comp, res, ref, gold, batch) -> list[str]:
    problems = []
    if res.error:
        problems.append(f"the RTL stopped with error code {res.error_code} "
                        f"({isa.error_label(res.error_code)}) at cycle {res.cycles}; "
                        f"the ISA simulator ran the program to END at cycle {ref.cycles}")
    mm = first_mismatch(comp, res.memory, gold, batch)
    if mm is not None:
        isa_mm = first_mismatch(comp, ref.memory, gold, batch)
        note = ("the ISA simulator matches the golden model" if isa_mm is None else
                f"the ISA simulator mismatches too ({isa_mm.layer!r} {isa_mm.index}: {isa_mm.got}): "
                "a compiler or golden-model problem, not only the RTL")
        problems.append(f"{mm}; {note}")
    if (res.cycles, res.busy, res.stall) != (ref.cycles, ref.busy, ref.stall):
        problems.append(f"counters (cycles, busy, stall): RTL {(res.cycles, res.busy, res.stall)} != "
                        f"ISA simulator {(ref.cycles, ref.busy, ref.stall)}")
    if res.marks != dict(ref.marks):
        bad = sorted(s for s in set(res.marks) | set(ref.marks) if res.marks.get(s) != ref.marks.get(s))
        s = bad[0]
        problems.append(f"MARK slot {s}: RTL {res.marks.get(s)} != ISA simulator {ref.marks.get(s)} "
                        f"({len(bad)} slots differ)")
    n = len(res.memory)
    if not np.array_equal(res.memory, ref.memory[:n]):
        diff = np.argwhere(res.memory != ref.memory[:n])
        w, b = (int(x) for x in diff[0])
        problems.append(f"main memory differs from the ISA simulator's at word {w} byte {b}: RTL "
                        f"{res.memory[w, b]} != {ref.memory[w, b]} ({len(diff)} bytes differ)")
    return problems


def run_and_check(graph: Graph, arch: ArchConfig, simulator: str, images: np.ndarray, workdir: Path,
                  what: str = "") -> dict:
    """Compile, run on the ISA simulator and the RTL; assert tensors == golden, memory and counters == ISA sim.

    On a failure the RTL is re-run with waveforms (path in the message).
    """
    from f8hw import isasim
    from f8hw.compiler import compile_model
    from f8hw.engines import prepare_memory

    batch = len(images)
    comp = compile_model(graph, arch, batch=batch)
    mem = prepare_memory(comp, images)
    gold = golden.run(graph, images)
    ref = isasim.run(comp.program, mem, arch)
    budget = ref.cycles * 2 + 10_000
    problems = []
    try:
        res = rtlsim.simulate(arch, comp.program, mem, simulator, max_cycles=budget, raise_on_error=False)
    except rtlsim.WatchdogError as e:
        res = None
        problems.append(f"{e} (the ISA simulator finishes in {ref.cycles} cycles)")
    if res is not None:
        problems += _compare(comp, res, ref, gold, batch)
    if problems:
        wave = Path(workdir) / ("fail.vcd" if simulator == "verilator" else "fail.fst")
        try:
            try:
                rtlsim.simulate(arch, comp.program, mem, simulator, max_cycles=budget, waves=wave,
                                workdir=Path(workdir) / "waves_run", raise_on_error=False)
            except rtlsim.WatchdogError:
                pass  # the waveform of a hung run is written up to the budget
            where = f"waveform: {wave}"
        except Exception as e:  # noqa: BLE001
            where = f"(waveform run failed: {e})"
        listing = Path(workdir) / "program.s"
        listing.write_text(comp.listing)
        raise AssertionError(f"{what} on {simulator} {arch.array}: " + "; ".join(problems)
                             + f"; {where}; listing: {listing}")
    assert res is not None
    return dict(cycles=res.cycles, sim_cycles=res.sim_cycles, wall=res.wall_time, total=res.total_time,
                cps=res.cycles_per_second, checked=checked_refs(comp, gold), build=res.build)


FLEX_FORMATS = ("int8", "e2m5", "e3m4", "e4m3")
FLEX_KINDS = ("int", "e2m5", "e3m4", "e4m3")   # TensorFormat kinds of FLEX_FORMATS
MIXED_KINDS = ("conv", "depthwise", "linear", "residual", "pools", "bias64")


def flex_arch(size: str) -> ArchConfig:
    """small_arch(size) with the flexible format set."""
    r, c = map(int, size.split("x"))
    return ArchConfig(rows=r, cols=c, mem_words=SMALL_MEM_WORDS, imem_depth=SMALL_IMEM, formats=FLEX_FORMATS)


def _x_format(rng, kind: str) -> TensorFormat:
    if kind == "int":
        return TensorFormat(int(rng.integers(3, 7)), bool(rng.integers(2)))
    return TensorFormat(int(rng.integers(0, 8)), bool(rng.integers(2)), 8, kind)


def _out_formats(rng) -> list[TensorFormat]:
    """An INT8 output and an FP8 one (ReLU or signed): both lanes, a second drain of the same tile."""
    return [TensorFormat(int(rng.integers(2, 7)), bool(rng.integers(2))),
            TensorFormat(int(rng.integers(0, 6)), bool(rng.integers(2)), 8, FLEX_KINDS[1 + int(rng.integers(3))])]


def random_mixed_layer(rng: np.random.Generator, kind: str) -> Graph:
    """A mixed-format layer after an INT8 "pre" conv (f8hw.testing.mixed_layer_graph): random activation,
    weight (and residual) formats; "pools": FP8 maxpool, GAP and 64-bit raw logits; "bias64": a bias
    beyond int32 into a 64-bit raw output."""
    x_fmt = _x_format(rng, FLEX_KINDS[int(rng.integers(4))])
    w_kind = FLEX_KINDS[int(rng.integers(4))]
    if kind in ("conv", "depthwise", "linear"):
        return testing.mixed_layer_graph(rng, kind, x_fmt, w_kind, _out_formats(rng), channels=int(rng.integers(2, 6)),
                                         size=4)
    if kind == "residual":
        skip = _x_format(rng, FLEX_KINDS[int(rng.integers(4))])
        return testing.mixed_layer_graph(rng, ["conv", "depthwise"][int(rng.integers(2))], x_fmt, w_kind,
                                         _out_formats(rng), skip_fmt=skip, channels=3, size=4)
    if kind == "pools":
        g = testing.mixed_layer_graph(rng, "conv", TensorFormat(5, True), w_kind, [x_fmt], channels=5, size=5)
        gap_out = TensorFormat(4, True, 8, "e2m5")
        g.nodes += [Node("pool", "maxpool", ["layer"], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1]), [x_fmt]),
                    Node("gap", "avgpool_global", ["pool"], {"shift": 2}, [gap_out]),
                    Node("flat", "flatten", ["gap"], {}, [gap_out])]
        fc = testing.float_layer("fc", "linear", ["flat"], gap_out, rng.normal(0, 1, (3, 5)), [0.1, -0.2, 0.3],
                                 "e4m3", [])
        fc.outputs = [TensorFormat(gap_out.unit + TensorFormat(fc.attrs["w_fl"], True, 8, "e4m3").unit, True, 64)]
        g.nodes.append(fc)
        g.output = "fc"
        return g.validate()
    if kind == "bias64":
        g = testing.mixed_layer_graph(rng, "conv", TensorFormat(2, False, 8, "e3m4"), "e4m3", [TensorFormat(0, True)],
                                      channels=int(rng.integers(2, 8)), size=3)
        layer = g.node("layer")
        unit = g.format("pre").unit + TensorFormat(layer.attrs["w_fl"], True, 8, "e4m3").unit
        layer.outputs = [TensorFormat(unit, True, 64)]
        layer.bias = rng.integers(-(1 << 40), 1 << 40, size=layer.bias.shape).astype(np.int64)
        return g.validate()
    raise ValueError(kind)

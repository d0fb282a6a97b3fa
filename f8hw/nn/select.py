"""Automatic per-layer 8-bit format choice (flexible 8-bit formats, docs/ir.md).

For every layer's input activation and weight, each candidate format is
quantized at its best scale (grid search on fl) and scored by a relative MSE
times an optional per-format hardware cost.  criterion "output" (default)
measures the error where it matters, on the layer's output: relative MSE of
op(Q(x), Q(w)) against op(x, w) on calibration inputs, for every pair of an
input and a weight format.  A tensor whose own error is small can still ruin
the output: a few outlier channels set an INT8 grid that rounds the other
channels, which the weights may weigh heavily, to nothing (the ``outlier``
bundled model).  criterion "tensor" scores each tensor alone,
mean((Q(x) - x)**2) / mean(x**2).  Layers sharing a clipping group
(siblings, identity residuals) must read one activation format, so their
inputs are chosen together (summed scores).  The image input is always u8.  A user override
wins: ``{"conv1": "e4m3"}`` sets both tensors, ``"conv1:input"`` /
``"conv1:weight"`` one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from f8hw.errors import F8Error
from f8hw.nn.calibrate import _subsample, reestimate_bn, run_hooked
from f8hw.nn.fp8quant import FORMAT_NAMES, format_kind
from f8hw.nn.graph import set_quantized
from f8hw.nn.layers import QConv2d
from f8hw.numerics import TensorFormat, dequantize_format, fl_grid_search, quantize_format

TENSORS = ("input", "weight")
CRITERIA = ("output", "tensor")
OUTPUT_IMAGES = 16
"""Images of the first calibration batch on which the output criterion runs each layer."""


@dataclass(frozen=True)
class Candidate:
    """One format's calibration result on one tensor."""

    format: str
    fl: int
    rel_mse: float
    cost: float

    @property
    def score(self) -> float:
        return self.rel_mse * self.cost


@dataclass(frozen=True)
class TensorChoice:
    """The candidates of one layer tensor ("input" or "weight") and the format chosen."""

    layer: str
    tensor: str
    candidates: tuple[Candidate, ...]
    choice: str
    reason: str  # "best", "group" (chosen with its clipping group), "override" or "image input"


@dataclass(frozen=True)
class FormatReport:
    """Result of select_formats: one TensorChoice per layer input and weight."""

    candidates: tuple[str, ...]
    choices: tuple[TensorChoice, ...]
    criterion: str = "output"

    def formats(self) -> dict[str, tuple[str, str]]:
        """layer name -> (input format, weight format)."""
        got: dict[str, dict[str, str]] = {}
        for c in self.choices:
            got.setdefault(c.layer, {})[c.tensor] = c.choice
        return {k: (v["input"], v["weight"]) for k, v in got.items()}

    def table(self) -> str:
        """Plain-text table: relative MSE of every candidate (x cost if not 1), the choice and why.

        With the output criterion an input candidate's error is the layer output's with the best weight
        format for it, a weight candidate's the output's with the chosen input format."""
        names = list(self.candidates)
        head = ["layer", "tensor", *names, "choice", "reason"]
        rows = [head]
        for c in self.choices:
            errs = {k.format: f"{k.rel_mse:.2e}" + (f" x{k.cost:g}" if k.cost != 1 else "") for k in c.candidates}
            rows.append([c.layer, c.tensor, *(errs.get(n, "-") for n in names), c.choice, c.reason])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)

    __str__ = table


def _quantized(values: np.ndarray, signed: bool, name: str) -> tuple[int, np.ndarray]:
    """(best fl by grid search, the values quantized there and decoded)."""
    kind = format_kind(name)
    fl = fl_grid_search(values.reshape(-1), signed, kind)
    fmt = TensorFormat(fl, signed, 8, kind)
    return fl, dequantize_format(quantize_format(values, fmt), fmt)


def _rel_mse(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean((approx - exact) ** 2)) / (float(np.mean(exact**2)) or 1.0)


def _tensor_candidates(values: np.ndarray, signed: bool, names, cost: dict) -> tuple[Candidate, ...]:
    out = []
    for name in names:
        fl, q = _quantized(values, signed, name)
        out.append(Candidate(name, fl, _rel_mse(q, values), float(cost.get(name, 1.0))))
    return tuple(out)


def _layer_op(m, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The layer's float operation (no bias) on float64 arrays."""
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    if isinstance(m, QConv2d):
        c = m.conv
        return F.conv2d(xt, wt, None, c.stride, c.padding, c.dilation, c.groups).numpy()
    return F.linear(xt, wt).numpy()


def _output_errors(m, x: np.ndarray, w: np.ndarray, names) -> tuple[dict, dict, np.ndarray]:
    """(input fl per format, weight fl per format, err[i, j]: relative output MSE for input format i, weight j).

    The image input is exact in its u8 format: one row, the input unquantized."""
    exact = _layer_op(m, x, w)
    xq = {} if m.act.image_input else {n: _quantized(x, m.act.signed, n) for n in names}
    wq = {n: _quantized(w, True, n) for n in names}
    rows = [v[1] for v in xq.values()] or [x]
    err = np.array([[_rel_mse(_layer_op(m, a, wq[b][1]), exact) for b in names] for a in rows])
    return {n: v[0] for n, v in xq.items()}, {n: v[0] for n, v in wq.items()}, err


def _float_weight(m) -> np.ndarray:
    """The BN-folded float weight of a layer (eval statistics)."""
    if isinstance(m, QConv2d):
        scale = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
        return (scale[:, None, None, None] * m.conv.weight).detach().double().numpy()
    return m.linear.weight.detach().double().numpy()


def _overrides(override: dict, layers: dict) -> dict[tuple[str, str], str]:
    out = {}
    for key, name in (override or {}).items():
        layer, _, tensor = key.partition(":")
        if layer not in layers:
            raise F8Error(f"format override {key!r}: no layer {layer!r} (layers: {', '.join(layers)})")
        if tensor and tensor not in TENSORS:
            raise F8Error(f"format override {key!r}: tensor must be 'input' or 'weight'")
        format_kind(name, f"format override {key!r}")
        for t in (tensor,) if tensor else TENSORS:
            out[layer, t] = name
    return out


@torch.no_grad()
def select_formats(model: nn.Module, calib_batches, candidates=FORMAT_NAMES, cost: dict | None = None,
                   override: dict | None = None, apply: bool = True, bn: bool = False,
                   criterion: str = "output") -> FormatReport:
    """Choose each layer's input and weight format from float calibration data; apply them unless apply=False.

    model is prepared (f8hw.nn.prepare); calib_batches are uint8 image batches.
    cost maps a format name to a factor on its error (default 1; a pair's
    error is multiplied by both formats' costs).  criterion: "output" or
    "tensor" (module docstring).  Calibrate (f8hw.nn.calibrate) after
    applying: the scales depend on the formats.
    """
    plan = getattr(model, "f8_plan", None)
    if plan is None:
        raise F8Error("select_formats needs a prepared model (f8hw.nn.prepare)")
    if criterion not in CRITERIA:
        raise F8Error(f"select_formats criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
    for name in candidates:
        format_kind(name, "candidate")
    if not candidates:
        raise F8Error("select_formats needs at least one candidate format")
    candidates = tuple(candidates)
    cost = dict(cost or {})
    layers = {n.name: n.module for n in plan.layers()}
    forced = _overrides(override, layers)
    samples, inputs = _layer_inputs(model, layers, list(calib_batches), bn)
    # formats an override forces but the candidates lack are scored too (the pairs need their errors)
    scored = candidates + tuple(sorted(set(forced.values()) - set(candidates)))
    scores = _Scores(layers, samples, inputs, scored, len(candidates), cost, criterion)
    groups: dict[object, list[str]] = {}
    for name, m in layers.items():
        groups.setdefault(m.act.links.get("alpha_owner", m.act), []).append(name)
    chosen: dict[tuple[str, str], tuple[str, str]] = {}
    for members in groups.values():
        if layers[members[0]].act.image_input:
            chosen.update({(n, "input"): ("int8", "image input") for n in members})
            continue
        wish = {forced[n, "input"] for n in members if (n, "input") in forced}
        if len(wish) > 1:
            raise F8Error(f"format overrides {sorted(wish)} conflict: layers {', '.join(members)} share one input format")
        if wish:
            pick, why = wish.pop(), "override"
        else:
            total = [sum(scores.input(n, i, forced.get((n, "weight"))).score for n in members)
                     for i in candidates]
            pick, why = candidates[int(np.argmin(total))], "best" if len(members) == 1 else "group"
        chosen.update({(n, "input"): (pick, why) for n in members})
    found: dict[tuple[str, str], tuple[Candidate, ...]] = {}
    for name in layers:
        fmt_in = chosen[name, "input"][0]
        found[name, "weight"] = tuple(scores.weight(name, fmt_in, j) for j in candidates)
        if name in samples:
            found[name, "input"] = tuple(scores.input(name, i, forced.get((name, "weight"))) for i in candidates)
        if (name, "weight") in forced:
            chosen[name, "weight"] = (forced[name, "weight"], "override")
        else:
            cands = found[name, "weight"]
            chosen[name, "weight"] = (cands[int(np.argmin([c.score for c in cands]))].format, "best")
    report = FormatReport(candidates, tuple(
        TensorChoice(name, t, found.get((name, t), ()), *chosen[name, t]) for name in layers for t in TENSORS),
        criterion)
    if apply:
        for name, (fmt_in, fmt_w) in report.formats().items():
            layers[name].set_format(fmt_in, fmt_w)
    return report


def _layer_inputs(model, layers: dict, batches: list, bn: bool) -> tuple[dict, dict]:
    """Float inputs of every layer but the image readers: (subsampled values, the first OUTPUT_IMAGES whole)."""
    if bn:
        reestimate_bn(model, batches)
    was_quantized = {m: getattr(m, "quantized", None) for m in model.modules()}
    set_quantized(model, False)
    model.eval()
    rng = np.random.default_rng(0)
    samples: dict[str, list[np.ndarray]] = {}
    inputs: dict[str, np.ndarray] = {}

    def hook(mod, args, name):
        x = mod.act.float_view(args[0])
        if not mod.act.image_input:
            samples.setdefault(name, []).append(_subsample(x, rng))
        inputs.setdefault(name, x[:OUTPUT_IMAGES].detach().double().numpy())

    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: hook(mod, args, name))
             for name, m in layers.items()]
    try:
        run_hooked(model, batches, hooks)
    finally:
        for m, q in was_quantized.items():
            if q is not None:
                m.quantized = q
    return {k: np.concatenate(v) for k, v in samples.items()}, inputs


class _Scores:
    """Candidate errors per layer under one criterion (computed once per layer, on demand)."""

    def __init__(self, layers, samples, inputs, names, free, cost, criterion):
        self.layers, self.samples, self.inputs = layers, samples, inputs
        self.names, self.cost, self.criterion = names, cost, criterion
        self.free = free  # names[:free] are the candidates; the rest only scored for overrides
        self._memo: dict = {}

    def _cost(self, name: str) -> float:
        return float(self.cost.get(name, 1.0))

    def _layer(self, layer: str):
        if layer not in self._memo:
            m = self.layers[layer]
            w = _float_weight(m)
            if self.criterion == "output" and layer in self.inputs:
                self._memo[layer] = _output_errors(m, self.inputs[layer], w, self.names)
            else:
                ins = (_tensor_candidates(self.samples[layer], m.act.signed, self.names, self.cost)
                       if layer in self.samples else ())
                self._memo[layer] = (ins, _tensor_candidates(w.reshape(-1), True, self.names, self.cost))
        return self._memo[layer]

    def input(self, layer: str, fmt: str, weight: str | None) -> Candidate:
        """The input candidate fmt; with the output criterion, paired with weight (or its best weight format)."""
        got = self._layer(layer)
        i = self.names.index(fmt)
        if len(got) == 2:
            return got[0][i]
        fl_in, _, err = got
        cols = [self.names.index(weight)] if weight else range(self.free)
        rel, c = min((err[i, j], self._cost(self.names[j])) for j in cols)
        return Candidate(fmt, fl_in[fmt], float(rel), self._cost(fmt) * c)

    def weight(self, layer: str, fmt_in: str, fmt: str) -> Candidate:
        """The weight candidate fmt; with the output criterion, paired with input format fmt_in."""
        got = self._layer(layer)
        j = self.names.index(fmt)
        if len(got) == 2:
            return got[1][j]
        fl_in, fl_w, err = got
        if not fl_in:  # the image input: one row, no input format cost
            return Candidate(fmt, fl_w[fmt], float(err[0, j]), self._cost(fmt))
        return Candidate(fmt, fl_w[fmt], float(err[self.names.index(fmt_in), j]), self._cost(fmt) * self._cost(fmt_in))


def model_formats(model: nn.Module) -> dict[str, tuple[str, str]]:
    """layer name -> (input format, weight format) of a prepared model."""
    return {n.name: n.module.formats for n in model.f8_plan.layers()}


def apply_formats(model: nn.Module, formats: dict[str, tuple[str, str]]) -> None:
    """Set the formats model_formats returned (e.g. from a checkpoint) on a prepared model."""
    layers = {n.name: n.module for n in model.f8_plan.layers()}
    for name, (fmt_in, fmt_w) in formats.items():
        if name not in layers:
            raise F8Error(f"formats name layer {name!r}, which the model does not have")
        layers[name].set_format(fmt_in, fmt_w)


__all__ = ["Candidate", "FormatReport", "TensorChoice", "apply_formats", "model_formats", "select_formats"]

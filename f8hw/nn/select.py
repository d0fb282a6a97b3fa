"""Automatic per-layer 8-bit format choice (flexible 8-bit formats, docs/ir.md).

For every layer's input activation and weight, each candidate format is
scored by its calibration error at its best scale (grid search on fl):
relative MSE = mean((Q(x) - x)**2) / mean(x**2), times an optional per-format
hardware cost.  Layers sharing a clipping group (siblings, identity
residuals) must read one activation format, so their inputs are chosen
together (summed scores).  The image input is always u8.  A user override
wins: ``{"conv1": "e4m3"}`` sets both tensors, ``"conv1:input"`` /
``"conv1:weight"`` one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from f8hw.errors import F8Error
from f8hw.nn.calibrate import _subsample, reestimate_bn
from f8hw.nn.fp8quant import FORMAT_NAMES, format_kind
from f8hw.nn.graph import set_quantized
from f8hw.nn.layers import QConv2d
from f8hw.numerics import TensorFormat, dequantize_format, fl_grid_search, quantize_format

TENSORS = ("input", "weight")


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

    def formats(self) -> dict[str, tuple[str, str]]:
        """layer name -> (input format, weight format)."""
        got: dict[str, dict[str, str]] = {}
        for c in self.choices:
            got.setdefault(c.layer, {})[c.tensor] = c.choice
        return {k: (v["input"], v["weight"]) for k, v in got.items()}

    def table(self) -> str:
        """Plain-text table: relative MSE of every candidate (x cost if not 1), the choice and why."""
        names = list(self.candidates)
        head = ["layer", "tensor", *names, "choice", "reason"]
        rows = [head]
        for c in self.choices:
            errs = {k.format: f"{k.rel_mse:.2e}" + (f" x{k.cost:g}" if k.cost != 1 else "") for k in c.candidates}
            rows.append([c.layer, c.tensor, *(errs.get(n, "-") for n in names), c.choice, c.reason])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)

    __str__ = table


def _candidates(values: np.ndarray, signed: bool, names, cost: dict) -> tuple[Candidate, ...]:
    power = float(np.mean(values**2)) or 1.0
    out = []
    for name in names:
        kind = format_kind(name)
        fl = fl_grid_search(values, signed, kind)
        fmt = TensorFormat(fl, signed, 8, kind)
        err = float(np.mean((dequantize_format(quantize_format(values, fmt), fmt) - values) ** 2))
        out.append(Candidate(name, fl, err / power, float(cost.get(name, 1.0))))
    return tuple(out)


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
                   override: dict | None = None, apply: bool = True, bn: bool = False) -> FormatReport:
    """Choose each layer's input and weight format from float calibration data; apply them unless apply=False.

    model is prepared (f8hw.nn.prepare); calib_batches are uint8 image batches.
    cost maps a format name to a factor on its error (default 1).  Calibrate
    (f8hw.nn.calibrate) after applying: the scales depend on the formats.
    """
    plan = getattr(model, "f8_plan", None)
    if plan is None:
        raise F8Error("select_formats needs a prepared model (f8hw.nn.prepare)")
    for name in candidates:
        format_kind(name, "candidate")
    if not candidates:
        raise F8Error("select_formats needs at least one candidate format")
    cost = dict(cost or {})
    layers = {n.name: n.module for n in plan.layers()}
    forced = _overrides(override, layers)
    batches = list(calib_batches)
    if bn:
        reestimate_bn(model, batches)
    was_quantized = {m: getattr(m, "quantized", None) for m in model.modules()}
    set_quantized(model, False)
    model.eval()
    rng = np.random.default_rng(0)
    seen: dict[str, list[np.ndarray]] = {}
    hooks = [m.register_forward_pre_hook(
        lambda mod, args, name=name: seen.setdefault(name, []).append(_subsample(mod.act.float_view(args[0]), rng)))
        for name, m in layers.items() if not m.act.image_input]
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        for m, q in was_quantized.items():
            if q is not None:
                m.quantized = q
    found: dict[tuple[str, str], tuple[Candidate, ...]] = {}
    for name, m in layers.items():
        found[name, "weight"] = _candidates(_float_weight(m).reshape(-1), True, candidates, cost)
        if name in seen:
            found[name, "input"] = _candidates(np.concatenate(seen[name]), m.act.signed, candidates, cost)
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
            total = [sum(found[n, "input"][i].score for n in members) for i in range(len(candidates))]
            pick, why = candidates[int(np.argmin(total))], "best" if len(members) == 1 else "group"
        chosen.update({(n, "input"): (pick, why) for n in members})
    for name in layers:
        if (name, "weight") in forced:
            chosen[name, "weight"] = (forced[name, "weight"], "override")
        else:
            cands = found[name, "weight"]
            chosen[name, "weight"] = (cands[int(np.argmin([c.score for c in cands]))].format, "best")
    report = FormatReport(tuple(candidates), tuple(
        TensorChoice(name, t, found.get((name, t), ()), *chosen[name, t]) for name in layers for t in TENSORS))
    if apply:
        for name, (fmt_in, fmt_w) in report.formats().items():
            layers[name].set_format(fmt_in, fmt_w)
    return report


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

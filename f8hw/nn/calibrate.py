"""Post-training calibration of a prepared model: BN statistics, clipping levels and FLs.

From float-mode activations on a few batches, every clipping group (a master
and the readers sharing its alpha) gets the FL that minimizes the
quantization error of its real values (grid search, f8hw.numerics), and
alpha = qmax / 2**FL, so eta = 2**FL * alpha / qmax = 1: the t-tensors of the
F8 model are the float model's activations and the fused weights are the
float ones.  QAT (f8hw.train) then refines alpha and the FLs by the paper's
rules.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from f8hw.errors import F8Error
from f8hw.nn.fp8quant import flat_grid_fl, scale_fl
from f8hw.nn.graph import set_quantized
from f8hw.nn.layers import QAdd, QGlobalAvgPool2d
from f8hw.nn.quant import ActQuant
from f8hw.numerics import fl_grid_search, fl_range

SAMPLES_PER_QUANTIZER = 1 << 17
"""Activation values kept per quantizer for the grid search (a deterministic subsample)."""


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches) -> None:
    """Float-mode BN running statistics as the plain average over batches (random-weight nets)."""
    set_quantized(model, False)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    for x in batches:
        model(x)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
    model.eval()


def run_hooked(model: nn.Module, batches, hooks) -> None:
    """Forward every batch with the given hook handles registered, then remove them (also on error)."""
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()


def _subsample(values: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    flat = values.detach().reshape(-1).double().numpy()
    if flat.size > SAMPLES_PER_QUANTIZER:
        flat = flat[rng.choice(flat.size, SAMPLES_PER_QUANTIZER, replace=False)]
    return flat


@torch.no_grad()
def calibrate(model: nn.Module, batches, method: str = "grid", bn: bool = False) -> None:
    """Set alphas and FL buffers from float activations on batches (uint8 images); leaves F8 eval mode.

    method "grid": the FL of least quantization error (post-training use; FP8: the smallest FL within
    1 % of it, f8hw.nn.fp8quant.flat_grid_fl);
    "sigma": paper eq. 1, the rule QAT uses for each batch, so QAT starts
    where its FL buffers are at rest.  The FL comes from the group master's
    values, in each quantizer's format (INT8 or FP8).  bn=True first re-estimates the BN statistics (random-weight models).
    """
    if method not in ("grid", "sigma"):
        raise F8Error(f"calibration method must be 'grid' or 'sigma', not {method!r}")
    plan = getattr(model, "f8_plan", None)
    if plan is None:
        raise F8Error("calibrate needs a prepared model (f8hw.nn.prepare)")
    batches = list(batches)
    if bn:
        reestimate_bn(model, batches)
    set_quantized(model, False)
    model.eval()
    rng = np.random.default_rng(0)
    seen: dict[ActQuant, list[np.ndarray]] = {}
    hooks = []

    def watch(act: ActQuant, arg: int, scale: float = 1.0):
        def hook(module, args):
            seen.setdefault(act, []).append(_subsample(act.float_view(args[arg]) * scale, rng))

        return hook

    for n in plan.nodes:
        m = n.module
        if n.kind in ("layer", "gap") and not m.act.image_input:
            scale = 1.0
            if isinstance(m, QGlobalAvgPool2d):
                positions = n.inputs[0].shape[1] * n.inputs[0].shape[2]
                scale = 2.0 ** n.attrs["shift"] / positions
            hooks.append(m.register_forward_pre_hook(watch(m.act, 0, scale)))
        elif n.kind == "add" and isinstance(m, QAdd) and "skip_quant" not in m.links:
            hooks.append(m.register_forward_pre_hook(watch(m.skip_act, 1)))
    run_hooked(model, batches, hooks)
    groups: dict[ActQuant, list[ActQuant]] = {}
    for act in seen:
        owner = act.links.get("alpha_owner", act) if act.alpha is not None else act
        groups.setdefault(owner, []).append(act)
    for owner, members in groups.items():
        values = np.concatenate(seen[owner] if owner in seen else [v for a in members for v in seen[a]])
        if method == "grid":
            fl = fl_grid_search(values, owner.signed) if owner.kind == "int" else \
                flat_grid_fl(values, owner.signed, owner.kind)
        else:
            fl = scale_fl(values.std(ddof=1) if values.size > 1 else 0.0, owner.signed, owner.kind)
        if owner.alpha is not None and owner.kind == "int":
            owner.alpha.fill_(owner.qmax / 2.0**fl)
        for a in members:
            r = fl_range(a.signed, a.kind)
            a.fl_buffer.fill_(float(min(max(fl, r.start), r.stop - 1)))
    set_quantized(model, True)

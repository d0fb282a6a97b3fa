"""Reproduction of the F8Net paper's Fig. 3/4: which FL is optimal for which sigma.

Zero-mean Gaussian samples (rectified by ReLU for unsigned quantization, as in
the paper's Appendix 7.2) with sigma log-spaced over 1e-3..1e3 are quantized
with every FL; the relative error ||q/2^FL - x|| / ||x|| gives the optimal FL
per sigma.  One standard-normal draw is scaled to every sigma (common random
numbers), so the curves are smooth and the thresholds reproducible.

Where the optimum switches from FL f+1 to f, eq. 1 (FL = floor(log2(c/sigma)))
predicts sigma = c / 2^(f+1); each switch therefore gives an estimate
c = sigma_switch * 2^(f+1), compared with the paper's 40 (signed) / 70 (unsigned).
sigma is the standard deviation of the Gaussian before the ReLU.

``analyze_fp8`` is the same study for the 8-bit formats of flexible 8-bit
inference (INT8 and the FP8 formats, signed), on a Gaussian and on a
heavy-tailed Student-t (3 degrees of freedom, scaled to standard deviation
sigma: the outlier case): it fits the FP8 analogue of eq. 1, the constants
f8hw.numerics.FP8_SIGMA_CONSTANT.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f8hw.numerics import (
    FL_SIGMA_CONSTANT,
    FORMATS,
    FP8_SIGMA_CONSTANT,
    TensorFormat,
    dequantize,
    dequantize_format,
    fl_from_sigma,
    fl_range,
    quantize,
    quantize_format,
)

__all__ = ["FLAnalysis", "analyze_kind", "write_fl_analysis", "Fp8Analysis", "DISTRIBUTIONS", "analyze_fp8",
           "write_fp8_analysis"]


@dataclass
class FLAnalysis:
    """Result of one kind (signed or unsigned)."""

    signed: bool
    sigma: np.ndarray  # (S,)
    rel_error: np.ndarray  # (S, number of FLs)
    optimal_fl: np.ndarray  # (S,)
    rule_fl: np.ndarray  # (S,) fl_from_sigma (paper eq. 1)
    switches: list[tuple[int, int, float, float]]  # (from fl, to fl, sigma, c estimate)

    @property
    def constant(self) -> float:
        """Fitted c of FL = floor(log2(c / sigma)): geometric mean of the per-switch estimates."""
        return float(np.exp(np.mean([math.log(c) for *_, c in self.switches])))

    @property
    def paper_constant(self) -> float:
        return FL_SIGMA_CONSTANT[self.signed]

    @property
    def rule_excess(self) -> float:
        """Largest extra relative error of the paper's rule (rule_fl) over the optimal FL."""
        i = np.arange(len(self.sigma))
        return float((self.rel_error[i, self.rule_fl] - self.rel_error[i, self.optimal_fl]).max())


def analyze_kind(signed: bool, n_samples: int = 10000, per_decade: int = 100, seed: int = 0) -> FLAnalysis:
    """Relative error of every FL over the sigma grid, the optimum, and its switch points."""
    z = np.random.default_rng(seed).standard_normal(n_samples)
    sigma = np.logspace(-3, 3, 6 * per_decade + 1)
    fls = list(fl_range(signed))
    err = np.empty((len(sigma), len(fls)))
    for i, s in enumerate(sigma):
        x = s * z if signed else np.maximum(s * z, 0.0)
        norm = np.linalg.norm(x)
        for j, fl in enumerate(fls):
            err[i, j] = np.linalg.norm(dequantize(quantize(x, fl, signed), fl) - x) / norm
    optimal, switches = _optimum(sigma, err, fls)
    rule = np.array([fl_from_sigma(s, signed) for s in sigma])
    return FLAnalysis(signed, sigma, err, optimal, rule, switches)


def _optimum(sigma: np.ndarray, err: np.ndarray, fls: list[int]):
    """Optimal fl per sigma (ties, e.g. everything rounding to 0, go to the largest fl) and its switch points.

    A switch from fl f+1 to f at sigma_s estimates c = sigma_s * 2**(f+1) of fl = floor(log2(c / sigma))."""
    j = len(fls) - 1 - np.argmin(err[:, ::-1], axis=1)
    switches = []
    for i in np.nonzero(np.diff(j))[0]:
        a, b = int(j[i]), int(j[i + 1])
        # crossing of the two error curves, linear in log(sigma) between the grid points
        d0 = err[i, a] - err[i, b]
        d1 = err[i + 1, a] - err[i + 1, b]
        t = d0 / (d0 - d1) if d0 != d1 else 0.5
        s_switch = float(np.exp(np.log(sigma[i]) + t * (np.log(sigma[i + 1]) - np.log(sigma[i]))))
        switches.append((fls[a], fls[b], s_switch, s_switch * 2.0 ** (fls[b] + 1)))
    return np.array(fls)[j], switches


def write_fl_analysis(outdir: str | Path, n_samples: int = 10000, per_decade: int = 100) -> tuple[Path, Path, list[FLAnalysis]]:
    """Run both kinds; write fl_analysis.csv and fl_analysis.png into outdir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results = [analyze_kind(s, n_samples, per_decade) for s in (True, False)]

    csv_path = outdir / "fl_analysis.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "sigma"] + [f"rel_err_fl{k}" for k in range(9)] + ["optimal_fl", "rule_fl"])
        for r in results:
            kind = "signed" if r.signed else "unsigned"
            for i, s in enumerate(r.sigma):
                errs = [f"{e:.6g}" for e in r.rel_error[i]] + [""] * (9 - r.rel_error.shape[1])
                w.writerow([kind, f"{s:.6g}", *errs, int(r.optimal_fl[i]), int(r.rule_fl[i])])

    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    for col, r in enumerate(results):
        kind = "signed (Gaussian)" if r.signed else "unsigned (rectified Gaussian)"
        a = ax[0, col]
        for j in range(r.rel_error.shape[1]):
            a.plot(r.sigma, r.rel_error[:, j], label=f"FL {j}")
        a.plot(r.sigma, r.rel_error.min(axis=1), "k--", lw=1, label="min")
        a.set(xscale="log", yscale="log", ylim=(1e-4, 2), xlabel="sigma", ylabel="relative error",
              title=f"8-bit {kind}")
        a.legend(fontsize=7, ncol=2)
        a = ax[1, col]
        a.step(r.sigma, r.optimal_fl, where="mid", label="optimal FL (min error)")
        a.step(r.sigma, r.rule_fl, where="mid", ls="--", label=f"floor(log2({r.paper_constant:g}/sigma))")
        a.set(xscale="log", xlabel="sigma", ylabel="FL",
              title=f"fitted c = {r.constant:.1f} (paper {r.paper_constant:g})")
        a.legend(fontsize=8)
    fig.tight_layout()
    png_path = outdir / "fl_analysis.png"
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path, csv_path, results


DISTRIBUTIONS = ("gaussian", "student-t3")
"""Sample distributions of the FP8 analysis: Gaussian, and heavy-tailed Student-t(3) (outliers)."""


@dataclass
class Fp8Analysis:
    """One format ("int" = INT8 signed, or an FP8 kind) on one distribution."""

    kind: str
    distribution: str
    sigma: np.ndarray  # (S,), log2-spaced
    fls: np.ndarray  # (F,) the format's fl range
    rel_error: np.ndarray  # (S, F)
    optimal_fl: np.ndarray  # (S,)
    rule_fl: np.ndarray  # (S,) fl_from_sigma with the current constant
    switches: list[tuple[int, int, float, float]]

    @property
    def constant(self) -> float:
        """Fitted c of fl = floor(log2(c / sigma)) (geometric mean of the switch estimates)."""
        return float(np.exp(np.mean([math.log(c) for *_, c in self.switches])))

    @property
    def rule_constant(self) -> float:
        """The c that f8hw.numerics uses for this format (paper's 40 for INT8)."""
        return FL_SIGMA_CONSTANT[True] if self.kind == "int" else FP8_SIGMA_CONSTANT[self.kind]

    @property
    def best_error(self) -> float:
        """Relative error at the best scale (reached for every sigma whose best scale is inside the fl range)."""
        return float(self.rel_error.min())

    @property
    def rule_excess(self) -> float:
        """Largest extra relative error of the sigma rule over the optimal scale."""
        i, f0 = np.arange(len(self.sigma)), int(self.fls[0])
        return float((self.rel_error[i, self.rule_fl - f0] - self.rel_error[i, self.optimal_fl - f0]).max())


def _samples(distribution: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if distribution == "gaussian":
        return rng.standard_normal(n)
    if distribution == "student-t3":
        return rng.standard_t(3, n) / math.sqrt(3.0)  # standard deviation 1
    raise ValueError(f"unknown distribution {distribution!r} (known: {', '.join(DISTRIBUTIONS)})")


def analyze_fp8(kind: str, distribution: str = "gaussian", n_samples: int = 10000, per_octave: int = 16,
                seed: int = 0) -> Fp8Analysis:
    """Relative error of every scale fl of a format over sigma = 2**-10 .. 2**10, its optimum and switches.

    Quantizing sigma*z at scale fl is quantizing 2**(log2(sigma) + fl) * z at
    scale 0 (powers of two are exact), so the relative error depends on
    log2(sigma) + fl only: one error curve on the 1/per_octave grid gives the
    whole (sigma, fl) table exactly, for the cost of one sweep.
    """
    z = _samples(distribution, n_samples, seed)
    fls = np.array(fl_range(True, kind))
    k = np.arange(-10 * per_octave, 10 * per_octave + 1)  # log2(sigma) * per_octave
    t = np.arange(k[0] + fls[0] * per_octave, k[-1] + fls[-1] * per_octave + 1)
    fmt, norm = TensorFormat(0, True, 8, kind), np.linalg.norm(z)
    curve = {}
    for ti in t:
        x = z * 2.0 ** (ti / per_octave)
        curve[int(ti)] = np.linalg.norm(dequantize_format(quantize_format(x, fmt), fmt) - x) / (
            norm * 2.0 ** (ti / per_octave))
    err = np.array([[curve[int(ki + f * per_octave)] for f in fls] for ki in k])
    sigma = 2.0 ** (k / per_octave)
    optimal, switches = _optimum(sigma, err, list(fls))
    rule = np.array([fl_from_sigma(s, True, kind) for s in sigma])
    return Fp8Analysis(kind, distribution, sigma, fls, err, optimal, rule, switches)


def write_fp8_analysis(outdir: str | Path, n_samples: int = 10000, per_octave: int = 16
                       ) -> tuple[Path, Path, list[Fp8Analysis]]:
    """Every format on every distribution; write fp8_analysis.csv (long form) and fp8_analysis.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results = [analyze_fp8(kind, d, n_samples, per_octave) for d in DISTRIBUTIONS for kind in ("int", *FORMATS)]
    csv_path = outdir / "fp8_analysis.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["format", "distribution", "sigma", "fl", "rel_error", "optimal_fl", "rule_fl"])
        for r in results:
            for i, s in enumerate(r.sigma):
                for j, fl in enumerate(r.fls):
                    w.writerow([r.kind, r.distribution, f"{s:.6g}", int(fl), f"{r.rel_error[i, j]:.6g}",
                                int(r.optimal_fl[i]), int(r.rule_fl[i])])
    fig, ax = plt.subplots(1, 2, figsize=(13, 5))
    for r in results:
        style = "-" if r.distribution == "gaussian" else "--"
        color = f"C{(('int', *FORMATS)).index(r.kind)}"
        name = "int8" if r.kind == "int" else r.kind
        # the error depends on sigma * 2**fl only: one curve per format
        j = int(np.searchsorted(r.fls, 0))
        ax[0].plot(r.sigma, r.rel_error[:, j], style, color=color, label=f"{name} {r.distribution}")
        if r.distribution == "gaussian":
            ax[1].step(r.sigma, r.optimal_fl, where="mid", color=color, label=f"{name} optimal")
            ax[1].step(r.sigma, r.rule_fl, ":", where="mid", color=color,
                       label=f"floor(log2({r.rule_constant:g}/sigma))")
    ax[0].set(xscale="log", yscale="log", ylim=(1e-3, 2), xlabel="sigma * 2^fl", ylabel="relative error",
              title="8-bit formats: relative error vs scale")
    ax[0].legend(fontsize=7, ncol=2)
    ax[1].set(xscale="log", xlabel="sigma", ylabel="fl", title="optimal scale vs sigma (Gaussian)")
    ax[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    png_path = outdir / "fp8_analysis.png"
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path, csv_path, results

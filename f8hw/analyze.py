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
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f8hw.numerics import FL_SIGMA_CONSTANT, dequantize, fl_from_sigma, fl_range, quantize


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
    # ties (e.g. everything rounds to 0 at tiny sigma) go to the largest FL
    optimal = len(fls) - 1 - np.argmin(err[:, ::-1], axis=1)
    switches = []
    for i in np.nonzero(np.diff(optimal))[0]:
        hi, lo = int(optimal[i]), int(optimal[i + 1])
        # crossing of the two error curves, linear in log(sigma) between the grid points
        d0 = err[i, hi] - err[i, lo]
        d1 = err[i + 1, hi] - err[i + 1, lo]
        t = d0 / (d0 - d1) if d0 != d1 else 0.5
        s_switch = float(np.exp(np.log(sigma[i]) + t * (np.log(sigma[i + 1]) - np.log(sigma[i]))))
        switches.append((hi, lo, s_switch, s_switch * 2 ** (lo + 1)))
    rule = np.array([fl_from_sigma(s, signed) for s in sigma])
    return FLAnalysis(signed, sigma, err, optimal, rule, switches)


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

"""Design-space sweeps: a grid of (network, accelerator) points, simulated and synthesized on Ray.

    result = f8hw.sweep("examples/sweep.toml", "build/sweep")     # local Ray instance
    result = f8hw.sweep(spec, "build/sweep", address="ray://head:10001")   # the same spec on a cluster

Modules: spec (the grid), tasks (one point's work), engine (Ray), store (results.jsonl, resumable),
report (CSV, JSON, Pareto plot, summary).
"""

from f8hw.sweeps.engine import SweepResult, run_sweep
from f8hw.sweeps.spec import Point, SweepSpec, load_spec, parse_arrays, spec_from_dict

__all__ = ["sweep", "run_sweep", "SweepResult", "SweepSpec", "Point", "load_spec", "spec_from_dict", "parse_arrays"]


def sweep(spec, outdir="build/sweep", **options) -> SweepResult:
    """Run a sweep: ``spec`` is a SweepSpec, a TOML file or a dict like the TOML's; ``options`` those of run_sweep
    (address, workers, verify, progress, log)."""
    from pathlib import Path

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = spec_from_dict(spec)
    return run_sweep(spec, outdir, **options)

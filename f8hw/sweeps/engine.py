"""Running a sweep on Ray: a local instance by default, the same spec on a cluster with an address.

Each point is a simulation task (compile + ISA simulation); each distinct hardware
configuration is one synthesis task; ``verify`` re-runs chosen points on Verilator.
Tasks declare their CPU and memory needs, results stream to ``results.jsonl`` as
they finish, and a rerun skips what is already there.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from f8hw.errors import F8Error

__all__ = ["run_sweep", "SweepResult", "resolve_networks"]

SIM_MEMORY = 2 << 30      # bytes a simulation task may need (the largest zoo networks at batch 1)
SYNTH_MEMORY = 3 << 30    # bytes yosys may need for a large array


@dataclass
class SweepResult:
    """What a sweep did: every point's row, and how many tasks ran now vs were already on disk."""

    rows: list[dict]
    outdir: Path
    computed: int
    skipped: int
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(outdir=str(self.outdir), computed=self.computed, skipped=self.skipped,
                    seconds=round(self.seconds, 2), files=self.files, points=self.rows)


def resolve_networks(names: list[str], log=None) -> dict[str, str]:
    """network name -> model file: bundled and zoo networks by name (zoo exported once, cached), or files."""
    from f8hw.bench.networks import model_path
    from f8hw.flow import bundled_models, bundled_path
    from f8hw.models import ARCHS

    out = {}
    for n in names:
        if n in bundled_models():
            out[n] = str(bundled_path(n))
        elif n in ARCHS:
            out[n] = str(model_path(n, 0, log)[0])
        elif Path(n).is_file():
            out[n] = str(Path(n).resolve())
        else:
            raise F8Error(f"networks: {n!r} is neither a bundled or zoo network "
                          f"({', '.join(bundled_models() + list(ARCHS))}) nor a model file")
    return out


def _init_ray(address: str | None, workers: int | None, outdir: Path):
    try:
        import ray
    except ModuleNotFoundError:
        raise F8Error("f8hw sweep needs Ray: pip install 'f8hw[sweep]'") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return ray, False
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        ray.init(address=address, **kw)
    else:
        tmp = Path(os.environ.get("F8HW_RAY_TMP", "/tmp/f8hw-ray"))
        ray.init(num_cpus=workers or os.cpu_count() or 1, _temp_dir=str(tmp), **kw)
    return ray, True


def run_sweep(spec, outdir, *, address: str | None = None, workers: int | None = None, verify: int = 0,
              progress=None, log=None) -> SweepResult:
    """Run every point of ``spec`` (a SweepSpec) and write results.jsonl, sweep.csv, sweep.json, pareto.png and
    summary.md into ``outdir``.  ``progress(done, total, label)`` is called as tasks finish."""
    from f8hw.bench.machine import machine_info
    from f8hw.sweeps.report import write_outputs
    from f8hw.sweeps.store import ResultStore
    from f8hw.sweeps.tasks import simulate_point, synthesize_point, verify_point

    t0 = time.perf_counter()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    meta = machine_info()
    commit = (meta.get("commit") or "unknown") + ("+dirty" if meta.get("dirty") else "")
    models = resolve_networks(spec.networks, log)
    points = spec.points()
    store = ResultStore(outdir)
    hw_keys = {p: json.dumps(p.hardware(), sort_keys=True) for p in points}
    sim_todo = [p for p in points if not store.has("sim", p.key(commit))]
    # smallest configurations first: their areas arrive early
    synth_todo = [] if spec.synth == "none" else sorted(
        {h for h in hw_keys.values() if not store.has("synth", _synth_key(h, spec.synth, commit))},
        key=lambda h: (json.loads(h)["rows"] * json.loads(h)["cols"], h))
    total = len(sim_todo) + len(synth_todo)
    skipped = len(points) - len(sim_todo) + (0 if spec.synth == "none" else len(set(hw_keys.values())) - len(synth_todo))
    computed = 0
    if total:
        ray, started = _init_ray(address, workers, outdir)
        try:
            sim_task = ray.remote(num_cpus=1, memory=SIM_MEMORY)(simulate_point)
            synth_task = ray.remote(num_cpus=1, memory=SYNTH_MEMORY)(synthesize_point)
            work = str((outdir / "work").resolve())
            pending = {sim_task.remote(p, models[p.network]): ("sim", p.key(commit), p) for p in sim_todo}
            pending.update({synth_task.remote(json.loads(h), spec.synth, work): ("synth", _synth_key(h, spec.synth, commit), h)
                            for h in synth_todo})
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                kind, key, what = pending.pop(done[0])
                data = ray.get(done[0])
                params = what.params() if kind == "sim" else json.loads(what)
                store.add(kind, key, {"params": params, **data})
                computed += 1
                if progress:
                    progress(computed, total, f"{kind} {params.get('network', '')} "
                                              f"{params['rows']}x{params['cols']}".replace("  ", " "))
        finally:
            if started:
                ray.shutdown()
    rows = [_row(p, store, hw_keys[p], spec.synth, commit, meta) for p in points]
    if verify:
        for row, p in [(r, p) for r, p in zip(rows, points) if r["error"] is None][:verify]:
            vkey = p.key(commit)
            rec = store.get("verify", vkey) or store.add("verify", vkey, verify_point(p, models[p.network],
                                                                                        row["cycles"]))
            row.update(verified=rec["verified"], verify_error=rec["verify_error"])
    files = write_outputs(rows, spec, outdir, meta)
    return SweepResult(rows, outdir, computed, skipped, time.perf_counter() - t0, files)


def _synth_key(hardware_json: str, mode: str, commit: str) -> str:
    import hashlib

    return hashlib.sha256(f"{hardware_json}|{mode}|{commit}".encode()).hexdigest()[:20]


COLUMNS = ("cycles", "utilization", "macs", "instructions", "bit_exact", "compile_s", "sim_s", "area_cells",
           "ice40_lut", "ecp5_lut", "memory_bits", "synth_s", "verified", "verify_error", "error")


def _row(point, store, hw_json: str, mode: str, commit: str, meta: dict) -> dict:
    """One output row: parameters, commit, machine, then the sim and synth results (None where not measured)."""
    sim = store.get("sim", point.key(commit)) or {}
    syn = {} if mode == "none" else (store.get("synth", _synth_key(hw_json, mode, commit)) or {})
    row = {**point.params(), "commit": commit, "machine": f"{meta['platform']} ({meta['cpu_count']} cpus)"}
    row.update({c: None for c in COLUMNS})
    row.update({k: v for k, v in sim.items() if k in COLUMNS})
    row.update({k: v for k, v in syn.items() if k in COLUMNS})
    errors = [e for e in (sim.get("error"), syn.get("area_error")) if e]
    row["error"] = "; ".join(errors) or None
    row["layer_utilization"] = sim.get("layer_utilization")
    return row

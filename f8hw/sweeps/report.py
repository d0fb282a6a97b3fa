"""Sweep outputs: sweep.csv / sweep.json (one row per point), a Pareto plot of cycles vs area and summary.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["write_outputs", "pareto_front", "best_under_budget"]


def pareto_front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both area and cycles (rows with both measured), by increasing area."""
    ok = sorted((r for r in rows if r.get("cycles") and r.get("area_cells") and not r.get("error")),
                key=lambda r: (r["area_cells"], r["cycles"]))
    front, best = [], None
    for r in ok:
        if best is None or r["cycles"] < best:
            front.append(r)
            best = r["cycles"]
    return front


def best_under_budget(rows: list[dict], budget: float | None) -> dict | None:
    """The fastest finished row whose area fits the budget (any area when there is no budget or no area)."""
    ok = [r for r in rows if r.get("cycles") and not r.get("error")
          and (budget is None or (r.get("area_cells") is not None and r["area_cells"] <= budget))]
    return min(ok, key=lambda r: (r["cycles"], r.get("area_cells") or 0), default=None)


def _csv(rows: list[dict], path: Path) -> None:
    cols = [k for k in rows[0] if k != "layer_utilization"] if rows else []
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _plot(rows: list[dict], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(dict.fromkeys(r["network"] for r in rows))
    if not any(r.get("area_cells") and r.get("cycles") for r in rows):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, net in enumerate(nets):
        mine = [r for r in rows if r["network"] == net and r.get("area_cells") and r.get("cycles") and not r["error"]]
        color = f"C{i % 10}"
        ax.scatter([r["area_cells"] for r in mine], [r["cycles"] for r in mine], color=color, alpha=0.6, label=net)
        front = pareto_front(mine)
        ax.plot([r["area_cells"] for r in front], [r["cycles"] for r in front], color=color, marker="o", lw=1.5)
        for r in front:
            ax.annotate(r["array"], (r["area_cells"], r["cycles"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("area (yosys generic cells, logic; scratchpads excluded)")
    ax.set_ylabel("cycles (ISA simulator = RTL)")
    ax.set_title("f8hw sweep: cycles vs area (lines: Pareto front per network)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.1f}%" if v <= 1 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def summary_markdown(rows: list[dict], spec, meta: dict) -> str:
    """Best configuration per network (under the area budget), the Pareto fronts and the failed points."""
    budget = spec.area_budget
    L = ["# f8hw sweep", "", f"- {len(rows)} points, commit {rows[0]['commit'] if rows else '-'}, "
         f"{meta['platform']} ({meta['cpu_count']} cpus)",
         f"- area budget: {budget:,.0f} cells" if budget else "- no area budget (fastest configuration per network)",
         "", "| network | best configuration | cycles | utilization | area (cells) |", "|---|---|---:|---:|---:|"]
    for net in dict.fromkeys(r["network"] for r in rows):
        best = best_under_budget([r for r in rows if r["network"] == net], budget)
        if best is None:
            L.append(f"| {net} | none fits | - | - | - |")
            continue
        depths = ", ".join(f"{k} {best[k]}" for k in ("a_depth", "w_depth", "b_depth", "s_depth", "o_depth")
                           if best.get(k) is not None)
        cfg = f"{best['array']} {best['requant']}, batch {best['batch']}" + (f", {depths}" if depths else "")
        L.append(f"| {net} | {cfg} | {_fmt(best['cycles'])} | {_fmt(best['utilization'])} | "
                 f"{_fmt(best['area_cells'])} |")
    bad = [r for r in rows if r["error"]]
    if bad:
        L += ["", f"{len(bad)} point(s) failed (recorded, not retried until the code changes):", ""]
        L += [f"- {r['network']} {r['array']} {r['requant']} batch {r['batch']}: {r['error']}" for r in bad]
    return "\n".join(L) + "\n"


def write_outputs(rows: list[dict], spec, outdir: Path, meta: dict) -> dict[str, str]:
    """Write sweep.csv, sweep.json, pareto.png (when areas were measured) and summary.md; returns their paths."""
    outdir = Path(outdir)
    files = {"csv": outdir / "sweep.csv", "json": outdir / "sweep.json", "summary": outdir / "summary.md"}
    _csv(rows, files["csv"])
    files["json"].write_text(json.dumps({"spec": spec.to_dict(), "meta": meta, "points": rows}, indent=1,
                                        default=str) + "\n")
    files["summary"].write_text(summary_markdown(rows, spec, meta))
    if _plot(rows, outdir / "pareto.png"):
        files["plot"] = outdir / "pareto.png"
    return {k: str(v) for k, v in files.items()}

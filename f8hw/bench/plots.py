"""The benchmark's plots: per-layer utilization of a network, scaling with the array size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_layers", "plot_scaling"]


def plot_layers(rec: dict, path: Path) -> None:
    """Per-layer utilization and cycles of one network's run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lay = [lr for lr in rec["layers"]]
    names = [lr["name"] for lr in lay]
    util = [100 * (lr["utilization"] or 0) for lr in lay]
    colors = ["tab:purple" if lr["dw_steps"] else ("tab:gray" if lr["macs"] == 0 else "tab:blue") for lr in lay]
    x = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(7, 0.22 * len(names) + 3), 6.5), sharex=True)
    a1.bar(x, util, color=colors)
    a1.axhline(100 * rec["utilization"], color="k", ls="--", lw=1, label=f"overall {100 * rec['utilization']:.1f}%")
    a1.set_ylabel("array utilization (%)")
    a1.set_ylim(0, 105)
    a1.legend(loc="lower right", fontsize=8)
    a1.set_title(f"{rec['network']} on {rec['array']} ({rec['engine']}): {rec['cycles']:,} cycles "
                 f"(blue dense, purple depthwise, gray pool)", fontsize=9)
    a2.bar(x, [lr["cycles"] or 0 for lr in lay], color="tab:orange", label="measured")
    a2.bar(x, [lr["ideal"] for lr in lay], color="tab:green", alpha=0.7, label="ideal MACs/(R*C)")
    a2.set_ylabel("cycles")
    a2.legend(fontsize=8)
    a2.set_xticks(x, names, rotation=75, ha="right", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(recs: list[dict], path: Path) -> None:
    """Cycles and utilization of ResNet-20 against the array size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["rows"] for r in recs]
    fig, a1 = plt.subplots(figsize=(6, 4))
    a1.plot(n, [r["cycles"] for r in recs], "o-", color="tab:blue", label="cycles")
    a1.plot(n, [r["ideal_cycles"] for r in recs], "--", color="tab:blue", alpha=0.5, label="ideal cycles")
    a1.set_xscale("log", base=2)
    a1.set_yscale("log")
    a1.set_xlabel("array size N (NxN)")
    a1.set_ylabel("cycles")
    a2 = a1.twinx()
    a2.plot(n, [100 * r["utilization"] for r in recs], "s-", color="tab:red", label="utilization")
    a2.set_ylabel("utilization (%)", color="tab:red")
    a2.set_ylim(0, 105)
    a1.set_xticks(n, [f"{k}x{k}" for k in n])
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    a1.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    a1.set_title(f"{recs[0]['network']}: scaling with array size (ISA engine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

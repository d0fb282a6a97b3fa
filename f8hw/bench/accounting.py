"""Where a layer's cycles go: per-layer instruction accounting and the dominant limit."""

from __future__ import annotations

__all__ = ["layer_accounting", "classify_layer", "padding_bound"]


def layer_accounting(compiled) -> list[dict]:
    """Per layer (program slice from its MARK to the next MARK): COMPUTE steps, DENSE/DEPTHWISE/MAX
    steps, LOAD words (W, B, S), LOAD_A words, STORE words and instruction count.

    Prefetched loads of the next layer sit in the current layer's slice, exactly as the MARK-based
    cycle counts attribute their time."""
    from f8hw import isa

    slot_to_layer = {li.mark_slot: i for i, li in enumerate(compiled.layers)}
    acc = [dict(steps=0, dense_steps=0, dw_steps=0, max_steps=0, computes=0, drains=0, load_w=0, load_b=0,
                load_s=0, load_a=0, store=0, instrs=0) for _ in compiled.layers]
    steps_key = {isa.Mode.DENSE: "dense_steps", isa.Mode.DEPTHWISE: "dw_steps"}
    cur = None
    for _pc, op, f, work in isa.walk(compiled.program, compiled.arch.cols):
        n = op.name
        if n == "MARK":
            cur = slot_to_layer.get(f["slot"])
            continue
        if cur is None:
            continue
        a = acc[cur]
        a["instrs"] += 1
        if n == "LOAD":
            a[("load_w", "load_b", "load_s")[f["target"]] if f["target"] < 3 else "load_w"] += work.load_words
        elif n == "LOAD_A":
            a["load_a"] += work.load_words
        elif n == "STORE":
            a["store"] += work.store_words
        elif n == "COMPUTE":
            a["steps"] += work.steps
            a["computes"] += 1
            a["drains"] += int(f["last"])
            a[steps_key.get(f["mode"], "max_steps")] += work.steps
    return acc


def classify_layer(rec: dict, R: int, C: int) -> str:
    """The dominant reason a layer's cycles exceed its ideal MACs/(R*C)."""
    cyc = rec.get("cycles") or 0
    if not cyc:
        return "-"
    if rec["macs"] == 0:
        return "no MACs (pool): load/store bound" if rec["load_words"] >= 0.5 * cyc else "no MACs (pool)"
    busy = rec["steps"] / cyc
    eff = rec["macs"] / (R * C * rec["steps"]) if rec["steps"] else 0.0
    load = rec["load_words"] / cyc
    if rec.get("utilization", 0) >= 0.9:
        return "ok"
    reasons = []
    if load >= 0.85 and busy < 0.9:
        what = "depthwise A loads" if rec.get("kind") == "dw" else "A/W loads"
        reasons.append(f"load bandwidth ({what}: load unit {100 * load:.0f}% busy)")
    if rec["drains"] and rec["steps"] / rec["drains"] < R and busy < 0.9:
        reasons.append(f"drain spacing ({rec['steps'] / rec['drains']:.0f} steps per tile < {R} rows)")
    if eff < 0.9:
        reasons.append(f"padding (K/pixel/channel: {100 * eff:.0f}% of array steps useful)")
    if not reasons and busy < 0.9:
        reasons.append(f"issue/hazard stalls (array busy {100 * busy:.0f}%)")
    return "; ".join(reasons) or "ok"


def padding_bound(rec: dict) -> float | None:
    """Utilization if every cycle were an array step of a MAC layer: ideal / sum of the layers' steps
    (DENSE/DEPTHWISE steps include K, pixel and channel padding; pooling layers count 0)."""
    lay = rec.get("layers") or []
    steps = sum(lr["steps"] for lr in lay if lr["macs"])
    return rec["ideal_cycles"] / steps if steps else None


def top_losses(layers: list[dict], n: int = 6) -> list[dict]:
    """The n layers that lose the most cycles to the ideal (cycles - MACs / (R*C)), with what limits them:
    what a scaling row needs to say why a larger array stops paying off."""
    lost = sorted(layers, key=lambda lr: (lr["cycles"] or 0) - lr["ideal"], reverse=True)[:n]
    return [dict(name=lr["name"], kind=lr["kind"], cycles=lr["cycles"], ideal=round(lr["ideal"]),
                 lost=round((lr["cycles"] or 0) - lr["ideal"]), utilization=lr["utilization"], limit=lr["limit"])
            for lr in lost]

"""Bounded resources: estimate the memory a run needs before allocating it, and refuse clearly when it would not fit.

The estimate is measured, not guessed: for a batch above PROBE_ABOVE the same model is
compiled and simulated for two small batches under ``tracemalloc`` and the per-image
growth is extrapolated (compiler work items, memory images, golden tensors all grow
linearly with the batch).
"""

from __future__ import annotations

import os
import re
import tracemalloc

from f8hw.errors import F8Error

__all__ = ["default_max_memory", "parse_size", "estimate_run_bytes", "check_run_memory", "PROBE_ABOVE"]

PROBE_ABOVE = 32          # batches up to this size are not probed (they fit any machine f8hw runs on)
SAFETY = 1.5              # headroom over the measured estimate (allocator overhead, Python objects)


class ResourceError(F8Error):
    """A run would need more memory than allowed; the message names the limit and the flag."""


def default_max_memory() -> int:
    """Half of the memory available now (MemAvailable), or of the physical memory where that is unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def parse_size(text: str) -> int:
    """'8G', '512M', '2.5GB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", str(text), flags=re.I)
    if not m:
        raise F8Error(f"--max-memory: expected a size like 8G or 512M, got {text!r}")
    return int(float(m.group(1)) * 1024 ** "BKMGT".index((m.group(2) or "B").upper()))


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def estimate_run_bytes(model, arch, batch: int, options: dict | None = None) -> int:
    """Peak bytes of compile + ISA simulation + golden model for ``batch`` images (extrapolated from 2 and 4, after a warm-up run of 1)."""
    from f8hw.flow.program import compile
    from f8hw.flow.run import simulate

    # a first run outside the measurement: one-time imports and caches are not per-image growth
    simulate(compile(model, arch, batch=1, use_cache=False, **(options or {})), engine="isa", race_check=False)
    peaks = []
    for b in (2, 4):
        tracemalloc.start()
        try:
            prog = compile(model, arch, batch=b, use_cache=False, **(options or {}))
            simulate(prog, engine="isa", race_check=False)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    slope = max(peaks[1] - peaks[0], 0) / 2
    return int(SAFETY * (peaks[0] + slope * (batch - 2)))


def check_run_memory(model, arch, batch: int, max_bytes: int | None = None, options: dict | None = None,
                     log=None) -> int | None:
    """Refuse (ResourceError) a batch whose run would need more than ``max_bytes``; returns the estimate, or None
    for batches too small to need one."""
    if batch <= PROBE_ABOVE:
        return None
    limit = default_max_memory() if max_bytes is None else max_bytes
    if log:
        log(f"estimating the memory of a batch of {batch} (probe runs of 2 and 4 images)")
    need = estimate_run_bytes(model, arch, batch, options)
    if need > limit:
        per = need / batch
        fits = max(int(limit / per), 1)
        raise ResourceError(f"batch {batch} needs about {_gb(need)} of memory, over the limit of {_gb(limit)} "
                            f"(--max-memory); about {fits} images fit: use --batch {fits} or raise --max-memory")
    return need

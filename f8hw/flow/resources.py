"""Bounded resources: estimate the memory a run needs before allocating it; a batch that would not fit runs in
chunks that do (f8hw.flow.chunks), and a run that cannot fit even one image is refused clearly.

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

__all__ = ["default_max_memory", "parse_size", "memory_model", "fitting_batch", "PROBE_ABOVE"]

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


def memory_model(model, arch, options: dict | None = None) -> tuple[float, float]:
    """(peak bytes at 2 images, growth per image) of compile + ISA simulation + golden model, measured at 2 and
    4 images after a warm-up run of 1; a batch b needs about SAFETY * (peak + growth * (b - 2))."""
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
    return float(peaks[0]), max(peaks[1] - peaks[0], 0) / 2


def fitting_batch(model, arch, batch: int, max_bytes: int | None = None, options: dict | None = None,
                  log=None) -> int:
    """The batch to run ``batch`` images in: ``batch`` itself when it fits ``max_bytes`` (default: half the
    available memory) or is too small to need an estimate, else the largest that fits; ResourceError when
    not even one image fits."""
    if batch <= PROBE_ABOVE:
        return batch
    limit = default_max_memory() if max_bytes is None else max_bytes
    if log:
        log(f"estimating the memory of a batch of {batch} (probe runs of 2 and 4 images)")
    peak, per_image = memory_model(model, arch, options)

    def need(b: int) -> float:
        return SAFETY * (peak + per_image * (b - 2))

    if need(batch) <= limit:
        return batch
    if need(1) > limit:
        raise ResourceError(f"one image needs about {_gb(need(1))} of memory, over the limit of {_gb(limit)} "
                            f"(--max-memory): raise --max-memory")
    fits = min(batch, int((limit / SAFETY - peak) / per_image) + 2)
    if log:
        log(f"batch {batch} needs about {_gb(need(batch))}, over {_gb(limit)} (--max-memory): "
            f"running it as programs of {fits} images")
    return fits

"""Where and when the benchmark figures were measured: machine, commit, date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

__all__ = ["machine_info", "annotation"]

HERE = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def machine_info() -> dict:
    """Where and when the figures were measured (read-only git queries)."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    dirty = None
    if commit:
        st = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(st) if st is not None else None
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "python": platform.python_version(),
        "commit": commit,
        "dirty": dirty,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def annotation(meta: dict) -> dict:
    """The {machine, commit, date} stamp every benchmark record carries."""
    commit = meta.get("commit") or "unknown"
    if meta.get("dirty"):
        commit += "+dirty"
    return {"machine": f"{platform.system()} {meta['machine']}, {meta['cpu_count']} cpus", "commit": commit,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}

"""The benchmark's networks: the bundled digits models and the zoo (random calibrated weights, cached)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

__all__ = ["ZOO_NETS", "BUNDLED_NETS", "model_path", "input_images"]

ZOO_NETS = ["resnet20", "resnet18", "resnet50", "mobilenetv2"]
BUNDLED_NETS = ["cnn", "resnet", "mobilenet"]


def _zoo_fingerprint() -> str:
    """Hash of the sources that define a zoo export (a changed model definition re-exports)."""
    import f8hw

    h = hashlib.sha256(f8hw.__version__.encode())
    root = Path(f8hw.__file__).parent
    for f in [root / "models.py", root / "exporter.py", root / "ir.py",
              *sorted((root / "numerics").glob("*.py")),
              *sorted((root / "nn").glob("*.py"))]:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def model_path(name: str, seed: int = 0, log=None) -> tuple[Path, float | None]:
    """(model file, export seconds or None if cached): bundled models from the package, zoo models exported
    once with random calibrated weights and cached (f8hw.paths, kind "zoo")."""
    from f8hw.flow import bundled_path

    if name in BUNDLED_NETS:
        return bundled_path(name), None
    from f8hw.models import ARCHS, export_random
    from f8hw.paths import cache_dir

    if name not in ARCHS:
        raise F8Error(f"unknown network {name!r} (known: {', '.join(BUNDLED_NETS + list(ARCHS))})")
    d = cache_dir("zoo")
    p = d / f"{name}-seed{seed}-{_zoo_fingerprint()}.pt"
    if p.is_file():
        return p, None
    d.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"exporting zoo model {name} (random weights, calibrated; cached in {d})")
    t0 = time.perf_counter()
    tmp = p.with_suffix(f".tmp{os.getpid()}.pt")
    export_random(name, str(tmp), seed=seed)
    os.replace(tmp, p)
    return p, time.perf_counter() - t0


def input_images(model, seed: int = 0, batch: int = 1) -> tuple[np.ndarray, str]:
    """``batch`` input images: the first digits test images for a digits model, else random ones (``seed``)."""
    from f8hw.flow import resolve_images

    if model.input_shape == (1, 8, 8):
        return resolve_images(None, model.input_shape, batch)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(batch, *model.input_shape), dtype=np.uint8)
    return x, f"random image{'s' if batch > 1 else ''} (seed {seed})"

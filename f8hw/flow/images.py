"""Input images for a run: arrays, .npy / .png files, or sensible defaults (digits test images, random).

Every result is uint8 (N, C, H, W) in the model's input shape; a wrong shape,
dtype or count is a one-line error naming the file (or "images").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from f8hw.errors import F8Error

__all__ = ["resolve_images", "default_images", "read_image_file"]


def default_images(shape: tuple[int, int, int], batch: int) -> tuple[np.ndarray, str]:
    """Digits test images for a 1x8x8 model, else random images (seed 0); with a description."""
    if tuple(shape) == (1, 8, 8):
        from f8hw import digits

        imgs = digits.load()["test"][0]
        if batch > len(imgs):
            raise F8Error(f"batch {batch}: the digits test split has {len(imgs)} images")
        return np.ascontiguousarray(imgs[:batch]), f"digits test images 0..{batch - 1}"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(batch, *shape), dtype=np.uint8), "random images (seed 0)"


def read_image_file(path, shape: tuple[int, int, int]) -> np.ndarray:
    """Images (N, C, H, W) uint8 from a .npy (uint8 (N,C,H,W) or (C,H,W)) or a .png file."""
    p = Path(path)
    if not p.is_file():
        raise F8Error(f"input {path}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(p, allow_pickle=False)
        except ValueError as e:
            if "allow_pickle" in str(e):  # never pass on numpy's advice to load it unsafely
                raise F8Error(f"input {path}: holds Python objects, not a uint8 image array") from None
            raise F8Error(f"input {path}: cannot read .npy ({str(e).splitlines()[0]})") from None
        except Exception as e:
            raise F8Error(f"input {path}: cannot read .npy ({type(e).__name__})") from None
        if x.dtype != np.uint8:
            raise F8Error(f"input {path}: images must be uint8, got {x.dtype}")
        return x[None] if x.ndim == 3 else x
    if suffix == ".png":
        return _png(p, shape)[None]
    raise F8Error(f"input {path}: expected a .npy or .png file")


def _png(p: Path, shape) -> np.ndarray:
    import matplotlib.image as mpimg

    try:
        img = mpimg.imread(p)
    except Exception as e:
        raise F8Error(f"input {p}: cannot read PNG ({e})") from None
    if img.dtype != np.uint8:
        img = np.clip(np.round(np.asarray(img, np.float64) * 255), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if shape[0] == 1 and img.shape[2] in (3, 4):
        img = np.round(img[:, :, :3].astype(np.float64).mean(axis=2, keepdims=True)).astype(np.uint8)
    elif shape[0] == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    return img.transpose(2, 0, 1)


def resolve_images(images, shape: tuple[int, int, int], batch: int | None) -> tuple[np.ndarray, str]:
    """(uint8 (batch, C, H, W), description) from ``images``: None (defaults), an array, a path or a list of paths.

    ``batch``: the number of images wanted (None: all given); more given than wanted are cut, fewer are an error."""
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise F8Error(f"batch must be a positive integer, got {batch!r}")
    if images is None:
        return default_images(shape, batch or 1)
    if isinstance(images, (str, os.PathLike)):
        x, what = read_image_file(images, shape), os.fspath(images)
    elif isinstance(images, (list, tuple)) and images and all(isinstance(i, (str, os.PathLike)) for i in images):
        x = np.concatenate([read_image_file(i, shape) for i in images])
        what = f"{len(images)} files"
    else:
        x = np.asarray(images)
        what = "images"
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.integer) or x.size and (x.min() < 0 or x.max() > 255):
                raise F8Error(f"images: expected uint8 pixels (0..255), got dtype {x.dtype}")
            x = x.astype(np.uint8)
        if x.ndim == 3:
            x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise F8Error(f"{what}: images have shape {tuple(x.shape)}, the model wants (N, {', '.join(map(str, shape))})")
    if batch is not None and len(x) < batch:
        raise F8Error(f"{what}: holds {len(x)} image(s), the batch is {batch}")
    n = batch or len(x)
    return np.ascontiguousarray(x[:n]), f"{what} images 0..{n - 1}" if what != "images" else f"{n} given images"

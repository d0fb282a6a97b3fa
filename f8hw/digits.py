"""The bundled dataset: scikit-learn's digits (1,797 8x8 images, 10 classes), as uint8 images.

Pixel mapping (defined once, here): sklearn value v in 0..16 -> p = min(16 * v, 255),
one channel; the first layer reads p at unsigned FL 8.  The split is fixed:
a numpy RandomState(0) permutation, the first TEST_SIZE images are the test split.
"""

from __future__ import annotations

import numpy as np

TEST_SIZE = 360
SPLIT_SEED = 0


def pixels(values: np.ndarray) -> np.ndarray:
    """sklearn digits values (0..16) -> uint8 pixels min(16 v, 255)."""
    return np.minimum(np.asarray(values, dtype=np.int64) * 16, 255).astype(np.uint8)


def load() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "test": (images, labels)}; images uint8 (N, 1, 8, 8), labels int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = pixels(data.images).reshape(-1, 1, 8, 8)
    labels = data.target.astype(np.int64)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
    test, train = order[:TEST_SIZE], order[TEST_SIZE:]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}

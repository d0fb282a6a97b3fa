"""The optional ONNX dependencies: one place that says how to get them."""

from __future__ import annotations

from f8hw.errors import F8Error

__all__ = ["INSTALL_HINT", "require_onnx"]

INSTALL_HINT = "pip install 'f8hw[onnx]'"


def require_onnx(what: str = "ONNX interchange") -> None:
    """Raise a one-line F8Error unless onnx and qonnx import (they are an optional extra)."""
    try:
        import onnx  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as e:
        raise F8Error(f"{what} needs the optional ONNX packages ({e.name} is missing): {INSTALL_HINT}") from None

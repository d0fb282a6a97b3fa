"""f8hw: generator, compiler and bit-exact simulator for F8Net 8-bit fixed-point accelerators.

Kept light on purpose: importing f8hw must not import torch or amaranth.
"""

__version__ = "0.1.0"


def export(model, example_input, path, meta=None):
    """Export a trained f8hw.nn model to the integer model file (see f8hw.exporter.export)."""
    from f8hw.exporter import export as _export

    return _export(model, example_input, path, meta=meta)

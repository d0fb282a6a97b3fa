"""f8hw: generator, compiler and bit-exact simulator for F8Net 8-bit fixed-point accelerators.

Kept light on purpose: importing f8hw must not import torch or amaranth.
"""

__version__ = "0.1.0"

"""Compiler error type."""

from f8hw.errors import F8Error


class CompileError(F8Error):
    """A model cannot be compiled for the target configuration.

    The message always names the layer (IR node) and the reason; the compiler
    never falls back to the host.
    """

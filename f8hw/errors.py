"""Error types of f8hw.

Every user-facing failure is an ``F8Error``; the CLI prints it as one line
(``error: ...``) with exit code 2, no traceback.  Messages name the thing that
is wrong (the node, the file, the layer) so the user can act on them.
"""


class F8Error(Exception):
    """Base class of every error f8hw reports to its user."""


class GraphError(F8Error):
    """An integer graph is invalid; the message always names the node."""


class AccumulatorOverflowError(GraphError):
    """A layer's 32-bit accumulator can (or did) overflow; names the node."""


class ModelFileError(F8Error):
    """A model file cannot be loaded or saved; the message names the file."""


class FormatError(F8Error):
    """An unknown number format, a code that is not a finite value, or a scale out of range."""

"""Where f8hw keeps what it can rebuild: one cache root for compiles, synthesis, simulator builds and zoo models.

The root is ``$F8HW_CACHE`` when set, else the platform's user cache directory
(``platformdirs.user_cache_dir("f8hw")``: ``$XDG_CACHE_HOME/f8hw`` or
``~/.cache/f8hw`` on Linux).  Each kind of entry has its own subdirectory
(``cache_dir("compiled")``, ``"synth"``, ``"sim"``, ``"zoo"``); everything in it
can be deleted at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root", "cache_dir"]

CACHE_ENV = "F8HW_CACHE"


def cache_root() -> Path:
    """The cache root: ``$F8HW_CACHE`` or the user cache directory of f8hw."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("f8hw", appauthor=False))


def cache_dir(kind: str) -> Path:
    """The cache subdirectory for one kind of entry (not created here)."""
    return cache_root() / kind

"""A spinner with the elapsed time on stderr while a long step (build, simulation) runs."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["status"]


@contextlib.contextmanager
def status(label: str, enabled: bool | None = None, delay: float = 1.0) -> Iterator[None]:
    """Show ``label`` with a spinner and the elapsed time (rich) until the block ends.

    Silent unless stderr is a terminal (or F8HW_PROGRESS=1); shows up only after ``delay``
    seconds so short steps stay quiet, and leaves nothing behind.
    """
    if enabled is None:
        enabled = sys.stderr.isatty() or os.environ.get("F8HW_PROGRESS") == "1"
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                   console=Console(stderr=True, force_terminal=True), transient=True)
    bar.add_task(label, total=None)
    lock = threading.Lock()
    state = {"shown": False, "closed": False}

    def show() -> None:
        with lock:
            if not state["closed"]:
                bar.start()
                state["shown"] = True

    timer = threading.Timer(delay, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["closed"] = True
            if state["shown"]:
                bar.stop()

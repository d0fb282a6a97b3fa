"""Writing outputs all or nothing: a failure leaves no half-written file and no half-set of files."""

from __future__ import annotations

import os
from pathlib import Path

from f8hw.errors import F8Error

__all__ = ["write_files", "write_text", "OutputError"]


class OutputError(F8Error):
    """An output cannot be written; the message names the path."""


def write_files(outdir, files: dict[str, bytes]) -> dict[str, str]:
    """Write every ``name -> bytes`` into ``outdir``: all to temporary names first, then renamed into place."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir}: exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{outdir}: cannot create the directory ({e.strerror or e})") from None
    for name in files:
        if (outdir / name).is_dir():
            raise OutputError(f"{outdir / name}: is a directory, cannot write the file {name}")
    temps: dict[str, Path] = {}
    try:
        for name, data in files.items():
            tmp = outdir / f".{name}.tmp{os.getpid()}"
            tmp.write_bytes(data)
            temps[name] = tmp
        for name, tmp in temps.items():
            os.replace(tmp, outdir / name)
    except OSError as e:
        raise OutputError(f"{outdir}: cannot write ({e.strerror or e})") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return {name: str(outdir / name) for name in files}


def write_text(path, text: str) -> None:
    """Write one text file atomically (a temporary name in the same directory, then renamed)."""
    p = Path(path)
    write_files(p.parent, {p.name: text.encode()})

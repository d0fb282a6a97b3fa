"""The f8hw command line.

Each subcommand lives in ``f8hw.commands.<name>`` and provides
``register(subparsers)``, which adds its parser and sets ``func(args) -> int | None``.
To add a command, write its module and append its name to COMMANDS.
Errors of type F8Error are printed as one line ``error: ...``, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from f8hw import __version__
from f8hw.errors import F8Error

COMMANDS = ["analyze", "demo", "train", "zoo", "inspect", "compile", "sim", "bench", "build"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="f8hw",
        description="Generator, compiler and bit-exact simulator for F8Net 8-bit fixed-point accelerators.",
    )
    parser.add_argument("--version", action="version", version=f"f8hw {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"f8hw.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except F8Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The f8hw command line.

Each subcommand lives in ``f8hw.commands.<name>`` and provides
``register(subparsers)``, which adds its parser and sets ``func(args) -> int | None``.
Commands parse arguments, call the library (``f8hw.flow`` and friends) and print.
To add a command, write its module and append its name to COMMANDS (and to _MODULES when the
module is named differently).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from f8hw import __version__
from f8hw.errors import F8Error

COMMANDS = ["analyze", "demo", "train", "zoo", "inspect", "compile", "sim", "bench", "build", "sweep", "import", "export-onnx"]
_MODULES = {"import": "import_onnx", "export-onnx": "export_onnx"}
"""Commands whose module name is not the command name (``import`` is a keyword)."""

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
EXIT_CODES = f"""exit status:
  {EXIT_OK}  ok
  {EXIT_CHECK_FAILED}  a check failed (a simulated layer differs from the golden model, RTL differs from the ISA
     simulator, a benchmark measurement failed)
  {EXIT_USAGE}  usage error (bad command line)
  {EXIT_ERROR}  bad input or tool failure (one line "error: ..." naming the file, layer or field)"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="f8hw",
        description="Generator, compiler and bit-exact simulator for F8Net 8-bit fixed-point accelerators.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"f8hw {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"f8hw.commands.{_MODULES.get(name, name)}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (EXIT_CODES)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except F8Error as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

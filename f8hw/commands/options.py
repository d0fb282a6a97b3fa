"""Command-line options shared by several commands (parsing only)."""

from __future__ import annotations

from pathlib import Path

from f8hw.errors import F8Error


def add_compiler_options(p) -> None:
    """The compiler's options (f8hw sim and f8hw compile)."""
    p.add_argument("--pack-input", action="store_true",
                   help="let the host write a narrow stem's input (e.g. 3 channels) as that layer's im2col "
                        "matrix: fewer A loads for the stem; the input itself is then not readable back")
    p.add_argument("--no-gather", action="store_true",
                   help="do not use LOAD_A tap gather for narrow tensors (on by default: C // Cin taps per A line)")
    p.add_argument("--no-diag", action="store_true",
                   help="do not use LOAD_A window reuse for depthwise and max-pooling layers (on by default "
                        "where it is faster)")
    p.add_argument("--no-lbuf", action="store_true",
                   help="do not keep depthwise and max-pooling windows in a line buffer across tiles (on by "
                        "default with window reuse where it is faster: each tile loads only its new input rows)")
    p.add_argument("--no-fold", action="store_true",
                   help="at batch > 1, keep 1x1 layers' pixel tiles inside one image (by default they run across "
                        "the batch's images as one map)")


def compiler_options(args) -> dict:
    """Keyword options of f8hw.compile from the parsed arguments."""
    return dict(pack_input=args.pack_input, gather=not args.no_gather, diag=not args.no_diag, fold=not args.no_fold,
                lbuf=not args.no_lbuf)


def add_memory_options(p) -> None:
    """Main / instruction memory sizes of the target (f8hw sim and f8hw compile)."""
    p.add_argument("--mem-words", type=int, default=None,
                   help="main-memory words (power of two; default: the ArchConfig default, grown to fit the model)")
    p.add_argument("--imem-depth", type=int, default=None,
                   help="instruction-memory words (power of two; default: the ArchConfig default, grown to fit "
                        "the program)")


def add_formats_option(p) -> None:
    """The accelerator's operand/output formats (f8hw compile, sim, build)."""
    p.add_argument("--formats", default="int8", metavar="LIST",
                   help="formats the accelerator supports, INT8 first, e.g. int8,e2m5,e3m4,e4m3 (default: "
                        "%(default)s; every engine and f8hw build)")


def formats_of(args) -> tuple[str, ...]:
    from f8hw.arch import parse_formats

    return parse_formats(args.formats)


def arch_and_policy(args):
    """(ArchConfig, memories policy): memories the user sized are kept as given, defaults grow to fit."""
    from f8hw.arch import ArchConfig, parse_array

    rows, cols = parse_array(args.array)
    extra = {k: v for k, v in (("mem_words", args.mem_words), ("imem_depth", args.imem_depth)) if v is not None}
    return ArchConfig(rows=rows, cols=cols, formats=formats_of(args), **extra), ("fixed" if extra else "grow")


def writable(path: str | None, what: str, suffixes: tuple[str, ...] = ()) -> None:
    """Check before any long work that ``path`` can be written (its directory exists; right suffix)."""
    if path is None:
        return
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise F8Error(f"{what} {path}: expected a {' or '.join(suffixes)} file")
    if p.is_dir():
        raise F8Error(f"{what} {path}: is a directory")
    if not p.parent.is_dir():
        raise F8Error(f"{what} {path}: directory {p.parent} does not exist")

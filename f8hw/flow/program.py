"""Compiling a model for an accelerator configuration: cached on disk, memories sized to fit.

Memory policies (``memories=``):

- ``"grow"`` (default): the given main / instruction memory sizes, grown to the
  next power of two that fits when the model needs more;
- ``"fit"``: exactly the next power of two of what the program needs (what the
  benchmark reports: the smallest accelerator memories that run the model);
- ``"fixed"``: the sizes as given; a model that does not fit is an error.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from f8hw.errors import F8Error

__all__ = ["Program", "compile", "next_pow2", "MEMORY_POLICIES", "COMPILER_OPTIONS"]

MEMORY_POLICIES = ("grow", "fit", "fixed")
COMPILER_OPTIONS = {"pack_input": False, "gather": True, "diag": True, "fold": True, "lbuf": True}
"""Keyword options of the compiler and their defaults (f8hw.compiler.compile_model)."""

_GROWABLE = ("mem_words", "imem_depth")


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (and >= 2)."""
    return 1 << max(1, (int(n) - 1).bit_length())


@dataclass
class Program:
    """A model compiled for one accelerator: the instruction stream, memory image and symbols.

    ``compiled`` is the compiler's ``Compiled`` (program, memory, symbols, layers, save());
    ``arch`` the configuration it was compiled for (memories as sized)."""

    model: object                 # f8hw.flow.Model
    compiled: object              # f8hw.compiler.Compiled
    batch: int
    options: dict
    compile_time: float
    cached: bool
    grown: dict = field(default_factory=dict)   # memory -> (asked, used) when a memory was grown

    @property
    def arch(self):
        """The ArchConfig the program was compiled for."""
        return self.compiled.arch

    @property
    def instructions(self) -> int:
        """Number of instruction words."""
        return len(self.compiled.program)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole batch."""
        return sum(int(li.macs) for li in self.compiled.layers)

    def save(self, outdir) -> dict[str, str]:
        """Write program (bin/hex/listing), memory image and symbols into ``outdir``; returns the paths."""
        return self.compiled.save(str(outdir))

    def to_dict(self) -> dict:
        """The summary as plain data (what ``f8hw compile --json`` prints)."""
        a = self.arch
        return dict(model=self.model.name, array=a.array, batch=self.batch, options=dict(self.options),
                    instructions=self.instructions, memory_words=int(len(self.compiled.memory)),
                    mem_words=a.mem_words, imem_depth=a.imem_depth, macs=self.macs,
                    ideal_cycles=self.macs / (a.rows * a.cols), cached=self.cached,
                    grown={k: list(v) for k, v in self.grown.items()},
                    input_packing=(self.compiled.symbols.get("input_packing") or {}).get("layer"),
                    layers=[dict(name=li.name, kind=li.kind, op=li.op, macs=int(li.macs), tiles=dict(li.tiles))
                            for li in self.compiled.layers])

    def to_json(self) -> str:
        """to_dict() as JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    def __repr__(self) -> str:
        return (f"Program({self.model.name!r} on {self.arch.array}, batch {self.batch}: {self.instructions} "
                f"instructions, {len(self.compiled.memory)} memory words, {len(self.compiled.layers)} layers)")


def _compiler_fingerprint() -> str:
    """Hash of the compiler's and the ISA's sources: a changed compiler never reuses a stale cache entry."""
    import f8hw

    h = hashlib.sha256(f8hw.__version__.encode())
    root = Path(f8hw.__file__).parent
    for f in sorted((root / "compiler").glob("*.py")) + [root / "isa.py", root / "arch.py",
                                                      *sorted((root / "numerics").glob("*.py"))]:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _cache_key(model_key: str, arch, batch: int, options: dict) -> str:
    h = hashlib.sha256(model_key.encode())
    h.update(json.dumps(arch.to_dict(), sort_keys=True).encode())
    h.update(f"batch={batch} options={json.dumps(options, sort_keys=True)}".encode())
    h.update(_compiler_fingerprint().encode())
    return h.hexdigest()[:24]


def _compile_cached(model, arch, batch: int, options: dict, use_cache: bool, log):
    """(Compiled, cached) for exactly ``arch``: from the cache when an entry exists, else compiled and stored."""
    from filelock import FileLock

    from f8hw.compiler import Compiled, compile_model
    from f8hw.paths import cache_dir

    if not use_cache:
        return compile_model(model.graph, arch, batch=batch, **options), False
    key = _cache_key(model.key, arch, batch, options)
    root = cache_dir("compiled")
    d = root / key
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{key}.lock")):
        if (d / ".complete").exists():
            try:
                comp = Compiled.load(str(d))
                if log:
                    log(f"using cached compilation {d}")
                return comp, True
            except F8Error:  # a stale or damaged entry: compile again
                pass
        comp = compile_model(model.graph, arch, batch=batch, **options)
        comp.save(str(d))
        (d / ".complete").write_text(key)
    return comp, False


def _needed(model, arch, batch: int, options: dict) -> dict[str, int]:
    """Main / instruction memory words the program needs (compiled against the largest legal memories)."""
    from f8hw.arch import ADDR_BITS
    from f8hw.compiler import compile_model

    probe = compile_model(model.graph, replace(arch, mem_words=1 << ADDR_BITS, imem_depth=1 << 24), batch=batch,
                          **options)
    # +1: the fetch of the word after END stays inside the instruction memory
    return {"mem_words": next_pow2(len(probe.memory)), "imem_depth": next_pow2(len(probe.program) + 1)}


def compile(model, arch=None, batch: int = 1, *, memories: str = "grow", use_cache: bool = True,
            log=None, **options) -> Program:
    """Compile ``model`` (anything ``f8hw.load`` takes) for ``arch`` (an ArchConfig; default 16x16).

    ``memories``: "grow" | "fit" | "fixed" (module docstring); ``options``: the compiler's
    (``pack_input``, ``gather``, ``diag``, ``fold``, ``lbuf``; see COMPILER_OPTIONS).  Cached on disk
    (f8hw.paths, kind "compiled") by model content, configuration, batch, options and compiler sources."""
    from f8hw.arch import ArchConfig
    from f8hw.compiler import CompileError
    from f8hw.flow.model import load

    model = load(model)
    arch = arch if arch is not None else ArchConfig()
    if not isinstance(arch, ArchConfig):
        raise F8Error(f"arch must be an f8hw.ArchConfig, got {type(arch).__name__}")
    if memories not in MEMORY_POLICIES:
        raise F8Error(f"memories must be one of {', '.join(MEMORY_POLICIES)}, got {memories!r}")
    unknown = sorted(set(options) - set(COMPILER_OPTIONS))
    if unknown:
        raise F8Error(f"unknown compiler option(s) {', '.join(unknown)} (known: {', '.join(COMPILER_OPTIONS)})")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise F8Error(f"batch must be a positive integer, got {batch!r}")
    options = {**COMPILER_OPTIONS, **options}
    t0 = time.perf_counter()
    grown = {}
    if memories == "fit":
        need = _needed(model, arch, batch, options)
        arch = replace(arch, **need)
        comp, cached = _compile_cached(model, arch, batch, options, use_cache, log)
    else:
        try:
            comp, cached = _compile_cached(model, arch, batch, options, use_cache, log)
        except CompileError:
            if memories == "fixed":
                raise
            need = _needed(model, arch, batch, options)
            bigger = {k: max(getattr(arch, k), need[k]) for k in _GROWABLE}
            grown = {k: (getattr(arch, k), v) for k, v in bigger.items() if v != getattr(arch, k)}
            if not grown:
                raise
            if log:
                log("model does not fit the memories: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in grown.items()))
            arch = replace(arch, **bigger)
            comp, cached = _compile_cached(model, arch, batch, options, use_cache, log)
    return Program(model, comp, batch, options, time.perf_counter() - t0, cached, grown)

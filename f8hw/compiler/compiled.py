"""The compiler's product: program + memory image + symbol table (Compiled)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from f8hw import isa
from f8hw.arch import ArchConfig
from f8hw.compiler.errors import CompileError


@dataclass
class LayerInfo:
    name: str
    op: str
    kind: str
    macs: int             # real MACs of the IR node for the whole batch (0 for maxpool / GAP)
    mark_slot: int
    refs: list[str]
    tiles: dict = field(default_factory=dict)


def _hex_lines(memory: np.ndarray) -> str:
    # one line per word; byte c at bits [8c+7:8c] => reversed byte order in the hex text
    return "".join(bytes(row[::-1]).hex() + "\n" for row in memory)


class Compiled:
    """A compiled model.

    Attributes: arch, program (list[int]), memory (uint8 (words, cols)), batch,
    layers (list[LayerInfo]), listing (str), symbols (dict: buffers, views,
    input/output refs).  Methods: write_inputs, read_tensor, readable, save, load.
    """

    def __init__(self, arch: ArchConfig, program: list[int], memory: np.ndarray, symbols: dict,
                 layers: list[LayerInfo], listing):
        self.arch = arch
        self.program = list(program)
        self.memory = memory
        self.symbols = symbols
        self.layers = layers
        self._listing = listing  # str, or a callable producing it (built on first use)
        self.batch = symbols["batch"]

    @property
    def listing(self) -> str:
        """Human-readable assembly (layer names as comments)."""
        if callable(self._listing):
            self._listing = self._listing()
        return self._listing

    # ------------------------------------------------------------ tensors
    @property
    def input_ref(self) -> str:
        return self.symbols["input"]

    @property
    def output_ref(self) -> str:
        return self.symbols["output"]

    def readable(self, ref: str) -> bool:
        """Whether ref's data is still intact at the end of a run (buffer not reused)."""
        if self.symbols.get("input_packing") and ref in self.symbols["views"] and \
                self.symbols["views"][ref]["buffer"] == self.input_ref:
            return False  # written by the host as an im2col matrix (lower.pack_input)
        return ref in self.symbols["views"] and self.symbols["views"][ref]["buffer"] in self.symbols["intact"]

    def write_inputs(self, memory: np.ndarray, images: np.ndarray) -> None:
        """Write uint8 NCHW images (N <= batch) into their input slots (channels blocked, pad 0).

        With input packing (symbols["input_packing"], lower.pack_input) each image is written as the
        stem's im2col matrix (KH*KW*Cin, OH, OW) instead."""
        images = np.asarray(images)
        buf = self.symbols["buffers"][self.input_ref]
        c, h, w = buf["shape"]
        pk = self.symbols.get("input_packing")
        if pk:
            ci, hi, wi = pk["in_shape"]
            if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (ci, hi, wi):
                raise CompileError(f"images must be uint8 (N, {ci}, {hi}, {wi}), got {images.dtype} {images.shape}")
            from f8hw.compiler.lower import im2col_image

            images = np.stack([im2col_image(img, pk) for img in images]) if len(images) else \
                np.zeros((0, c, h, w), np.uint8)
        if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (c, h, w):
            raise CompileError(f"images must be uint8 (N, {c}, {h}, {w}), got {images.dtype} {images.shape}")
        if len(images) > self.batch:
            raise CompileError(f"{len(images)} images but the program was compiled for batch {self.batch}")
        C = self.arch.cols
        cb = -(-c // C)
        for b, img in enumerate(images):
            x = np.zeros((h * w, cb * C), np.uint8)
            x[:, :c] = img.reshape(c, h * w).T
            a = buf["addr"] + b * buf["words"]
            memory[a:a + h * w * cb] = x.reshape(h * w * cb, C)

    def read_tensor(self, memory: np.ndarray, ref: str, b: int = 0) -> np.ndarray:
        """Tensor ref of batch item b, in the golden model's per-sample layout: int32 (FP8: the codes),
        int64 for a 64-bit output."""
        from f8hw.ir import canonical_ref

        ref = canonical_ref(ref)
        v = self.symbols["views"].get(ref)
        if v is None:
            raise CompileError(f"no tensor {ref!r} in this program")
        if self.symbols.get("input_packing") and v["buffer"] == self.input_ref:
            raise CompileError(f"{ref!r} is stored as the im2col matrix of layer "
                               f"{self.symbols['input_packing']['layer']!r} (input packing)")
        buf = self.symbols["buffers"][v["buffer"]]
        c, h, w = buf["shape"]
        C = self.arch.cols
        cb = -(-c // C)
        a = buf["addr"] + b * buf["words"]
        if buf["raw"]:
            pl = buf.get("planes", 4)  # byte planes: 4 (int32) or 8 (int64)
            words = np.asarray(memory[a:a + h * w * cb * pl], np.uint64).reshape(h * w * cb, pl, C)
            val = sum(words[:, j, :] << np.uint64(8 * j) for j in range(pl))
            val = val.astype(np.uint32).view(np.int32) if pl == 4 else val.view(np.int64)
            x = val.reshape(h * w, cb * C)[:, :c]
        else:
            x = np.asarray(memory[a:a + h * w * cb]).reshape(h * w, cb * C)[:, :c]
            x = x.view(np.int8) if v["signed"] and v.get("kind", "int") == "int" else x  # FP8: the codes
        t = x.T.reshape(c, h, w).astype(np.int64 if buf["raw"] and buf.get("planes", 4) == 8 else np.int32)
        return t.reshape(v["logical"])

    # ------------------------------------------------------------ files
    def save(self, outdir: str) -> dict[str, str]:
        """Program (bin, hex, listing), memory image (npy, hex) and symbols into outdir, all or nothing."""
        import io

        from f8hw.fileio import write_files

        npy = io.BytesIO()
        np.save(npy, self.memory)
        sym = dict(self.symbols, arch=self.arch.to_dict(), isa_version=isa.ISA_VERSION,
                   layers=[asdict(li) for li in self.layers])
        files = {
            "program.bin": isa.to_bytes(self.program),
            "program.hex": "".join(f"{w:0{isa.INSTR_BITS // 4}x}\n" for w in self.program).encode(),
            "memory.npy": npy.getvalue(),
            "memory.hex": _hex_lines(self.memory).encode(),
            "symbols.json": json.dumps(sym, indent=1).encode(),
            "program.s": self.listing.encode(),
        }
        paths = write_files(outdir, files)
        return {k: paths[n] for k, n in (("program", "program.bin"), ("program_hex", "program.hex"),
                                         ("memory", "memory.npy"), ("memory_hex", "memory.hex"),
                                         ("symbols", "symbols.json"), ("listing", "program.s"))}

    @classmethod
    def load(cls, outdir: str) -> "Compiled":
        try:
            with open(os.path.join(outdir, "symbols.json")) as f:
                sym = json.load(f)
            with open(os.path.join(outdir, "program.bin"), "rb") as f:
                program = isa.from_bytes(f.read())
            memory = np.load(os.path.join(outdir, "memory.npy"))
            listing = open(os.path.join(outdir, "program.s")).read()
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise CompileError(f"{outdir}: not a compiled model ({e})") from None
        arch = ArchConfig(**sym.pop("arch"))
        layers = [LayerInfo(**d) for d in sym.pop("layers")]
        sym.pop("isa_version", None)
        return cls(arch, program, memory, sym, layers, listing)

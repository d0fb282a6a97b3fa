"""What a sweep covers: a TOML spec (or flags) expanded into a grid of points.

    networks = ["cnn", "resnet20", "my_model.pt"]   # bundled, zoo, or model files
    arrays = ["4x4..16x16", "8x16"]                 # a..b: every power-of-two square between
    batches = [1]
    requant = ["shift", "dyadic"]
    [depths]                                        # scratchpad depths (ArchConfig fields)
    a_depth = [512, 1024]
    [synth]
    mode = "generic"                                # "none" | "generic" | "fpga" (+ iCE40 / ECP5 LUTs)
    area_budget = 2e6                               # optional: best configuration under this area

Unknown keys and values of the wrong type are one-line errors naming the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from f8hw.arch import ArchConfig
from f8hw.errors import F8Error

__all__ = ["Point", "SweepSpec", "SpecError", "load_spec", "spec_from_dict", "parse_arrays", "SYNTH_MODES", "DEPTHS"]

SYNTH_MODES = ("none", "generic", "fpga")
SIM_ONLY = ("mem_words", "imem_depth", "mark_depth")
"""ArchConfig sizes of the sim-only top: sized to fit each program, not swept."""
DEPTHS = tuple(f.name for f in fields(ArchConfig) if f.name.endswith("_depth") and f.name not in SIM_ONLY)
"""The scratchpad depths a spec may sweep (derived from ArchConfig)."""


class SpecError(F8Error):
    """A sweep spec is malformed; the message names the key."""


@dataclass(frozen=True)
class Point:
    """One configuration of the sweep: a network on one accelerator."""

    network: str
    rows: int
    cols: int
    batch: int = 1
    requant: str = "shift"
    depths: tuple = ()            # ((name, value), ...) sorted: the scratchpad depths that differ from defaults

    @property
    def array(self) -> str:
        return f"{self.rows}x{self.cols}"

    def arch(self):
        """The ArchConfig of this point (sim-only memories are sized to fit at compile time)."""
        from f8hw.arch import ArchConfig

        return ArchConfig(rows=self.rows, cols=self.cols, requant=self.requant, **dict(self.depths))

    def hardware(self) -> dict:
        """The parameters that define the generated Verilog (not the network or the batch)."""
        return dict(rows=self.rows, cols=self.cols, requant=self.requant, **dict(self.depths))

    def params(self) -> dict:
        """Every parameter as plain data (one CSV row's leading columns)."""
        return dict(network=self.network, array=self.array, rows=self.rows, cols=self.cols, batch=self.batch,
                    requant=self.requant, **{k: dict(self.depths).get(k) for k in DEPTHS})

    def key(self, commit: str) -> str:
        """Identity of this point's result: parameters + the code's commit (a rerun skips it)."""
        return hashlib.sha256(json.dumps([self.params(), commit], sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class SweepSpec:
    """The grid: every combination of networks, arrays, batches, requantizers and depths."""

    networks: list[str]
    arrays: list[tuple[int, int]]
    batches: list[int] = field(default_factory=lambda: [1])
    requant: list[str] = field(default_factory=lambda: ["shift"])
    depths: dict[str, list[int]] = field(default_factory=dict)
    synth: str = "generic"
    area_budget: float | None = None

    def points(self) -> list[Point]:
        """The grid in a stable order (network-major)."""
        names = sorted(self.depths)
        combos = list(itertools.product(*(self.depths[n] for n in names))) or [()]
        return [Point(net, r, c, b, rq, tuple(zip(names, d)))
                for net in self.networks for (r, c) in self.arrays for b in self.batches for rq in self.requant
                for d in combos]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arrays"] = [f"{r}x{c}" for r, c in self.arrays]
        return d


_RANGE = re.compile(r"\s*(\d+)x(\d+)\s*\.\.\s*(\d+)x(\d+)\s*")


def parse_arrays(items) -> list[tuple[int, int]]:
    """Array shapes from "RxC" strings and "AxA..BxB" ranges (every power-of-two square from A to B)."""
    from f8hw.arch import parse_array

    if isinstance(items, str):
        items = [s for s in items.split(",") if s.strip()]
    out: list[tuple[int, int]] = []
    for item in items:
        if not isinstance(item, str):
            raise SpecError(f"arrays: expected strings like '16x16' or '4x4..32x32', got {item!r}")
        m = _RANGE.fullmatch(item)
        if m:
            a, a2, b, b2 = map(int, m.groups())
            if a != a2 or b != b2 or a > b or a & (a - 1) or b & (b - 1):
                raise SpecError(f"arrays: range {item!r} must go between power-of-two squares, e.g. 4x4..32x32")
            n = a
            while n <= b:
                out.append(parse_array(f"{n}x{n}"))
                n *= 2
        else:
            out.append(parse_array(item))
    if not out:
        raise SpecError("arrays: at least one array shape is needed")
    return list(dict.fromkeys(out))


def _list(d: dict, key: str, kind, default):
    v = d.pop(key, default)
    v = [v] if isinstance(v, kind) and not isinstance(v, bool) else v
    if not isinstance(v, list) or not v or not all(isinstance(x, kind) and not isinstance(x, bool) for x in v):
        raise SpecError(f"{key}: expected a non-empty list of {kind.__name__}, got {v!r}")
    return v


def spec_from_dict(d: dict, where: str = "spec") -> SweepSpec:
    """A SweepSpec from parsed TOML / flags; every key is checked."""
    d = dict(d)
    depths = d.pop("depths", {})
    synth = d.pop("synth", {})
    if "networks" not in d or "arrays" not in d:
        raise SpecError(f"{where}: 'networks' and 'arrays' are required")
    spec = SweepSpec(networks=_list(d, "networks", str, None), arrays=parse_arrays(d.pop("arrays")),
                     batches=_list(d, "batches", int, [1]), requant=_list(d, "requant", str, ["shift"]))
    if d:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(d))} (known: networks, arrays, batches, requant, "
                        f"[depths], [synth])")
    for rq in spec.requant:
        if rq not in ("shift", "dyadic"):
            raise SpecError(f"requant: {rq!r} is not 'shift' or 'dyadic'")
    if any(b < 1 for b in spec.batches):
        raise SpecError(f"batches: must be >= 1, got {spec.batches}")
    if not isinstance(depths, dict) or not isinstance(synth, dict):
        raise SpecError(f"{where}: [depths] and [synth] must be tables")
    for k in depths:
        if k not in DEPTHS:
            raise SpecError(f"depths: unknown depth {k!r} (known: {', '.join(DEPTHS)})")
        spec.depths[k] = _list(dict(depths), k, int, None)
    synth = dict(synth)
    spec.synth = synth.pop("mode", "generic")
    if spec.synth not in SYNTH_MODES:
        raise SpecError(f"synth.mode: {spec.synth!r} is not one of {', '.join(SYNTH_MODES)}")
    budget = synth.pop("area_budget", None)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise SpecError(f"synth.area_budget: expected a positive number of cells, got {budget!r}")
    spec.area_budget = budget
    if synth:
        raise SpecError(f"synth: unknown key(s) {', '.join(sorted(synth))} (known: mode, area_budget)")
    return spec


def load_spec(path) -> SweepSpec:
    """Read a TOML sweep spec; errors name the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{path}: no such sweep spec")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: not valid TOML ({e})") from None
    try:
        return spec_from_dict(data, str(path))
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None

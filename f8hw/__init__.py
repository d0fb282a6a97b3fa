"""f8hw: generator, compiler and bit-exact simulator for F8Net 8-bit fixed-point accelerators.

The public API (docs/api.md)::

    import f8hw
    model = f8hw.load("default")                        # model file, bundled name or ir.Graph
    prog = f8hw.compile(model, f8hw.ArchConfig(rows=16, cols=16), batch=8)
    run = f8hw.simulate(prog, images, engine="isa")     # "verilator" / "icarus": the RTL
    hw = f8hw.build(prog.arch, "out/")                  # Verilog + manifest; hw.area()
    f8hw.sweep("examples/sweep.toml", "build/sweep")    # design-space sweep on Ray
    f8hw.export(trained_model, example_input, "model.pt")

Kept light on purpose: importing f8hw does not import torch or amaranth; the
names below are loaded on first use.
"""

__version__ = "0.1.0"

__all__ = ["load", "compile", "simulate", "build", "export", "ArchConfig", "Model", "Program", "Run",
           "LayerResult", "Hardware", "F8Error", "bundled_models", "sweep", "__version__"]

_LAZY = {
    "load": "f8hw.flow", "compile": "f8hw.flow", "simulate": "f8hw.flow", "build": "f8hw.flow",
    "Model": "f8hw.flow", "Program": "f8hw.flow", "Run": "f8hw.flow", "LayerResult": "f8hw.flow",
    "Hardware": "f8hw.flow", "bundled_models": "f8hw.flow", "ArchConfig": "f8hw.arch", "sweep": "f8hw.sweeps", "F8Error": "f8hw.errors",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'f8hw' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def export(model, example_input, path, meta=None):
    """Export a trained f8hw.nn model to the integer model file (see f8hw.exporter.export)."""
    from f8hw.exporter import export as _export

    return _export(model, example_input, path, meta=meta)

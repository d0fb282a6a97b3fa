"""The f8hw flow as a library: load a model, compile it, simulate it on an engine, generate the hardware.

    import f8hw
    model = f8hw.load("default")                    # a file, a bundled name or an ir.Graph
    prog = f8hw.compile(model, f8hw.ArchConfig(rows=16, cols=16), batch=8)
    run = f8hw.simulate(prog, engine="isa")          # or "verilator" / "icarus"
    hw = f8hw.build(prog.arch, "out/")

The command line, the benchmark and the tests all call these; results are
dataclasses with ``to_dict()`` / ``to_json()``.
"""

from f8hw.flow.chunks import merge_runs, simulate_in_chunks
from f8hw.flow.hardware import Hardware, build
from f8hw.flow.images import resolve_images
from f8hw.flow.model import DEFAULT_MODEL as DEFAULT_MODEL_NAME, Model, bundled_models, bundled_path, load
from f8hw.flow.program import COMPILER_OPTIONS, MEMORY_POLICIES, Program, compile, next_pow2
from f8hw.flow.report import markdown_report, mismatch_text, rich_table, summary_lines, write_plot
from f8hw.flow.run import ENGINES, RTL_ENGINES, LayerResult, Run, simulate

__all__ = ["load", "compile", "simulate", "build", "Model", "Program", "Run", "LayerResult", "Hardware",
           "bundled_models", "bundled_path", "DEFAULT_MODEL_NAME", "resolve_images", "next_pow2", "COMPILER_OPTIONS", "MEMORY_POLICIES",
           "ENGINES", "RTL_ENGINES", "simulate_in_chunks", "merge_runs", "markdown_report", "mismatch_text", "rich_table", "summary_lines", "write_plot"]

"""Accuracy of the bundled digits models per 8-bit format: FP32, PTQ and QAT for INT8, each FP8 format, flexible.

One FP32 pre-training per model (its recipe, seed 0); then for each format the
FP32 weights are quantized (f8hw.train.set_train_formats), calibrated (PTQ
accuracy), fine-tuned with QAT (QAT accuracy).  Accuracies are the exact
integer model's (f8hw.nn.integer_forward = the exported file on the golden
model).  ``python -m f8hw.format_study --json models/accuracy.json`` runs every
bundled model, prints the Markdown table and records it under "format_study".
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from dataclasses import dataclass, replace

import torch

import f8hw.nn as f8nn
from f8hw import models, train
from f8hw.fileio import write_text

STUDY_FORMATS = train.TRAIN_FORMATS[1:] + ("flexible",)
"""int8, every FP8 format, then flexible."""

SET_STUDY = (("int8", "e2m5"), ("int8", "e2m5", "e3m4"), ("int8", "e4m3"), ("int8", "e2m5", "e3m4", "e4m3"))
"""The format sets of flexible builds whose accuracy --sets measures (INT8 alone is the "int8" row of the
study; sets with E5M2 have no hardware: their accumulator exceeds the 64-bit contract)."""


def set_name(formats) -> str:
    """The name of a format choice: "int8", "flexible", or a set as "int8+e4m3"."""
    return formats if isinstance(formats, str) else "+".join(formats)


@dataclass(frozen=True)
class StudyRow:
    """Test accuracies of one format choice."""

    formats: str
    ptq: float
    qat: float
    layer_formats: dict


@dataclass(frozen=True)
class Study:
    """The FP32 accuracy and one row per format, for one model."""

    arch: str
    fp32: float
    rows: tuple[StudyRow, ...]
    test_images: int
    cpu_s: float | None = None

    def markdown(self) -> str:
        return markdown_table([self])

    @classmethod
    def from_dict(cls, arch: str, d: dict) -> "Study":
        """The inverse of to_dict (e.g. the "format_study" entries of models/accuracy.json)."""
        rows = tuple(StudyRow(f, r["ptq_test_accuracy"], r["qat_test_accuracy"],
                              {k: tuple(v) for k, v in r["layer_formats"].items()}) for f, r in d["formats"].items())
        return cls(arch, d["fp32_test_accuracy"], rows, d["test_images"], d.get("cpu_s"))

    def to_dict(self) -> dict:
        return {
            "fp32_test_accuracy": round(self.fp32, 6),
            "test_images": self.test_images,
            **({"cpu_s": round(self.cpu_s, 1)} if self.cpu_s is not None else {}),
            "formats": {r.formats: {"ptq_test_accuracy": round(r.ptq, 6), "qat_test_accuracy": round(r.qat, 6),
                                    "layer_formats": {k: list(v) for k, v in r.layer_formats.items()}}
                        for r in self.rows},
        }


def markdown_table(studies: list[Study]) -> str:
    """One row per format, a PTQ and a QAT column per model (rows in the first study's order)."""
    head = "| format | " + " | ".join(f"{s.arch} PTQ | {s.arch} QAT" for s in studies) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(studies),
             "| FP32 | " + " | ".join(f"{100 * s.fp32:.2f} % | " for s in studies) + " |"]
    for i, row in enumerate(studies[0].rows):
        cells = []
        for s in studies:
            r = s.rows[i]
            cells += [f"{100 * r.ptq:.2f} %", f"{100 * r.qat:.2f} %"]
        lines.append(f"| {row.formats} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_study(arch: str = "cnn", recipe: train.Recipe | None = None, formats=STUDY_FORMATS,
                 progress=None) -> Study:
    """Run the study (see the module docstring) for the given format choices: a name of STUDY_FORMATS, or a
    tuple of formats = the flexible selection among those candidates."""
    import time

    recipe = recipe or train.RECIPES[arch]
    cpu0 = time.process_time()
    with train.single_thread():
        pre = train.pretrain(arch, recipe, progress)
        after_fp32 = pre.gen.get_state()  # each QAT run continues the data order like f8hw train does
        rows = []
        for fmt in formats:
            model = copy.deepcopy(pre.model)
            train.set_train_formats(model, fmt, pre.calib, pre.x[:8])
            f8nn.calibrate(model, pre.calib, method=recipe.calibration)
            ptq = train.integer_accuracy(model, pre.xt, pre.yt)
            gen_q = torch.Generator()
            gen_q.set_state(after_fp32)
            train._epochs(model, pre.x, pre.y, recipe.qat_epochs, recipe.qat_lr, recipe.batch, gen_q, progress,
                          f"{arch} {set_name(fmt)} qat")
            rows.append(StudyRow(set_name(fmt), ptq, train.integer_accuracy(model, pre.xt, pre.yt), f8nn.model_formats(model)))
        return Study(arch, pre.fp32, tuple(rows), len(pre.yt), time.process_time() - cpu0)


def record(studies: list[Study], path: str, key: str = "format_study") -> None:
    """Write the studies into the JSON file at path under key (other keys are kept)."""
    table = {}
    if os.path.exists(path):
        with open(path) as f:
            table = json.load(f)
    table[key] = {**table.get(key, {}), **{s.arch: s.to_dict() for s in studies}}
    write_text(path, json.dumps(dict(sorted(table.items())), indent=2) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=models.BUNDLED, choices=models.BUNDLED,
                   help="models (default: every bundled one)")
    p.add_argument("--json", metavar="FILE", help="record the results in FILE under 'format_study' ('format_sets')")
    p.add_argument("--sets", action="store_true", help="the hardware format sets (SET_STUDY) instead of the formats")
    p.add_argument("--fp32-epochs", type=int)
    p.add_argument("--qat-epochs", type=int)
    args = p.parse_args(argv)
    studies = []
    with train.progress_bar() as progress:
        for arch in args.arch:
            recipe = train.RECIPES[arch]
            if args.fp32_epochs is not None:
                recipe = replace(recipe, fp32_epochs=args.fp32_epochs)
            if args.qat_epochs is not None:
                recipe = replace(recipe, qat_epochs=args.qat_epochs)
            studies.append(format_study(arch, recipe, formats=SET_STUDY if args.sets else STUDY_FORMATS,
                                        progress=progress))
    print(markdown_table(studies))
    for s in studies:
        print(f"\n{s.arch}: {s.cpu_s:.0f} CPU s")
        for r in s.rows:
            if r.formats == "flexible" or "+" in r.formats:
                print(f"{s.arch} {r.formats}:", ", ".join(f"{k} {i}/{w}" for k, (i, w) in r.layer_formats.items()))
    if args.json:
        record(studies, args.json, "format_sets" if args.sets else "format_study")


if __name__ == "__main__":
    main()

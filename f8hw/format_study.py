"""Accuracy of a bundled digits model per 8-bit format: FP32, PTQ and QAT for INT8, each FP8 format, flexible.

One FP32 pre-training (the arch's recipe, seed 0); then for each format the
FP32 weights are quantized (f8hw.train.set_train_formats), calibrated (PTQ
accuracy), fine-tuned with QAT (QAT accuracy).  Accuracies are the exact
integer model's (f8hw.nn.integer_forward = the exported file on the golden
model).  ``python -m f8hw.format_study --arch cnn`` prints the Markdown table.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, replace

import torch

import f8hw.nn as f8nn
from f8hw import models, train


@dataclass(frozen=True)
class StudyRow:
    """Test accuracies of one format choice."""

    formats: str
    ptq: float
    qat: float
    layer_formats: dict


@dataclass(frozen=True)
class Study:
    """The FP32 accuracy and one row per format."""

    arch: str
    fp32: float
    rows: tuple[StudyRow, ...]
    test_images: int

    def markdown(self) -> str:
        lines = [f"| {self.arch} | PTQ | QAT |", "|---|---|---|", f"| FP32 | {100 * self.fp32:.2f} % | |"]
        lines += [f"| {r.formats} | {100 * r.ptq:.2f} % | {100 * r.qat:.2f} % |" for r in self.rows]
        return "\n".join(lines)


def format_study(arch: str = "cnn", recipe: train.Recipe | None = None, formats=train.TRAIN_FORMATS[1:] + ("flexible",),
                 progress=None) -> Study:
    """Run the study (see the module docstring) for the given format choices."""
    recipe = recipe or train.RECIPES[arch]
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
                          f"{fmt} qat")
            rows.append(StudyRow(fmt, ptq, train.integer_accuracy(model, pre.xt, pre.yt), f8nn.model_formats(model)))
        return Study(arch, pre.fp32, tuple(rows), len(pre.yt))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="cnn", choices=models.BUNDLED)
    p.add_argument("--fp32-epochs", type=int)
    p.add_argument("--qat-epochs", type=int)
    args = p.parse_args(argv)
    recipe = train.RECIPES[args.arch]
    if args.fp32_epochs is not None:
        recipe = replace(recipe, fp32_epochs=args.fp32_epochs)
    if args.qat_epochs is not None:
        recipe = replace(recipe, qat_epochs=args.qat_epochs)
    study = format_study(args.arch, recipe)
    print(study.markdown())
    for r in study.rows:
        if r.formats == "flexible":
            print("\nflexible:", ", ".join(f"{k} {i}/{w}" for k, (i, w) in r.layer_formats.items()))


if __name__ == "__main__":
    main()

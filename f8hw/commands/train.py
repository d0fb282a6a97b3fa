"""f8hw train: train a bundled digits model (FP32, then F8 QAT) and export it."""

from __future__ import annotations

from f8hw.commands.options import writable
from f8hw.models import BUNDLED
from f8hw.numerics.fp8 import FORMATS

TRAIN_FORMATS = ("flexible", "int8", *FORMATS)  # f8hw.train.TRAIN_FORMATS, without importing torch here


def register(sub) -> None:
    p = sub.add_parser("train", help="train a digits model (FP32 then F8 QAT) and export the integer model file")
    p.add_argument("--arch", required=True, choices=BUNDLED, help="architecture")
    p.add_argument("-o", "--output", required=True, help="model file to write (NAME.qat.pt and accuracy.json go beside it)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--fp32-epochs", type=int, help="FP32 epochs (default: the recipe's)")
    p.add_argument("--qat-epochs", type=int, help="F8 QAT epochs (default: the recipe's)")
    p.add_argument("--formats", choices=TRAIN_FORMATS,
                   help="8-bit format of every layer, or flexible: chosen per layer from calibration error "
                        "(default: the recipe's: flexible for outlier, int8 for the others; FP8 models run on "
                        "the golden model, not the INT8 accelerator)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import replace

    from rich.console import Console

    from f8hw import train

    writable(args.output, "-o", (".pt",))  # before the long work, not after it
    recipe = replace(train.RECIPES[args.arch], seed=args.seed)
    if args.fp32_epochs is not None:
        recipe = replace(recipe, fp32_epochs=args.fp32_epochs)
    if args.qat_epochs is not None:
        recipe = replace(recipe, qat_epochs=args.qat_epochs)
    with train.progress_bar() as progress:
        model, report = train.train(args.arch, recipe, progress, args.formats)
    train.save_run(model, report, args.output)
    if "selection" in report:
        Console().print(report["selection"], markup=False, highlight=False, soft_wrap=True)
    Console().print(
        f"{args.arch}: test accuracy FP32 {100 * report['fp32_test_accuracy']:.2f}%  "
        f"F8 (integer) {100 * report['f8_test_accuracy']:.2f}%  -> {args.output}"
    )
    return 0

"""Training of the bundled digits models: FP32 pre-training, calibration, F8 QAT, export.

Deterministic for a given seed on a given machine (fixed data order from a
seeded generator, CPU kernels).  The F8 accuracy reported is the integer
model's (f8hw.nn.integer_forward, the same logits as the exported file).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import f8hw.nn as f8nn
from f8hw import digits, models
from f8hw.errors import F8Error
from f8hw.exporter import export
from f8hw.nn.fp8quant import FORMAT_NAMES

TRAIN_FORMATS = ("flexible", *FORMAT_NAMES)
"""What train(formats=...) takes: one format for every layer, or "flexible" (f8hw.nn.select_formats)."""


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run."""

    fp32_epochs: int = 40
    fp32_lr: float = 3e-3
    qat_epochs: int = 15
    qat_lr: float = 1e-4
    batch: int = 64
    calibration_batches: int = 4
    calibration: str = "sigma"
    seed: int = 0
    formats: str = "int8"
    outlier_channels: bool = False  # models.add_outlier_channels after FP32 training


RECIPES = {
    "cnn": Recipe(),
    "resnet": Recipe(),
    # QAT from a sigma calibration lost 2-3 test images here; grid calibration and a gentler fine-tune did not
    "mobilenet": Recipe(calibration="grid", qat_lr=3e-5),
    # the cnn's recipe on the cnn with outlier channels; the bundled file is the flexible choice
    "outlier": Recipe(formats="flexible", outlier_channels=True),
}
"""The recipe each bundled model file was trained with (f8hw train's defaults)."""


def _epochs(model, images, labels, epochs, lr, batch, gen, progress, label):
    opt = torch.optim.Adam(model.parameters(), lr)
    steps = epochs * ((len(labels) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    task = progress.add_task(label, total=steps) if progress else None
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=gen)
        for i in range(0, len(labels), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if progress:
                progress.update(task, advance=1, description=f"{label} loss {loss.item():.3f}")


@torch.no_grad()
def float_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of the model's float forward (whatever its mode), eval."""
    model.eval()
    return (model(images).argmax(1) == labels).double().mean().item()


def integer_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of the exact integer inference."""
    model.eval()
    logits, _ = f8nn.integer_forward(model, images)
    return (logits.argmax(1) == labels).double().mean().item()


def train(arch: str, recipe: Recipe | None = None, progress=None, formats: str | None = None) -> tuple[nn.Module, dict]:
    """Train arch on digits: FP32, calibration, then F8 QAT (default: RECIPES[arch]).  Returns (model, report).

    formats (default: the recipe's): "int8" (F8Net), one FP8 format for every layer, or "flexible": each
    layer's input and weight format chosen by f8hw.nn.select_formats after FP32 training, before
    calibration and QAT."""
    if arch not in models.BUNDLED:
        raise F8Error(f"train supports the digits architectures {', '.join(models.BUNDLED)}, not {arch!r}")
    recipe = recipe or RECIPES[arch]
    formats = formats or recipe.formats
    if formats not in TRAIN_FORMATS:
        raise F8Error(f"train formats must be one of {', '.join(TRAIN_FORMATS)}, not {formats!r}")
    with single_thread():
        return _train(arch, recipe, progress, formats)


@contextmanager
def single_thread():
    """torch on one thread: for these tiny nets a second OpenMP thread only adds barrier spinning."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class Pretrained:
    """A model after FP32 training on digits, with the data, the data-order generator and calibration batches."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    xt: torch.Tensor
    yt: torch.Tensor
    gen: torch.Generator
    fp32: float
    calib: list


def pretrain(arch: str, recipe: Recipe, progress) -> Pretrained:
    """Seeded FP32 training of arch (the first stage of every f8hw training run)."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    data = digits.load()
    x, y = (torch.from_numpy(a) for a in data["train"])
    xt, yt = (torch.from_numpy(a) for a in data["test"])
    model = models.build(arch)
    f8nn.prepare(model, x[:8])
    _epochs(model, x, y, recipe.fp32_epochs, recipe.fp32_lr, recipe.batch, gen, progress, f"{arch} fp32")
    if recipe.outlier_channels:
        models.add_outlier_channels(model)
    return Pretrained(model, x, y, xt, yt, gen, float_accuracy(model, xt, yt), calibration_batches(x, recipe))


def _train(arch: str, recipe: Recipe, progress, formats: str) -> tuple[nn.Module, dict]:
    pre = pretrain(arch, recipe, progress)
    model, x, y, xt, yt, gen, fp32, calib = (pre.model, pre.x, pre.y, pre.xt, pre.yt, pre.gen, pre.fp32, pre.calib)
    selection = set_train_formats(model, formats, calib, x[:8])
    f8nn.calibrate(model, calib, method=recipe.calibration)
    _epochs(model, x, y, recipe.qat_epochs, recipe.qat_lr, recipe.batch, gen, progress, f"{arch} f8 qat")
    report = {
        "arch": arch,
        "fp32_test_accuracy": round(fp32, 6),
        "f8_test_accuracy": round(integer_accuracy(model, xt, yt), 6),
        "test_images": len(yt),
        "recipe": _recipe_meta(recipe, formats),
    }
    if formats != "int8":  # INT8 runs keep exactly the report (and model file meta) they always had
        report["formats"] = formats
        report["layer_formats"] = {k: list(v) for k, v in f8nn.model_formats(model).items()}
    if selection is not None:
        report["selection"] = selection.table()
    return model, report


def _recipe_meta(recipe: Recipe, formats: str) -> dict:
    """The recipe as the model file records it; plain INT8 runs without the later fields, as before."""
    meta = {**vars(recipe), "formats": formats}
    if formats == "int8" and not recipe.outlier_channels:
        del meta["formats"], meta["outlier_channels"]
    return meta


def calibration_batches(images: torch.Tensor, recipe: Recipe) -> list[torch.Tensor]:
    """The recipe's calibration batches: the first 128-image slices of the training set."""
    return [images[i * 128 : (i + 1) * 128] for i in range(recipe.calibration_batches)]


def set_train_formats(model: nn.Module, formats, calib, example: torch.Tensor):
    """Give a prepared model its formats ("int8" or one FP8 format for every layer; "flexible":
    f8hw.nn.select_formats on calib; a tuple of formats: the selection among those candidates, a hardware
    set) and re-prepare it; returns the selection report or None."""
    selection = None
    if formats == "flexible":
        selection = f8nn.select_formats(model, calib)
    elif not isinstance(formats, str):
        selection = f8nn.select_formats(model, calib, candidates=tuple(formats))
    else:
        for layer in f8nn.model_formats(model):
            model.get_submodule(layer).set_format(formats, formats)
    f8nn.prepare(model, example)  # checks that every clipping group reads one format
    return selection


def bundled_file(arch: str) -> str:
    """Where arch's bundled model file lives, relative to models/: NAME.pt for the INT8 models (the
    accelerator runs every top-level file), flexible/NAME.pt for a recipe with FP8 formats."""
    return f"{arch}.pt" if RECIPES[arch].formats == "int8" else f"flexible/{arch}.pt"


def checkpoint_path(model_path: str) -> str:
    """Where the QAT checkpoint of a model file lives: NAME.qat.pt beside NAME.pt."""
    root, _ = os.path.splitext(model_path)
    return root + ".qat.pt"


def save_run(model: nn.Module, report: dict, path: str) -> None:
    """Write the integer model file, the QAT checkpoint, and the accuracy entry (accuracy.json beside)."""
    example = torch.from_numpy(digits.load()["test"][0][:1])
    export(model, example, path, meta={"arch": report["arch"], "dataset": "sklearn-digits", **_plain(report)})
    state = {"arch": report["arch"], "state_dict": model.state_dict()}
    if "layer_formats" in report:
        state["layer_formats"] = report["layer_formats"]
    torch.save(state, checkpoint_path(path))
    table_path = os.path.join(os.path.dirname(os.path.abspath(path)), "accuracy.json")
    table = {}
    if os.path.exists(table_path):
        with open(table_path) as f:
            table = json.load(f)
    table[os.path.basename(path)] = {k: report[k] for k in ("arch", "fp32_test_accuracy", "f8_test_accuracy", "test_images")}
    with open(table_path, "w") as f:
        json.dump(dict(sorted(table.items())), f, indent=2)
        f.write("\n")


def load_checkpoint(path: str) -> nn.Module:
    """Rebuild a prepared F8 model (eval) from a QAT checkpoint (weights_only loading)."""
    state = torch.load(path, weights_only=True)
    model = models.build(state["arch"])
    f8nn.prepare(model, torch.zeros((1, *models.ARCHS[state["arch"]].input_shape), dtype=torch.uint8))
    model.load_state_dict(state["state_dict"])
    if "layer_formats" in state:
        f8nn.apply_formats(model, state["layer_formats"])
        f8nn.prepare(model, torch.zeros((1, *models.ARCHS[state["arch"]].input_shape), dtype=torch.uint8))
    f8nn.set_quantized(model, True)
    return model.eval()


def _plain(report: dict) -> dict:
    return json.loads(json.dumps(report))


def progress_bar():
    """A rich progress bar on stderr (stdout is for results), or a no-op context when rich is unavailable."""
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # pragma: no cover
        return nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=Console(stderr=True))

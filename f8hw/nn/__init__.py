"""F8Net quantization-aware training layers (PyTorch).

Typical use::

    import f8hw.nn as f8nn
    model = MyNet()                          # built from f8nn.QConv2d, QLinear, QAdd, QGlobalAvgPool2d
    f8nn.prepare(model, example_images)      # trace + wire (masters, siblings, GAP fold)
    ... float pre-training ...
    f8nn.calibrate(model, a_few_batches)     # F8 mode, alphas and FLs set
    ... QAT fine-tuning (optional) ...
    model.eval(); f8nn.integer_forward(model, images)   # exactly what the exported graph computes
    import f8hw; f8hw.export(model, example_images, "model.pt")

A plain torch.nn model (Conv2d+BatchNorm2d, ReLU/ReLU6, Linear, pooling, residual +) becomes such a
model with ``f8nn.quantize(plain_model, example_images)`` (prepared, float mode: then as above).

Flexible 8-bit formats: QConv2d/QLinear take format= (input) and w_format= ("int8", "e2m5", "e3m4",
"e4m3", "e5m2"); ``f8nn.select_formats(model, batches)`` picks them per layer from calibration error.

Inputs are uint8 images (N, C, H, W); the first layer reads them at unsigned FL 8.
"""

from f8hw.nn.calibrate import calibrate, reestimate_bn
from f8hw.nn.fp8quant import FORMAT_NAMES, fp8_quant
from f8hw.nn.graph import Plan, UnsupportedOpError, integer_forward, prepare, set_quantized, trace
from f8hw.nn.layers import F8Module, QAdd, QConv2d, QGlobalAvgPool2d, QLinear
from f8hw.nn.quant import ActQuant, fix_quant
from f8hw.nn.quantize import quantize
from f8hw.nn.select import Candidate, FormatReport, TensorChoice, apply_formats, model_formats, select_formats

__all__ = [
    "FORMAT_NAMES",
    "ActQuant",
    "Candidate",
    "F8Module",
    "FormatReport",
    "Plan",
    "QAdd",
    "QConv2d",
    "QGlobalAvgPool2d",
    "QLinear",
    "TensorChoice",
    "UnsupportedOpError",
    "apply_formats",
    "calibrate",
    "fix_quant",
    "fp8_quant",
    "integer_forward",
    "model_formats",
    "prepare",
    "quantize",
    "reestimate_bn",
    "select_formats",
    "set_quantized",
    "trace",
]

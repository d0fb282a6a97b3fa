"""FP8 QAT in f8hw.nn: fake quantization, per-layer formats, export, format selection."""

import numpy as np
import pytest
import torch

from f8hw.errors import FormatError
from f8hw.nn.fp8quant import format_kind, fp8_quant, fp8_round
from f8hw.numerics import FORMATS, TensorFormat, code_table, decode, dequantize_format, encode, quantize_format


def _float32_cases(kind: str, fl: int, rng) -> np.ndarray:
    """Random values over the whole range, every code's value, its neighbours and the midpoints (ties)."""
    vals = code_table(kind)
    vals = np.sort(vals[np.isfinite(vals)]) * 2.0**-fl
    mids = (vals[1:] + vals[:-1]) / 2
    big = vals[-1] * np.array([1.0, 1.01, 2.0, 1e6])
    edge = np.concatenate([vals, mids, big, -big, [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf]])
    edge32 = edge.astype(np.float32)
    near = np.concatenate([np.nextafter(edge32, np.float32(np.inf)), np.nextafter(edge32, np.float32(-np.inf))])
    rand = (rng.standard_normal(4000) * np.exp2(rng.uniform(-12, 12, 4000)) * vals[-1] / 8).astype(np.float32)
    return np.concatenate([edge32, near, rand]).astype(np.float32)


@pytest.mark.parametrize("kind", list(FORMATS))
@pytest.mark.parametrize("fl", [-3, 0, 5])
def test_fp8_round_equals_numpy_encode_decode(kind, fl):
    x = _float32_cases(kind, fl, np.random.default_rng(fl + 10))
    want = decode(encode(x.astype(np.float64), kind, fl), kind) * 2.0**-fl
    got = fp8_round(torch.from_numpy(x), kind, fl).numpy()
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[got == 0]).any()  # never -0
    q = fp8_quant(torch.from_numpy(x), kind, fl)
    assert q.dtype == torch.float32
    np.testing.assert_array_equal(q.numpy().astype(np.float64), want)  # exact in float32
    fmt = TensorFormat(fl, True, 8, kind)
    np.testing.assert_array_equal(dequantize_format(quantize_format(x, fmt), fmt), want)


def test_fp8_quant_straight_through_masked_at_saturation():
    x = torch.tensor([0.3, -1.7, 500.0, -1e4], requires_grad=True)
    fp8_quant(x, "e4m3", 0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_format_names():
    assert format_kind("int8") == "int" and format_kind("e3m4") == "e3m4"
    with pytest.raises(FormatError, match="conv1: unknown format 'fp8'"):
        format_kind("fp8", "conv1")

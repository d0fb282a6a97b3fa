"""PyTorch QNNPACK quantized conv2d/linear as an independent oracle of the golden model.

What is compared, exactly:
* Activations enter QNNPACK as quint8 (the only activation type its conv/linear
  take) with scale 2^-fl_x: unsigned tensors with zero point 0 (codes 0..255 ==
  our values), signed tensors with zero point 128 (code = value + 128, our
  values -127..127 are all representable).  Weights are qint8, scale 2^-w_fl,
  zero point 0.  The bias is given as a float b * 2^-fl_a, which QNNPACK turns
  back into the int32 b at scale s_x * s_w = 2^-fl_a exactly.
* Output scale 2^-fl_out: QNNPACK then requantizes acc + bias by the power of
  two 2^(fl_a - fl_out), rounding half to even, and saturates.  Unsigned outputs
  use quint8 zero point 0 (range [0, 255] == ours).  Signed outputs use zero
  point 128, i.e. range [-128, 127]; ours is [-127, 127], so the oracle's result
  is clamped once more to [-127, 127] before comparing (clamping is monotone,
  so this equals clamping to [-127, 127] directly).
* QNNPACK requantizes in fp32: int32 -> float is exact only for |acc + bias| <=
  2^24, and a float32 bias is exact only below 2^24.  The cases here are built
  to stay inside that bound (asserted), so the oracle is exact; larger
  accumulators are covered by the float64 reference in test_golden.py instead.
* Residual adds are not part of this oracle (QNNPACK has no fused shift-add).
"""

import warnings

import numpy as np
import pytest
import torch

from f8hw.golden import conv2d_acc, linear_acc
from f8hw.numerics import TensorFormat, requantize

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

qF = pytest.importorskip("torch.ao.nn.quantized.functional")


@pytest.fixture(autouse=True)
def qnnpack():
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch build has no QNNPACK engine")
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = "qnnpack"
    yield
    torch.backends.quantized.engine = old


def q_act(x: np.ndarray, fmt: TensorFormat):
    zp = 128 if fmt.signed else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._make_per_tensor_quantized_tensor(torch.tensor(x + zp, dtype=torch.uint8), 2.0**-fmt.fl, zp)


def q_weight(w: np.ndarray, w_fl: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._make_per_tensor_quantized_tensor(torch.tensor(w, dtype=torch.int8), 2.0**-w_fl, 0)


def from_oracle(y, out: TensorFormat) -> np.ndarray:
    v = y.int_repr().numpy().astype(np.int64) - y.q_zero_point()
    return np.clip(v, -127, 127) if out.signed else v


def random_case(rng):
    x_fmt = TensorFormat(int(rng.integers(0, 8)), True) if rng.random() < 0.5 else TensorFormat(int(rng.integers(0, 9)), False)
    w_fl = int(rng.integers(0, 8))
    fl_a = x_fmt.fl + w_fl
    out_signed = bool(rng.integers(2))
    lo_fl, hi_fl = max(0, fl_a - 15), min(7 if out_signed else 8, fl_a + 8)
    out = TensorFormat(int(rng.integers(lo_fl, hi_fl + 1)), out_signed)
    lo, hi = x_fmt.qrange
    return x_fmt, w_fl, fl_a, out, lo, hi


@pytest.mark.parametrize("seed", range(12))
def test_conv2d_equals_qnnpack(seed):
    rng = np.random.default_rng(seed)
    unsaturated = 0
    for _ in range(10):
        x_fmt, w_fl, fl_a, out, lo, hi = random_case(rng)
        depthwise = rng.random() < 0.3
        g = int(rng.choice([1, 2]))
        cin = int(rng.integers(1, 5)) * g
        cout = cin if depthwise else int(rng.integers(1, 5)) * g
        g = cin if depthwise else g
        k = int(rng.choice([1, 3, 5])) if depthwise else int(rng.integers(1, 5))
        s, p = int(rng.integers(1, 3)), int(rng.integers(0, k // 2 + 1))
        hw = int(rng.integers(k, 10))
        x = rng.integers(lo, hi + 1, size=(2, cin, hw, hw))
        w = rng.integers(-127, 128, size=(cout, cin // g, k, k))
        b = rng.integers(-(2 ** (fl_a + 4)), 2 ** (fl_a + 4) + 1, size=cout)
        acc = conv2d_acc(x, w, (s, s), (p, p), g) + b[None, :, None, None]
        assert np.abs(acc).max() <= 2**24 and np.abs(b).max() < 2**24  # fp32-exact region
        y = qF.conv2d(q_act(x, x_fmt), q_weight(w, w_fl), torch.tensor(b * 2.0**-fl_a, dtype=torch.float32),
                      stride=s, padding=p, groups=g, scale=2.0**-out.fl, zero_point=128 if out.signed else 0)
        want = requantize(acc, fl_a, out)
        np.testing.assert_array_equal(want, from_oracle(y, out))
        unsaturated += int(((want > out.qrange[0]) & (want < out.qrange[1])).sum())
    assert unsaturated > 0  # the comparison is not only about the rails


@pytest.mark.parametrize("seed", range(8))
def test_linear_equals_qnnpack(seed):
    rng = np.random.default_rng(50 + seed)
    for _ in range(10):
        x_fmt, w_fl, fl_a, out, lo, hi = random_case(rng)
        fin, fout = int(rng.integers(1, 200)), int(rng.integers(1, 20))
        x = rng.integers(lo, hi + 1, size=(3, fin))
        w = rng.integers(-127, 128, size=(fout, fin))
        b = rng.integers(-(2 ** (fl_a + 4)), 2 ** (fl_a + 4) + 1, size=fout)
        acc = linear_acc(x, w) + b
        assert np.abs(acc).max() <= 2**24
        y = qF.linear(q_act(x, x_fmt), q_weight(w, w_fl), torch.tensor(b * 2.0**-fl_a, dtype=torch.float32),
                      scale=2.0**-out.fl, zero_point=128 if out.signed else 0)
        np.testing.assert_array_equal(requantize(acc, fl_a, out), from_oracle(y, out))


@pytest.mark.parametrize("shift", range(1, 16))
def test_rounding_ties_equal_qnnpack(shift):
    """Zero input, so acc + bias = bias: every bias is an exact tie (k + 1/2) * 2^shift, both signs, odd and even k."""
    k = np.arange(-6, 6)
    bias = (2 * k + 1) * 2 ** (shift - 1)
    w_fl = min(shift, 7)  # fl_a = x.fl + w_fl = shift: the output (fl 0) divides by 2^shift
    fl_a = shift
    x_fmt = TensorFormat(shift - w_fl, False)
    out = TensorFormat(0, True)
    x = np.zeros((1, 4), np.int64)
    w = np.ones((len(k), 4), np.int64)
    y = qF.linear(q_act(x, x_fmt), q_weight(w, w_fl), torch.tensor(bias * 2.0**-fl_a, dtype=torch.float32),
                  scale=1.0, zero_point=128)
    got = from_oracle(y, out)[0]
    want = np.where(k % 2 == 0, k, k + 1)  # half to even
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(requantize(bias, fl_a, out), want)

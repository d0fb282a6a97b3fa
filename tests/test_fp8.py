"""FP8 formats of f8hw.numerics against the oracles: torch and ml_dtypes for E3M4/E4M3/E5M2 (clamped to the
largest finite value first: torch's e5m2 cast and every ml_dtypes cast overflow to Inf/NaN), and an
independent table from the definition plus exact rationals (fractions) for E2M5 and the integer encoder."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch

from f8hw.errors import AccumulatorOverflowError, FormatError
from f8hw.numerics import (
    FORMATS,
    MIXED_ACC_BITS,
    TensorFormat,
    accumulator_bound,
    check_accumulator,
    code_table,
    dequantize_format,
    encode,
    encode_int,
    finite_mask,
    fl_from_sigma,
    fl_grid_search,
    fl_range,
    fp8_format,
    quantize_format,
    requantize,
    split,
    to_integer,
)

ML = {"e3m4": ml_dtypes.float8_e3m4, "e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2}
TORCH = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
KINDS = list(FORMATS)


def definition_value(code: int, exp_bits: int, man_bits: int, bias: int) -> Fraction:
    """Value of a code from the IEEE-style definition (subnormals at exponent field 0), specials ignored."""
    sign = -1 if code & 0x80 else 1
    e, m = (code & 0x7F) >> man_bits, code & ((1 << man_bits) - 1)
    if e == 0:
        return sign * Fraction(m, 1 << man_bits) * Fraction(2) ** (1 - bias)
    return sign * (1 + Fraction(m, 1 << man_bits)) * Fraction(2) ** (e - bias)


def oracle_codes(x: np.ndarray, kind: str) -> np.ndarray:
    """Codes of x by ml_dtypes after clamping to +-max; -0 (and negatives rounding to 0) -> the +0 code."""
    mx = FORMATS[kind].max_value
    c = np.clip(x, -mx, mx).astype(ML[kind]).view(np.uint8)
    return np.where(c == 0x80, 0, c)


def rational_encode(r: Fraction, kind: str) -> int:
    """Nearest finite code to r (ties: the even code), saturating; by search over the definition's values."""
    f = FORMATS[kind]
    ok = finite_mask(kind)
    vals = [(definition_value(c, f.exp_bits, f.man_bits, f.bias), c) for c in range(128) if ok[c]]
    a = min(abs(r), vals[-1][0])
    best = min(vals, key=lambda vc: (abs(vc[0] - a), vc[1] & 1))
    return best[1] | (0x80 if r < 0 and best[0] != 0 else 0)


@pytest.mark.parametrize("kind", list(ML))
def test_all_256_codes_match_ml_dtypes(kind):
    ref = np.arange(256, dtype=np.uint8).view(ML[kind]).astype(np.float64)
    mine = code_table(kind)
    assert np.array_equal(~np.isfinite(ref), np.isnan(mine))
    assert np.array_equal(ref[np.isfinite(ref)], mine[np.isfinite(ref)])


@pytest.mark.parametrize("kind", list(TORCH))
def test_all_256_codes_match_torch(kind):
    ref = torch.arange(256, dtype=torch.uint8).view(TORCH[kind]).double().numpy()
    mine = code_table(kind)
    assert np.array_equal(~np.isfinite(ref), np.isnan(mine))
    assert np.array_equal(ref[np.isfinite(ref)], mine[np.isfinite(ref)])


def test_e2m5_exhaustive_table():
    """E2M5: bias 1, subnormals at exponent field 0, all 256 codes finite; max 7.875, min subnormal 2^-5."""
    mine = code_table("e2m5")
    want = np.array([float(definition_value(c, 2, 5, 1)) for c in range(256)])
    assert np.array_equal(mine, want) and finite_mask("e2m5").all()
    assert mine[0x7F] == 7.875 and mine[0x01] == 2**-5 and mine[0x20] == 1.0 and mine[0x1F] == 31 / 32
    assert mine[0xA0] == -1.0 and mine[0x80] == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_integer_form_and_split(kind):
    f = fp8_format(kind)
    codes = np.flatnonzero(finite_mask(kind))
    n = to_integer(codes, kind)
    sig, exp = split(codes, kind)
    assert np.array_equal(sig << exp, n)
    assert np.abs(sig).max() < 2 ** (f.man_bits + 1) and exp.min() == 0 and exp.max() == f.max_exponent
    for c, v in zip(codes, n):
        assert Fraction(int(v), 2**f.q) == definition_value(int(c), f.exp_bits, f.man_bits, f.bias)
    assert f.max_int == n.max() and f.max_value == code_table(kind)[f.max_code]
    assert to_integer(np.array([0x80]), kind)[0] == 0  # -0 decodes to 0


def boundary_floats(kind: str, rng) -> np.ndarray:
    """Every value, every midpoint (ties), just off the midpoints, subnormal region, saturation, random."""
    v = code_table(kind)[:128]
    v = v[np.isfinite(v)]
    mid = (v[1:] + v[:-1]) / 2
    mx = v[-1]
    x = np.concatenate([v, mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf), v[:8] / 3,
                        [mx * 1.01, mx * 1.07, mx * 2, 1e30, np.inf, 2.0 ** -40],
                        rng.standard_normal(20000) * mx / 8, rng.standard_normal(5000) * v[1] * 16])
    return np.concatenate([x, -x, [0.0, -0.0]])


@pytest.mark.parametrize("kind", list(ML))
def test_encode_matches_ml_dtypes(kind):
    x = boundary_floats(kind, np.random.default_rng(1))
    assert np.array_equal(encode(x, kind, 0), oracle_codes(x, kind))
    for fl in (-7, 3, 12):  # the per-tensor scale is an exact power of two
        assert np.array_equal(encode(x * 2.0**-fl, kind, fl), oracle_codes(x, kind))


@pytest.mark.parametrize("kind", list(TORCH))
def test_encode_matches_torch(kind):
    # float32 inputs: torch converts float64 through float32, which rounds twice just off a midpoint
    x = boundary_floats(kind, np.random.default_rng(2)).astype(np.float32)
    mx = FORMATS[kind].max_value
    ref = torch.from_numpy(np.clip(x, -mx, mx)).to(TORCH[kind]).view(torch.uint8).numpy()
    assert np.array_equal(encode(x, kind, 0), np.where(ref == 0x80, 0, ref))


def test_encode_e2m5_against_rationals():
    x = boundary_floats("e2m5", np.random.default_rng(3))
    x = np.concatenate([x[:900], x[-900:]])
    want = [rational_encode(Fraction(float(v)) if np.isfinite(v) else Fraction(np.sign(v) * 10**9), "e2m5")
            for v in x]
    assert encode(x, "e2m5", 0).tolist() == want


def test_encode_rejects_nan_and_never_returns_minus_zero():
    with pytest.raises(FormatError, match="NaN"):
        encode(np.array([1.0, np.nan]), "e4m3", 0)
    for kind in KINDS:
        assert not (encode(np.array([-0.0, -1e-30, -(2.0 ** -40)]), kind, 0) == 0x80).any()


@pytest.mark.parametrize("kind", KINDS)
def test_integer_encoder_agrees_with_float_encoder_and_rationals(kind):
    """encode_int (integer-only) == encode on the same real values, over shifts that round, shift left,
    underflow to 0 (shift >= 64) and saturate; spot-checked against the rational oracle."""
    rng = np.random.default_rng(4)
    v = np.concatenate([rng.integers(-(2**50), 2**50, 3000), rng.integers(-300, 300, 600),
                        [0, 1, -1, 2**62, -(2**62), 2**63 - 1, -(2**63) + 1]])
    v = v.astype(np.int64)
    for fl_v in (-20, 0, 9, 30, 47, 70, 110):
        for fl in (-16, 0, 5, 31):
            c = encode_int(v, fl_v, kind, fl)
            exact = v.astype(np.float64)  # only compared where float64 holds v exactly
            small = np.abs(v) < 2**53
            assert np.array_equal(c[small], encode(exact[small] * 2.0 ** (-fl_v), kind, fl)), (fl_v, fl)
            for i in rng.choice(len(v), 12):
                r = Fraction(int(v[i])) * Fraction(2) ** (fl - fl_v)
                assert c[i] == rational_encode(r, kind), (int(v[i]), fl_v, fl)


def test_requantize_fp8_relu_and_int():
    v = np.array([-5000, -1, 0, 1, 5000, 10**15], np.int64)
    relu = requantize(v, 10, TensorFormat(4, False, 8, "e4m3"))
    assert relu.tolist()[:3] == [0, 0, 0] and relu[-1] == FORMATS["e4m3"].max_code
    signed = requantize(v, 10, TensorFormat(4, True, 8, "e4m3"))
    assert signed[0] == 0x80 | signed[4] and signed[1] == 0x88  # -1 at fl 10 is -2^-6 at fl 4: exact
    # an INT8 output of a wide accumulator: huge left shift still saturates, huge right shift rounds to 0
    assert requantize(v, -40, TensorFormat(3, True)).tolist() == [-127, -127, 0, 127, 127, 127]
    assert requantize(v, 90, TensorFormat(3, True)).tolist() == [0] * 6


def test_format_lookup_and_validation_errors():
    with pytest.raises(FormatError, match=r"unknown FP8 format 'e6m1' \(known: e2m5, e3m4, e4m3, e5m2\)"):
        fp8_format("e6m1")
    assert TensorFormat(40, True, 8, "e4m3").problem() == "fl 40 out of range -16..31 for e4m3 8-bit"
    assert "unknown format kind 'fp8'" in TensorFormat(0, True, 8, "fp8").problem()
    assert "8-bit" in TensorFormat(0, True, 32, "e4m3").problem()
    assert TensorFormat(-3, False, 8, "e5m2").problem() is None
    assert [str(f) for f in (TensorFormat(6, True), TensorFormat(8, False), TensorFormat(4, True, 8, "e4m3"),
                             TensorFormat(2, False, 8, "e4m3"), TensorFormat(9, True, 64))] == \
        ["s8 fl6", "u8 fl8", "e4m3 fl4", "e4m3+relu fl2", "int64 fl9"]
    assert TensorFormat(4, True, 8, "e4m3").unit == 13 and TensorFormat(4, True).unit == 4


@pytest.mark.parametrize("kind", KINDS)
def test_quantize_format_round_trip_and_grid_search(kind):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2000) * 0.3
    fl = fl_grid_search(x, True, kind)
    fmt = TensorFormat(fl, True, 8, kind)
    mse = lambda f: np.mean((dequantize_format(quantize_format(x, TensorFormat(f, True, 8, kind)),
                                               TensorFormat(f, True, 8, kind)) - x) ** 2)
    assert all(mse(fl) <= mse(f) for f in fl_range(True, kind))
    codes = quantize_format(x, fmt)
    assert np.array_equal(quantize_format(dequantize_format(codes, fmt), fmt), codes)
    relu = quantize_format(x, TensorFormat(fl, False, 8, kind))
    assert (dequantize_format(relu, fmt)[x <= 0] == 0).all()
    # the sigma rule is one step from the grid search, or as good where the error is flat (E4M3, E5M2)
    rule = fl_from_sigma(x.std(), True, kind)
    assert abs(rule - fl) <= 1 or mse(rule) <= 1.05 * mse(fl)


@pytest.mark.parametrize("x_kind,w_kind", [("int", "e4m3"), ("e5m2", "e2m5"), ("e3m4", "e3m4")])
def test_accumulator_bound_is_tight_for_fp8(x_kind, w_kind):
    """The bound equals the brute-force worst partial sum (extreme inputs, every prefix of every sign pattern)."""
    rng = np.random.default_rng(6)
    xf = TensorFormat(0, bool(rng.integers(2)) or x_kind != "int", 8, x_kind)
    lo, hi = xf.qrange
    for _ in range(4):
        codes = rng.integers(0, 256, (2, 4))
        codes = np.where(finite_mask(w_kind)[codes] if w_kind != "int" else True, codes, 0)
        w = to_integer(codes, w_kind) if w_kind != "int" else rng.integers(-127, 128, (2, 4))
        acc, _ = accumulator_bound(w, None, xf)
        for c in range(2):
            best = 0
            for xs in np.array(np.meshgrid(*[[lo, hi]] * 4)).reshape(4, -1).T:
                partial = 0
                for k in range(4):
                    partial += int(xs[k]) * int(w[c, k])
                    best = max(best, abs(partial))
            assert acc[c] == best


def test_e5m2_products_overflow_the_64_bit_accumulator():
    n = FORMATS["e5m2"].max_int
    x = TensorFormat(0, True, 8, "e5m2")
    k_ok = (2 ** (MIXED_ACC_BITS - 1) - 1) // (n * n)
    check_accumulator("fc", np.full((1, k_ok), n), None, x, MIXED_ACC_BITS, "activation e5m2 x weight e5m2")
    with pytest.raises(AccumulatorOverflowError, match=r"^node 'fc': accumulator can reach \d+ in output channel 0, "
                       r"exceeding the 64-bit exact accumulator of activation e5m2 x weight e5m2$"):
        check_accumulator("fc", np.full((1, k_ok + 1), n), None, x, MIXED_ACC_BITS, "activation e5m2 x weight e5m2")

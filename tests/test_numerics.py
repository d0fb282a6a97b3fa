"""Property tests of f8hw.numerics against exact rational arithmetic (fractions.Fraction).

Python's round() on a Fraction rounds half to even exactly, so it is an
independent oracle for round_shift / requantize / quantize.
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from f8hw.errors import AccumulatorOverflowError
from f8hw.numerics import (
    SHIFT_MAX,
    SHIFT_MIN,
    TensorFormat,
    accumulator_bound,
    align_add,
    check_accumulator,
    dequantize,
    fl_from_sigma,
    fl_grid_search,
    fl_range,
    qrange,
    quantize,
    quantize_torch,
    requantize,
    round_shift,
    saturate,
)

int32s = st.integers(-(2**31), 2**31 - 1)
shifts = st.integers(-8, 24)


def ref_round_shift(v: int, s: int) -> int:
    return round(Fraction(v, 2**s)) if s > 0 else v * 2 ** (-s)


def ref_requantize(v: int, fl_v: int, fmt: TensorFormat) -> int:
    lo, hi = qrange(fmt.signed)
    return min(hi, max(lo, round(Fraction(v) * Fraction(2) ** (fmt.fl - fl_v))))


def test_ranges():
    assert qrange(True) == (-127, 127) and qrange(False) == (0, 255)
    assert list(fl_range(True)) == list(range(8)) and list(fl_range(False)) == list(range(9))
    assert TensorFormat(7, True).problem() is None and TensorFormat(8, True).problem()
    assert TensorFormat(8, False).problem() is None and TensorFormat(9, False).problem()
    assert TensorFormat(-1, False).problem() and TensorFormat(3, True, 16).problem()
    assert TensorFormat(12, True, 32).problem() is None and TensorFormat(12, False, 32).problem()


@given(int32s, shifts)
def test_round_shift_matches_exact_rounding(v, s):
    assert round_shift(v, s) == ref_round_shift(v, s)
    assert int(round_shift(np.array([v], np.int64), s)[0]) == ref_round_shift(v, s)


@given(st.integers(-(2**20), 2**20), st.integers(1, 20))
def test_round_shift_ties_go_to_even(k, s):
    """v = k*2^s + 2^(s-1) is exactly halfway between k and k+1 (both signs of k)."""
    v = k * 2**s + 2 ** (s - 1)
    want = k if k % 2 == 0 else k + 1
    assert round_shift(v, s) == want
    assert round_shift(-v, s) == -want  # symmetric: half to even is odd-symmetric


def test_round_shift_tie_examples():
    cases = {(1, 1): 0, (3, 1): 2, (-1, 1): 0, (-3, 1): -2, (5, 2): 1, (6, 2): 2, (-6, 2): -2,
             (10, 2): 2, (-10, 2): -2, (7, 1): 4, (-7, 1): -4, (3, 0): 3, (3, -2): 12, (-3, -8): -768}
    for (v, s), want in cases.items():
        assert round_shift(v, s) == want, (v, s)


def test_round_shift_every_shift_vectorised():
    """Every shift of the requantizer's range on a dense block of values, incl. negatives."""
    v = np.arange(-70000, 70001, dtype=np.int64)
    for s in range(SHIFT_MIN, SHIFT_MAX + 1):
        got = round_shift(v, s)
        assert got.dtype == np.int64
        sample = v[:: 997]
        assert [int(x) for x in got[:: 997]] == [ref_round_shift(int(x), s) for x in sample], s
        if s > 0:  # same as numpy's half-even rounding of the exact quotient (exact in float64)
            assert np.array_equal(got, np.round(v / 2.0**s).astype(np.int64))


@given(st.integers(-(2**40), 2**40), st.booleans())
def test_saturate_both_rails(v, signed):
    lo, hi = qrange(signed)
    assert saturate(v, signed) == min(hi, max(lo, v))
    assert saturate(np.array([v]), signed)[0] == min(hi, max(lo, v))


def test_saturate_rails_exactly():
    assert saturate(np.array([-128, -127, 127, 128]), True).tolist() == [-127, -127, 127, 127]
    assert saturate(np.array([-1, 0, 255, 256]), False).tolist() == [0, 0, 255, 255]


@given(int32s, st.integers(0, 22), st.sampled_from([TensorFormat(f, s) for s in (True, False) for f in fl_range(s)]))
def test_requantize_matches_exact(v, fl_v, fmt):
    assert requantize(v, fl_v, fmt) == ref_requantize(v, fl_v, fmt)


def test_requantize_32bit_passthrough():
    v = np.array([-(2**31), 2**31 - 1])
    assert requantize(v, 9, TensorFormat(9, True, 32)) is v
    with pytest.raises(ValueError):
        requantize(v, 9, TensorFormat(8, True, 32))


@given(int32s, st.integers(0, 15), st.integers(-127, 255), st.integers(0, 8))
def test_align_add_is_exact(a, fl_a, b, fl_b):
    s, fl = align_add(a, fl_a, b, fl_b)
    assert fl == max(fl_a, fl_b)
    assert Fraction(s, 2**fl) == Fraction(a, 2**fl_a) + Fraction(b, 2**fl_b)
    arr, fl2 = align_add(np.array([a]), fl_a, np.array([b]), fl_b)
    assert fl2 == fl and int(arr[0]) == s


finite = st.floats(-1e4, 1e4, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=20), st.booleans(), st.integers(0, 8))
def test_quantize_numpy_and_torch_agree_with_definition(xs, signed, fl):
    fl = min(fl, fl_range(signed).stop - 1)
    lo, hi = qrange(signed)
    want = [min(hi, max(lo, round(Fraction(x) * 2**fl))) for x in xs]
    assert quantize(np.array(xs), fl, signed).tolist() == want
    t = quantize_torch(torch.tensor(xs, dtype=torch.float64), fl, signed)
    assert t.to(torch.int64).tolist() == want


@given(st.integers(-300, 300), st.booleans(), st.integers(0, 7))
def test_quantize_ties(k, signed, fl):
    """x exactly halfway between two codes: half to even, both signs, numpy and torch (float32 too)."""
    x = (k + 0.5) / 2**fl
    lo, hi = qrange(signed)
    want = min(hi, max(lo, k if k % 2 == 0 else k + 1))
    assert quantize(np.array([x]), fl, signed)[0] == want
    assert quantize_torch(torch.tensor([x], dtype=torch.float32), fl, signed).item() == want


def test_dequantize():
    assert dequantize(np.array([-127, 1, 255]), 8).tolist() == [-127 / 256, 1 / 256, 255 / 256]


def test_fl_from_sigma():
    for k in range(8):  # exactly at c / 2^k: log2 is exactly k
        assert fl_from_sigma(40 / 2**k, True) == k
        assert fl_from_sigma(70 / 2**k, False) == k
    assert fl_from_sigma(40 / 2**3 * 1.01, True) == 2
    assert fl_from_sigma(0.0, True) == 7 and fl_from_sigma(0.0, False) == 8
    assert fl_from_sigma(1e-9, True) == 7 and fl_from_sigma(1e-9, False) == 8
    assert fl_from_sigma(1e9, True) == 0 and fl_from_sigma(1e9, False) == 0
    with pytest.raises(ValueError):
        fl_from_sigma(float("nan"), True)


def test_fl_grid_search_picks_lowest_mse():
    rng = np.random.default_rng(0)
    for signed in (True, False):
        for sigma in (0.05, 0.4, 3.0, 30.0):
            x = rng.normal(0, sigma, 2000)
            if not signed:
                x = np.maximum(x, 0)
            mse = [np.mean((dequantize(quantize(x, f, signed), f) - x) ** 2) for f in fl_range(signed)]
            assert fl_grid_search(x, signed) == int(np.argmin(mse))
    assert fl_grid_search(np.zeros(5), True) == 0  # all FLs exact: ties go to the smallest


def brute_force_bound(w_row, bias, lo, hi):
    """Max |partial sum| (and + bias) over inputs in {lo, 0, hi} and every accumulation order."""
    best, best_b = 0, abs(bias)  # the empty sum: 0, or the preloaded bias
    k = len(w_row)
    for xs in itertools.product((lo, 0, hi), repeat=k):
        for perm in itertools.permutations(range(k)):
            acc = 0
            for i in perm:
                acc += xs[i] * int(w_row[i])
                best, best_b = max(best, abs(acc)), max(best_b, abs(acc + bias))
    return best, best_b


@pytest.mark.parametrize("signed", [True, False])
def test_accumulator_bound_is_tight_for_partial_sums(signed):
    rng = np.random.default_rng(1)
    fmt = TensorFormat(3, signed)
    lo, hi = fmt.qrange
    for _ in range(6):
        w = rng.integers(-127, 128, size=(3, 4))
        b = rng.integers(-40000, 40000, size=3)
        acc, acc_b = accumulator_bound(w, b, fmt)
        for c in range(3):
            ref, ref_b = brute_force_bound(w[c], int(b[c]), lo, hi)
            assert acc[c] == ref
            assert acc_b[c] == ref_b


def test_check_accumulator_limit():
    """A linear layer of n weights 127 on unsigned input: |acc| = 255*127*n; overflows iff > 2^31-1."""
    fmt = TensorFormat(8, False)
    n_ok = (2**31 - 1) // (255 * 127)
    check_accumulator("fc", np.full((1, n_ok), 127, np.int8), np.zeros(1, np.int32), fmt)
    with pytest.raises(AccumulatorOverflowError, match="'fc'"):
        check_accumulator("fc", np.full((1, n_ok + 1), 127, np.int8), np.zeros(1, np.int32), fmt)
    # the bias can push an accumulator that fits over the edge
    slack = 2**31 - 1 - 255 * 127 * n_ok
    check_accumulator("fc", np.full((1, n_ok), 127, np.int8), np.array([slack]), fmt)
    with pytest.raises(AccumulatorOverflowError, match="accumulator \\+ bias"):
        check_accumulator("fc", np.full((1, n_ok), 127, np.int8), np.array([slack + 1]), fmt)
    assert math.isclose(255 * 127 * n_ok, 2**31, rel_tol=1e-4)

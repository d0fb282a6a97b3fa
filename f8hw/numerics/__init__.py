"""The arithmetic of f8hw: the single source of truth for every number format (see docs/ir.md).

INT8 (F8Net fixed point): a value is an integer q with a fractional length FL;
its real value is q / 2**FL.  Word length WL = 8 everywhere:

* signed 8-bit:   q in [-127, 127] (symmetric, -128 is never produced), FL 0..7
* unsigned 8-bit: q in [0, 255] (unsigned saturation *is* the ReLU), FL 0..8
* raw 32-bit:     the final classifier's int32 logits, not requantized

FP8 (E2M5, E3M4, E4M3, E5M2, f8hw.numerics.fp8): uint8 codes whose value v is
scaled per tensor by a power of two, real value = v * 2**-fl; every value has
an exact integer form n * 2**-unit.

Integer inference of a conv2d/linear layer, bit for bit (golden model, ISA
simulator and RTL all compute exactly this):

    acc = sum_k n_x[k] * n_w[k]   integer forms; INT8 x INT8: must fit int32, else MIXED_ACC_BITS
    v   = acc + bias  at fl_a = x.unit + w.unit (INT8: fl_x + w_fl)
    v, fl_v = align_add(v, fl_a, n_skip, skip.unit)          optional residual
    out = requantize(v, fl_v, out)   INT8: saturate(round_shift(v, fl_v - out.fl), out.signed)
                                     FP8: encode_int (RNE at the format's precision, saturate)

The accelerator's requantizer lane computes the same with its register
semantics (``requant_lane`` in f8hw.numerics.lane: the SET registers' widths
and clamps, the dyadic baseline's multiplier); the ISA simulator and the RTL
tests use that one model.

round_shift rounds half to even (like torch.round / numpy.round) and uses
only integer add/shift/compare: there is no float anywhere in requantize.
The integer path accepts Python ints and numpy integer arrays (int64 is used
internally; callers' int32 arrays are widened, never overflowed).

Float helpers (quantize/dequantize, encode, fl selection) are for training
and calibration only; they never run inside the integer datapath.
"""

from f8hw.numerics.fixed import *  # noqa: F403
from f8hw.numerics.fixed import __all__ as _fixed_all
from f8hw.numerics.fp8 import *  # noqa: F403
from f8hw.numerics.fp8 import __all__ as _fp8_all
from f8hw.numerics.lane import *  # noqa: F403
from f8hw.numerics.lane import __all__ as _lane_all
from f8hw.numerics.tensor import *  # noqa: F403
from f8hw.numerics.tensor import __all__ as _tensor_all

__all__ = [*_fixed_all, *_fp8_all, *_lane_all, *_tensor_all]

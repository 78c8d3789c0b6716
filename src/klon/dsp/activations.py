"""tanh and the logistic sigmoid as one rational function: cheap, branch-free and vectorisable
(libm's tanhf/expf are opaque calls that stop LLVM from vectorising a loop).

tanh(x) ~= x P(x^2) / Q(x^2) on |x| <= 9, +-1 beyond. The coefficients are a weighted
least-squares rational fit of tanh(x)/x in x^2 on [0, 9]; in float32 the largest error against
the exact tanh is 3.4e-7 (tests/test_dsp.py checks it).
"""
import numpy as np
from numba import njit

# float32 constants keep float32 kernels in float32 (a float64 constant would promote them)
TANH_LIMIT = np.float32(9.0)
# P's and Q's coefficients, lowest power of x^2 first (Q's leading 1 included): the one source
# of the constants, for the kernels here and for the C export's tanh
TANH_NUMERATOR = tuple(map(np.float32, (0.9999999230614363, 0.13384769938291624,
                                        0.003500271212593211, 2.0695049866074914e-05,
                                        1.3489845784277721e-08)))
TANH_DENOMINATOR = tuple(map(np.float32, (1.0, 0.4671807293657996, 0.02589419738935418,
                                          0.00032936830321387786, 7.82852043395194e-07)))
# numba folds module-level scalars into the compiled code as constants
_P0, _P1, _P2, _P3, _P4 = TANH_NUMERATOR
_ONE, _Q1, _Q2, _Q3, _Q4 = TANH_DENOMINATOR
_HALF = np.float32(0.5)


@njit(inline="always", fastmath=True, error_model="numpy")
def fast_tanh(x):
    x = min(max(x, -TANH_LIMIT), TANH_LIMIT)
    s = x * x
    p = _P0 + s * (_P1 + s * (_P2 + s * (_P3 + s * _P4)))
    q = _ONE + s * (_Q1 + s * (_Q2 + s * (_Q3 + s * _Q4)))
    # float32 rounding can land a ulp beyond 1; the clamp keeps a GRU's state within +-1
    return min(max(x * p / q, -_ONE), _ONE)


@njit(inline="always", fastmath=True, error_model="numpy")
def fast_sigmoid(x):
    return _HALF + _HALF * fast_tanh(_HALF * x)


@njit(cache=True, fastmath=True, error_model="numpy")
def fast_tanh_array(x):
    """Elementwise fast_tanh (for tests and plots)."""
    y = np.empty_like(x)
    for i in range(x.size):
        y.flat[i] = fast_tanh(x.flat[i])
    return y

"""Bilinear transform: analog H(s) to digital H(z), optionally prewarped at one frequency.

The map is s = c (1 - z^-1) / (1 + z^-1). With c = 2 fs it is the trapezoidal rule; with
c = w0 / tan(w0 / (2 fs)) the digital response equals the analog one exactly at w0.
"""
import math

import numpy as np
from numba import njit

from klon.core.errors import KlonError


@njit(cache=True)
def bilinear_constant(sample_rate, prewarp_hz=0.0):
    """The c in s = c (1 - z^-1) / (1 + z^-1); prewarp_hz <= 0 means no prewarping (c = 2 fs)."""
    if not sample_rate > 0.0:
        raise KlonError("sample rate must be positive")
    if prewarp_hz <= 0.0:
        return 2.0 * sample_rate
    if prewarp_hz >= 0.5 * sample_rate:
        raise KlonError("prewarp frequency must be below half the sample rate")
    w0 = 2.0 * math.pi * prewarp_hz
    return w0 / math.tan(0.5 * w0 / sample_rate)


@njit(cache=True)
def bilinear1(b1, b0, a1, a0, c):
    """H(s) = (b1 s + b0) / (a1 s + a0) -> (bz0, bz1, az1) with az0 = 1."""
    norm = 1.0 / (a1 * c + a0)
    return (b1 * c + b0) * norm, (b0 - b1 * c) * norm, (a0 - a1 * c) * norm


@njit(cache=True)
def bilinear2(b2, b1, b0, a2, a1, a0, c):
    """H(s) = (b2 s^2 + b1 s + b0) / (a2 s^2 + a1 s + a0) -> (bz0, bz1, bz2, az1, az2), az0 = 1."""
    cc = c * c
    # (1 - z^-1)^2 = 1 - 2z^-1 + z^-2, (1 - z^-2), (1 + z^-1)^2 = 1 + 2z^-1 + z^-2
    norm = 1.0 / (a2 * cc + a1 * c + a0)
    bz0 = (b2 * cc + b1 * c + b0) * norm
    bz1 = 2.0 * (b0 - b2 * cc) * norm
    bz2 = (b2 * cc - b1 * c + b0) * norm
    az1 = 2.0 * (a0 - a2 * cc) * norm
    az2 = (a2 * cc - a1 * c + a0) * norm
    return bz0, bz1, bz2, az1, az2


def bilinear(b, a, sample_rate, prewarp_hz=None):
    """Analog (b, a) in s, highest power first, to digital (bz, az) in z^-1 with az[0] == 1.

    Both results have max(len(b), len(a)) coefficients. With prewarp_hz the digital response
    equals the analog one exactly at that frequency.
    """
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    if b.ndim != 1 or a.ndim != 1:
        raise KlonError("bilinear: b and a must be 1-D coefficient sequences")
    if not np.any(a):
        raise KlonError("bilinear: the denominator is all zeros")
    c = bilinear_constant(float(sample_rate), 0.0 if prewarp_hz is None else float(prewarp_hz))
    order = max(b.size, a.size) - 1
    b = np.concatenate([np.zeros(order + 1 - b.size), b])
    a = np.concatenate([np.zeros(order + 1 - a.size), a])
    # s^k -> c^k (1 - z^-1)^k (1 + z^-1)^(order - k), after multiplying through by (1 + z^-1)^order
    bz = np.zeros(order + 1)
    az = np.zeros(order + 1)
    for index in range(order + 1):
        power = order - index
        term = np.array([c**power])
        for _ in range(power):
            term = np.convolve(term, [1.0, -1.0])
        for _ in range(order - power):
            term = np.convolve(term, [1.0, 1.0])
        bz += b[index] * term
        az += a[index] * term
    if az[0] == 0.0:
        raise KlonError("bilinear: the analog denominator vanishes at s = c; no causal filter")
    return bz / az[0], az / az[0]

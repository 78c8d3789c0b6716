"""The Wright omega function and the diode roots built on it.

omega(x) solves w + ln(w) = x. A diode in series with a port resistance R has the closed-form
wave solution of Werner et al. (2016) in terms of omega; an anti-parallel pair has none, so the
pair takes the one-diode closed form as its first guess and Newton polishes it on the exact pair
equation. The polish matters: the one-diode form is off by the reverse diode's current and, on the
Klon clipper, by up to a couple of percent of the peak when used alone.

The pair's solve runs once per oversampled sample in the circuit engine, so its start costs no
logarithm: omega comes from a table of cubic pieces (omega_start, within 8e-7 of omega for any
wave below about 100 V), and one Newton step on the pair's equation, in closed form from the
one-diode solution (whose exponential is omega / k), takes off most of the reverse diode's
current. From there one exponential's Newton step meets the stopping rule (it leaves under
4e-14 V), where the start from logarithms took two or three exponentials and three logarithms.

For anti-aliasing, the wave a pair reflects has an antiderivative in closed form from the solved
voltage (diode_pair_antiderivative; diode_pair_reflection gives both from one solve).
"""
import math

import numpy as np
from numba import njit

MAX_NEWTON_STEPS = 8
# omega_start's table: cubic pieces, a quarter wide from -16 to 48 (where omega bends), 4 wide
# to 560 and 32 wide to 4656 (where it is nearly x - ln x); beyond, the asymptotes
OMEGA_SEGMENTS = ((-16.0, 0.25, 256), (48.0, 4.0, 128), (560.0, 32.0, 128))  # start, width, pieces
OMEGA_LOW, OMEGA_MIDDLE, OMEGA_HIGH = (start for start, _, _ in OMEGA_SEGMENTS)
OMEGA_FINE, OMEGA_COARSE, OMEGA_COARSEST = (width for _, width, _ in OMEGA_SEGMENTS)
OMEGA_FIRST_COARSE = OMEGA_SEGMENTS[0][2]  # the first piece of each segment after the first
OMEGA_FIRST_COARSEST = OMEGA_FIRST_COARSE + OMEGA_SEGMENTS[1][2]
OMEGA_END = OMEGA_HIGH + OMEGA_COARSEST * OMEGA_SEGMENTS[2][2]


@njit(cache=True, error_model="numpy")
def wright_omega(x):
    """omega(x) for real x, to within a few ulps.

    A starting guess from the asymptotes, then Fritsch's iteration (third order) on
    w + ln w = x: two steps reach double precision from these guesses.
    """
    if x < -745.0:
        return 0.0  # exp(x) underflows and omega(x) ~ exp(x)
    if x < -2.0:
        w = math.exp(x)
        w = w * (1.0 - w)  # w = e^(x - w), to second order
    elif x < 1.0:
        # quadratic through omega(-2), omega(0) and omega(1) keeps the start within 2 %
        w = 0.5671432904097838 + x * (0.3211757 + 0.0523734 * x)
    else:
        w = x - math.log(x)
    for _ in range(3):
        z = x - w - math.log(w)
        if abs(z) < 1e-15 * (1.0 + abs(x)):
            break
        q = 2.0 * (1.0 + w) * (1.0 + w + (2.0 / 3.0) * z)
        w = w * (1.0 + z / (1.0 + w) * (q - z) / (q - 2.0 * z))
    return w


@njit(cache=True, error_model="numpy")
def diode_voltage(a, port_resistance, saturation_current, thermal_voltage):
    """Voltage across one diode (anode +) fed by incident wave a through port_resistance.

    Solves (a - v) / R = Is (exp(v / nVt) - 1) in closed form; thermal_voltage is n * Vt.
    """
    r_is = port_resistance * saturation_current
    arg = math.log(r_is / thermal_voltage) + (a + r_is) / thermal_voltage
    return a + r_is - thermal_voltage * wright_omega(arg)


def omega_pieces():
    """omega_start's table: a row per piece, (c0, c1, c2, c3) of c0 + t (c1 + t (c2 + t c3))
    for t from 0 to 1 across it, the cubic that meets omega and its slope w / (1 + w) at both
    ends (Hermite)."""
    nodes = np.concatenate([start + width * np.arange(count)
                            for start, width, count in OMEGA_SEGMENTS] + [[OMEGA_END]])
    w = np.array([wright_omega(x) for x in nodes])
    slope, width = w / (1.0 + w), np.diff(nodes)
    w0, w1, d0, d1 = w[:-1], w[1:], slope[:-1] * width, slope[1:] * width
    pieces = np.stack([w0, d0, 3.0 * (w1 - w0) - 2.0 * d0 - d1, 2.0 * (w0 - w1) + d0 + d1], 1)
    pieces.flags.writeable = False
    return pieces


OMEGA_PIECES = omega_pieces()


@njit(cache=True, error_model="numpy", inline="always")
def omega_start(x):
    """omega(x) to within 8e-7 (absolute, and relative below the table) with no logarithm
    below OMEGA_END: a start that Newton on the diode law polishes."""
    if x < OMEGA_MIDDLE:
        t = (x - OMEGA_LOW) * (1.0 / OMEGA_FINE)
        if t < 0.0:  # omega(x) ~ exp(x) - exp(2x) here
            w = math.exp(x)
            return w * (1.0 - w)
        first = 0
    elif x < OMEGA_HIGH:
        t = (x - OMEGA_MIDDLE) * (1.0 / OMEGA_COARSE)
        first = OMEGA_FIRST_COARSE
    elif x < OMEGA_END:
        t = (x - OMEGA_HIGH) * (1.0 / OMEGA_COARSEST)
        first = OMEGA_FIRST_COARSEST
    else:
        return x - math.log(x)  # waves of hundreds of volts: Newton takes a few steps more
    j = int(t)
    t -= j
    c = OMEGA_PIECES[first + j]
    return c[0] + t * (c[1] + t * (c[2] + t * c[3]))


@njit(cache=True, error_model="numpy", inline="always")
def pair_offset(port_resistance, saturation_current, thermal_voltage):
    """ln k + k, k = R Is / nVt: what the pair's solve adds to a / nVt for omega's argument
    (it changes only with the port resistance, so callers on a hot path keep it)."""
    k = port_resistance * saturation_current / thermal_voltage
    return math.log(k) + k


@njit(cache=True, error_model="numpy", inline="always")
def _newton_pair(magnitude, offset, port_resistance, saturation_current, thermal_voltage):
    """diode_pair_voltage's solve for a wave of this magnitude (offset: pair_offset's): (v
    before the bound, the exponential exp(v / nVt) the last Newton step was taken at, its
    reciprocal, that step).

    In units of nVt, with k = R Is / nVt: the one-diode solution is x1 = A + k - w, w =
    omega(ln k + k + A), and exp(x1) = w / k exactly, so the pair's Newton step from x1 needs
    no exponential: x0 = x1 - (k w - k^2) / (w + w^2 + k^2). Newton on the pair's equation
    from there."""
    inv_vt = 1.0 / thermal_voltage
    k = port_resistance * saturation_current * inv_vt
    big_a = magnitude * inv_vt
    w = omega_start(offset + big_a)
    v = (big_a + k - w - (k * w - k * k) / (w + w * w + k * k)) * thermal_voltage
    g = 1.0 / port_resistance
    e = 1.0
    ie = 1.0
    step = 0.0
    for _ in range(MAX_NEWTON_STEPS):
        e = math.exp(v * inv_vt)
        ie = 1.0 / e
        f = (magnitude - v) * g - saturation_current * (e - ie)
        step = f / (g + saturation_current * inv_vt * (e + ie))
        v += step
        if abs(step) < 1e-6 * thermal_voltage:
            break
    return v, e, ie, step


@njit(cache=True, error_model="numpy", inline="always")
def diode_pair_voltage(a, port_resistance, saturation_current, thermal_voltage):
    """Voltage across an anti-parallel diode pair fed by incident wave a through port_resistance.

    Solves (a - v) / R = 2 Is sinh(v / nVt) exactly: the omega closed form for the diode that
    conducts at this sign of a starts within the reverse diode's current of the answer, and
    Newton on the pair equation closes the gap quadratically. It stops once a step falls below
    1e-6 nVt, which leaves an error near 1e-12 nVt (checked against a bracketing solve); from
    _newton_pair's start one step is typical. The root lies between 0 and a, which bounds the
    answer. (A hot path keeps pair_offset's logarithm and calls diode_pair_reflection.)
    """
    magnitude = abs(a)
    offset = pair_offset(port_resistance, saturation_current, thermal_voltage)
    v = _newton_pair(magnitude, offset, port_resistance, saturation_current, thermal_voltage)[0]
    return math.copysign(min(max(v, 0.0), magnitude), a)


@njit(cache=True, error_model="numpy", inline="always")
def diode_pair_antiderivative(a, v, port_resistance, saturation_current, thermal_voltage):
    """An antiderivative in a of the wave the pair reflects, b = 2 v(a) - a, given
    v = diode_pair_voltage(a, ...): no solve of its own.

    With i(v) = 2 Is sinh(v / nVt) and a = v + R i(v), the integral of v da is
    v^2/2 + R v i - 2 R Is nVt cosh(v / nVt) (by parts); with R i = a - v that is
    a v - v^2/2 - 2 R Is nVt cosh(v / nVt), and the wave's antiderivative is
    a^2/2 - (a - v)^2 - 4 R Is nVt cosh(v / nVt). Written so, its derivative in v at fixed a is
    2 (a - v - R i(v)), zero at the pair's solution: an error e in v moves the result by about
    (1 + R i'(v)) e^2 only (1.4e-12 V^2 for a float solve's 1e-7 V at a = 5 V), and the solver's
    tolerance costs nothing here.
    """
    gap = a - v
    return (0.5 * a * a - gap * gap
            - 4.0 * port_resistance * saturation_current * thermal_voltage
            * math.cosh(v / thermal_voltage))


@njit(cache=True, error_model="numpy", inline="always")
def diode_pair_reflection(a, offset, port_resistance, saturation_current, thermal_voltage):
    """(b, F): the wave the pair reflects for incident wave a, b = 2 v(a) - a, and its
    antiderivative there (as diode_pair_antiderivative), from one solve (offset: pair_offset's
    for this port resistance) and no exponential beyond the solve's own: the cosh comes from
    the last Newton step's exponential and its reciprocal, carried to the final v by exp(+-s) =
    1 +- s + s^2/2 (the step s, in units of nVt, is below 1e-6 there: the cubic term is below
    2e-19). Where Newton has not converged or the bound moved v, the cosh is computed."""
    magnitude = abs(a)
    v, e, ie, step = _newton_pair(magnitude, offset, port_resistance, saturation_current,
                                  thermal_voltage)
    bounded = min(max(v, 0.0), magnitude)
    s = step / thermal_voltage
    if bounded == v and abs(s) < 1e-6:
        cosh = 0.5 * (e * (1.0 + s * (1.0 + 0.5 * s)) + ie * (1.0 - s * (1.0 - 0.5 * s)))
    else:
        e = math.exp(bounded / thermal_voltage)
        cosh = 0.5 * (e + 1.0 / e)
    v = math.copysign(bounded, a)
    gap = a - v
    return (2.0 * v - a,
            0.5 * a * a - gap * gap
            - 4.0 * port_resistance * saturation_current * thermal_voltage * cosh)

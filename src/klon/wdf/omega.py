"""The Wright omega function and the diode roots built on it.

omega(x) solves w + ln(w) = x. A diode in series with a port resistance R has the closed-form
wave solution of Werner et al. (2016) in terms of omega; an anti-parallel pair has none, so the
pair takes the one-diode closed form as its first guess and Newton polishes it on the exact pair
equation. The polish matters: the one-diode form is off by the reverse diode's current and, on the
Klon clipper, by up to a couple of percent of the peak when used alone.

For anti-aliasing, the wave a pair reflects has an antiderivative in closed form from the solved
voltage (diode_pair_antiderivative; diode_pair_reflection gives both from one solve).
"""
import math

from numba import njit

MAX_NEWTON_STEPS = 8


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


@njit(cache=True, error_model="numpy", inline="always")
def _omega_start(x):
    """omega(x) to about 1e-6 (one Fritsch step): a start that Newton on the diode law polishes."""
    if x < -2.0:
        w = math.exp(x)
        w = w * (1.0 - w)
    elif x < 1.0:
        w = 0.5671432904097838 + x * (0.3211757 + 0.0523734 * x)
    else:
        w = x - math.log(x)
    z = x - w - math.log(w)
    q = 2.0 * (1.0 + w) * (1.0 + w + (2.0 / 3.0) * z)
    return w * (1.0 + z / (1.0 + w) * (q - z) / (q - 2.0 * z))


@njit(cache=True, error_model="numpy", inline="always")
def _newton_pair(magnitude, port_resistance, saturation_current, thermal_voltage):
    """diode_pair_voltage's solve for a wave of this magnitude: (v before the bound, the
    exponential exp(v / nVt) the last Newton step was taken at, that step)."""
    r_is = port_resistance * saturation_current
    inv_vt = 1.0 / thermal_voltage
    v = magnitude + r_is - thermal_voltage * _omega_start(
        math.log(r_is * inv_vt) + (magnitude + r_is) * inv_vt)
    g = 1.0 / port_resistance
    e = 1.0
    step = 0.0
    for _ in range(MAX_NEWTON_STEPS):
        e = math.exp(v * inv_vt)
        ie = 1.0 / e
        f = (magnitude - v) * g - saturation_current * (e - ie)
        step = f / (g + saturation_current * inv_vt * (e + ie))
        v += step
        if abs(step) < 1e-6 * thermal_voltage:
            break
    return v, e, step


@njit(cache=True, error_model="numpy", inline="always")
def diode_pair_voltage(a, port_resistance, saturation_current, thermal_voltage):
    """Voltage across an anti-parallel diode pair fed by incident wave a through port_resistance.

    Solves (a - v) / R = 2 Is sinh(v / nVt) exactly: the omega closed form for the diode that
    conducts at this sign of a starts within the reverse diode's current of the answer, and
    Newton on the pair equation closes the gap quadratically. It stops once a step falls below
    1e-6 nVt, which leaves an error near 1e-12 nVt (checked against a bracketing solve); two or
    three steps are typical. The root lies between 0 and a, which bounds the answer.
    """
    magnitude = abs(a)
    v = _newton_pair(magnitude, port_resistance, saturation_current, thermal_voltage)[0]
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
def diode_pair_reflection(a, port_resistance, saturation_current, thermal_voltage):
    """(b, F): the wave the pair reflects for incident wave a, b = 2 v(a) - a, and its
    antiderivative there (as diode_pair_antiderivative), from one solve and no exponential
    beyond the solve's own: the cosh comes from the last Newton step's exponential, carried to
    the final v by exp(s) = 1 + s + s^2/2 (the step s, in units of nVt, is below 1e-6 there: the
    cubic term is below 2e-19). Where Newton has not converged or the bound moved v, the cosh
    is computed."""
    magnitude = abs(a)
    v, e, step = _newton_pair(magnitude, port_resistance, saturation_current, thermal_voltage)
    bounded = min(max(v, 0.0), magnitude)
    s = step / thermal_voltage
    if bounded == v and abs(s) < 1e-6:
        e *= 1.0 + s * (1.0 + 0.5 * s)
    else:
        e = math.exp(bounded / thermal_voltage)
    v = math.copysign(bounded, a)
    cosh = 0.5 * (e + 1.0 / e)
    gap = a - v
    return (2.0 * v - a,
            0.5 * a * a - gap * gap
            - 4.0 * port_resistance * saturation_current * thermal_voltage * cosh)

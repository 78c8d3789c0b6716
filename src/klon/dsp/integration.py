"""A wide-band multistep rule for integrating a capacitor's current into its voltage.

The trapezoidal rule (the bilinear transform), v_n = v_(n-1) + T/(2C) (i_n + i_(n-1)), has
exactly the right phase but its gain at frequency f is the exact integrator's times x / tan x,
x = pi f / fs: -1.0 dB at 16 kHz when fs = 88.2 kHz. A capacitor that dominates its network
there (an op-amp's feedback capacitor far above its corner) passes that error straight to the
output. The wide-band rule takes four past currents as well:

    v_n = v_(n-1) + (T / C) * sum_k WIDEBAND_WEIGHTS[k] * i_(n-k),   k = 0 .. 4

exact for currents that are polynomials of degree <= 2 in time (third order, as the
three-weight Adams-Moulton rule), its two remaining degrees of freedom fitted by least squares
to the exact integrator's response up to 20 kHz at 88.2 kHz. Within 0.084 dB and 0.0051 rad of
exact to 16 kHz at every rate from 88.2 kHz up (tests/test_dsp.py).

It is not A-stable: a stiff capacitor (time constant below a few samples) needs the trapezoidal
rule. In companion form, i_n = g v_n - h_n with g = C / (T w0) and
h_n = g v_(n-1) + sum_(k>=1) (w_k / w0) i_(n-k); `companion_history` computes h_n from the
WIDEBAND_HISTORY past currents (newest first), and `remember_current` keeps them.
"""
import numpy as np
from numba import njit

WIDEBAND_TAPS = 5
WIDEBAND_ORDER = 3  # exact for currents of degree < 3
WIDEBAND_EDGE = 20_000 / 88_200  # the fitted band, as a fraction of the rate

# wideband_weights() with the values above; stored so the coefficients (and the C export's
# literals) do not depend on the linear algebra library's last bits. tests/test_dsp.py designs
# them again and compares.
WIDEBAND_WEIGHTS = np.array([
    0.37325453219215077, 0.8309952063785259, -0.31584614562181584,
    0.14568854333945086, -0.034092136288311675,
])
WIDEBAND_WEIGHTS.flags.writeable = False
WIDEBAND_HISTORY = WIDEBAND_WEIGHTS.size - 1  # past currents the rule reads
WIDEBAND_RATIOS = WIDEBAND_WEIGHTS[1:] / WIDEBAND_WEIGHTS[0]  # companion_history's ratios


def wideband_weights(taps=WIDEBAND_TAPS, order=WIDEBAND_ORDER, edge=WIDEBAND_EDGE, points=400):
    """The weights w_0..w_(taps-1): exact for polynomial currents below degree `order` (sum_k
    w_k (-k)^j = integral of s^j over [-1, 0]), the rest least-squares fitted so that the rule's
    gain and phase match the exact integrator's from 0 to `edge` x the rate."""
    k = np.arange(taps)
    exact = np.array([(-k) ** j for j in range(order)], float)
    moments = np.array([(-1.0) ** j / (j + 1) for j in range(order)])
    w = np.linspace(1e-3, 2 * np.pi * edge, points)  # rad per sample
    exact_gain = 1j * w / (1 - np.exp(-1j * w))  # (1 - z^-1) / (j w): the rule over the exact
    rows = np.exp(-1j * np.outer(w, k)) * exact_gain[:, None]
    a = np.vstack([rows.real, rows.imag])
    b = np.concatenate([np.ones(points), np.zeros(points)])
    # least squares under the moment conditions, by the KKT system
    kkt = np.block([[2 * a.T @ a, exact.T], [exact, np.zeros((order, order))]])
    return np.linalg.solve(kkt, np.concatenate([2 * a.T @ b, moments]))[:taps]


def relative_response(weights, frequency, sample_rate):
    """The rule's integrator over the exact one at `frequency` (complex: 1 is exact)."""
    w = 2 * np.pi * np.asarray(frequency, float) / sample_rate
    rule = np.exp(-1j * np.multiply.outer(w, np.arange(len(weights)))) @ np.asarray(weights)
    return rule * 1j * w / (1 - np.exp(-1j * w))


@njit(cache=True, inline="always")
def companion_history(g, v_previous, currents):
    """h_n = g v_(n-1) + sum_k WIDEBAND_RATIOS[k] currents[k], currents[k] being i_(n-1-k)."""
    h = g * v_previous
    for k in range(WIDEBAND_HISTORY):
        h += WIDEBAND_RATIOS[k] * currents[k]
    return h


@njit(cache=True, inline="always")
def remember_current(currents, current):
    """The newest current in front of currents[:WIDEBAND_HISTORY], the oldest dropped."""
    for k in range(WIDEBAND_HISTORY - 1, 0, -1):
        currents[k] = currents[k - 1]
    currents[0] = current

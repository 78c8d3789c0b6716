"""A first-order high-pass that removes DC offset, H(s) = s / (s + w0)."""
import math

from klon.core.errors import KlonError
from klon.dsp.bilinear import bilinear1, bilinear_constant
from klon.dsp.iir import FirstOrderFilter


class DCBlocker:
    """High-pass at cutoff_hz (-3 dB there exactly: the bilinear map is prewarped at it)."""

    def __init__(self, sample_rate, cutoff_hz=5.0, channels=1):
        if not sample_rate > 0:
            raise KlonError(f"sample rate must be positive, got {sample_rate}")
        if not 0 < cutoff_hz < 0.5 * sample_rate:
            raise KlonError(f"DC blocker cutoff must be between 0 and {0.5 * sample_rate:g} Hz, "
                            f"got {cutoff_hz}")
        self.sample_rate = float(sample_rate)
        self.cutoff_hz = float(cutoff_hz)
        c = bilinear_constant(self.sample_rate, self.cutoff_hz)
        bz0, bz1, az1 = bilinear1(1.0, 0.0, 1.0, 2.0 * math.pi * self.cutoff_hz, c)
        self._filter = FirstOrderFilter((bz0, bz1), (1.0, az1), channels)

    @property
    def coefficients(self):
        """(b0, b1, a1) of the digital filter."""
        return self._filter.coefficients

    def reset(self):
        self._filter.reset()

    def process(self, x, out=None):
        """Filter a block (1-D mono or channels x frames); out may be x."""
        return self._filter.process(x, out)

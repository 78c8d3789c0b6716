"""The error-to-signal ratio (ESR), the accuracy measure of the seed and of this project."""
import numpy as np

from klon.core.errors import KlonError

_TINY = 1e-30  # a silent clip scores its error energy instead of dividing by zero


def esr(reference, estimate):
    """Sum of squared error over sum of squared reference (the seed's equation 7)."""
    reference = np.asarray(reference, dtype=np.float64)
    error = reference - np.asarray(estimate, dtype=np.float64)
    energy = np.sum(reference ** 2)
    if energy == 0.0:
        raise KlonError("ESR is undefined for a silent reference")
    return float(np.sum(error ** 2) / energy)


def clip_esr(estimate, reference):
    """For clips x samples: (each clip's ESR, the ESR of all clips pooled: equation 7 with the
    sums over every clip)."""
    reference = np.asarray(reference, np.float64)
    error = np.sum((reference - np.asarray(estimate, np.float64)) ** 2, axis=-1)
    energy = np.sum(reference ** 2, axis=-1)
    return error / np.maximum(energy, _TINY), float(error.sum() / max(energy.sum(), _TINY))

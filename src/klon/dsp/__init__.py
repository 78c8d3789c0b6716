"""Circuit-agnostic DSP: bilinear transform, IIR sections, oversampling, smoothing, DC blocking."""
from .bilinear import bilinear, bilinear1, bilinear2, bilinear_constant
from .dc_blocker import DCBlocker
from .iir import Biquad, FirstOrderFilter, biquad_block, first_order_block
from .oversampling import Oversampler
from .smoothing import LinearSmoother, smoother_next, smoother_set_target, smoother_skip

__all__ = [
    "bilinear", "bilinear1", "bilinear2", "bilinear_constant",
    "DCBlocker",
    "Biquad", "FirstOrderFilter", "biquad_block", "first_order_block",
    "Oversampler",
    "LinearSmoother", "smoother_next", "smoother_set_target", "smoother_skip",
]

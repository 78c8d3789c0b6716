"""Circuit-agnostic DSP: bilinear transform, IIR sections, oversampling, smoothing, DC blocking."""
from klon.dsp.bilinear import bilinear, bilinear1, bilinear2, bilinear_constant
from klon.dsp.dc_blocker import DCBlocker
from klon.dsp.iir import Biquad, FirstOrderFilter, biquad_block, first_order_block
from klon.dsp.oversampling import Oversampler
from klon.dsp.smoothing import LinearSmoother, smoother_next, smoother_set_target, smoother_skip

__all__ = [
    "bilinear", "bilinear1", "bilinear2", "bilinear_constant",
    "DCBlocker",
    "Biquad", "FirstOrderFilter", "biquad_block", "first_order_block",
    "Oversampler",
    "LinearSmoother", "smoother_next", "smoother_set_target", "smoother_skip",
]

"""Circuit-agnostic DSP: the bilinear transform, half-band oversampling, knob glides
(smoothing), the rational tanh/sigmoid the neural kernels use, synthesized guitar."""
from klon.dsp.bilinear import bilinear, bilinear1, bilinear2, bilinear_constant
from klon.dsp.oversampling import Oversampler
from klon.dsp.smoothing import smoother_next, smoother_set_target, smoother_skip

__all__ = [
    "bilinear", "bilinear1", "bilinear2", "bilinear_constant",
    "Oversampler",
    "smoother_next", "smoother_set_target", "smoother_skip",
]

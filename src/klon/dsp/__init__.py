"""Circuit-agnostic DSP, one module each: `bilinear` (the bilinear transform), `integration`
(a wide-band multistep rule for a capacitor), `oversampling` (half-band up- and down-sampling),
`resampler` (streaming conversion between any two rates), `activations` (the rational
tanh/sigmoid the neural kernels use), `synth` (synthesized guitar).
Import from the module: nothing is loaded until asked for (a knob's glide does not load scipy's
filter design)."""

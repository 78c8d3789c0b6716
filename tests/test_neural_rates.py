"""The neural engine at host rates other than its model's: the model runs at its own rate inside
streaming converters (klon.dsp.resampler), with the latency reported and taken off by whole-signal
calls."""
import numpy as np
import pytest

from klon import Centaur
from klon.core.errors import KlonError
from klon.dsp.synth import guitar_riff
from klon.neural import ModelBank

RATES = (22_050, 32_000, 48_000, 88_200, 96_000, 192_000)


def _stream(processor, x, block, moves=()):
    """x (channels x frames) in blocks of `block`, each (frame, gain) of `moves` set before the
    block that starts there (cut at it)."""
    out, i = [], 0
    cuts = [(frame, gain) for frame, gain in moves] + [(x.shape[1], None)]
    for cut, gain in cuts:
        while i < cut:
            n = min(block, cut - i)
            out.append(processor.process(x[:, i:i + n]))
            i += n
        if gain is not None:
            processor.gain = gain
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("rate", [22_050, 96_000])
def test_resampled_streaming_is_block_size_independent_with_knob_moves(rate):
    x = np.stack([guitar_riff(rate, 0.6, seed=1), guitar_riff(rate, 0.6, seed=2)])
    moves = ((int(0.1 * rate), 0.9), (int(0.35 * rate), 0.2))
    results = [_stream(Centaur(rate, gain=0.4, engine="neural", models="circuit-cond"), x,
                       block, moves)
               for block in (1, 64, 333, 4096)]
    assert np.max(np.abs(results[0])) > 0.05
    for y in results[1:]:
        assert np.max(np.abs(y - results[0])) < 1e-6


@pytest.mark.parametrize("rate", RATES)
def test_a_whole_signal_comes_back_aligned_at_its_rate_and_length(rate):
    pedal = Centaur(rate, gain=0.5, engine="neural", models="circuit")  # a 44.1 kHz set
    assert pedal.sample_rate == rate and pedal.latency > 0
    x = guitar_riff(rate, 0.5, seed=3)
    whole = pedal(x)
    assert whole.shape == x.shape and np.all(np.isfinite(whole))
    # streamed from rest, the same samples come `latency` samples later
    pedal.reset()
    streamed = _stream(pedal, np.r_[x, np.zeros(pedal.latency, np.float32)][None], 256)[0]
    np.testing.assert_allclose(streamed[pedal.latency:], whole, atol=1e-6)


def test_at_the_models_rate_nothing_is_resampled():
    bank = ModelBank("circuit-cond", 0.5, sample_rate=44_100)
    assert not bank.resampled and bank.latency == 0


def test_rates_the_converters_cannot_take_are_refused():
    for rate, message in ((44_100.5, "whole number of Hz"), (8_000, "unsupported sample rate"),
                          (384_000, "unsupported sample rate"), ("fast", "must be a number")):
        with pytest.raises(KlonError, match=message):
            Centaur(rate, engine="neural")

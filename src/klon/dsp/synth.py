"""Guitar-like test audio made in code, so the demo and tests download nothing.

`guitar_riff` plucks a string model (Karplus-Strong with a pick-position comb, a one-zero loss
filter and fractional-delay tuning) through a short riff at DI level: peaks of a few hundred
millivolts, the level a passive pickup gives an input jack.
"""
import numpy as np
from numba import njit

# (start beat, MIDI note, velocity 0..1): an E minor pentatonic riff with a double stop
RIFF = [
    (0.0, 40, 1.0), (0.5, 52, 0.7), (1.0, 55, 0.8), (1.5, 57, 0.8), (2.0, 59, 0.9),
    (2.0, 64, 0.6), (3.0, 57, 0.7), (3.5, 55, 0.7), (4.0, 52, 0.9), (4.5, 50, 0.6),
    (5.0, 47, 0.8), (6.0, 40, 1.0), (6.0, 47, 0.8), (6.0, 52, 0.7),
]


@njit(cache=True)
def _pluck(out, start, frequency, velocity, sample_rate, decay_seconds, seed):
    """Add one plucked note into out from sample `start` (Karplus-Strong)."""
    np.random.seed(seed)
    period = sample_rate / frequency - 0.5  # the loss filter adds half a sample of delay
    length = int(period)
    frac = period - length
    eta = (1.0 - frac) / (1.0 + frac)  # first-order all-pass for the fractional part
    line = np.zeros(length + 2)
    # excitation: noise, low-passed by velocity (soft picks are darker), with a pick-position comb
    smooth = 0.5 * (1.0 - velocity) + 0.1
    prev = 0.0
    for i in range(length):
        prev = (1.0 - smooth) * (np.random.random() * 2.0 - 1.0) + smooth * prev
        line[i] = prev
    pick = max(1, int(0.13 * length))
    for i in range(length - 1, pick - 1, -1):
        line[i] -= line[i - pick]
    loss = 10.0 ** (-3.0 / (frequency * decay_seconds))  # -60 dB after decay_seconds
    index = 0
    ap_x = 0.0
    ap_y = 0.0
    last = 0.0
    n_samples = min(out.shape[0] - start, int(decay_seconds * sample_rate))
    for n in range(n_samples):
        current = line[index]
        filtered = loss * 0.5 * (current + last)
        last = current
        y = eta * filtered + ap_x - eta * ap_y
        ap_x = filtered
        ap_y = y
        line[index] = y
        index += 1
        if index >= length:
            index = 0
        out[start + n] += velocity * current


def guitar_riff(sample_rate=44_100, seconds=4.0, peak_volts=0.3, tempo_bpm=120.0, seed=1):
    """A mono riff as float32 volts (peak `peak_volts`)."""
    n = int(round(seconds * sample_rate))
    out = np.zeros(n)
    beat = 60.0 / tempo_bpm
    for i, (start_beat, note, velocity) in enumerate(RIFF):
        start = int(start_beat * beat * sample_rate)
        if start >= n:
            continue
        frequency = 440.0 * 2.0 ** ((note - 69) / 12.0)
        _pluck(out, start, frequency, velocity, float(sample_rate), 2.5, seed + i)
    # the pickup and cable roll off the top end
    alpha = np.exp(-2 * np.pi * 6000.0 / sample_rate)
    from scipy.signal import lfilter
    out = lfilter([1 - alpha], [1, -alpha], out)
    out *= peak_volts / max(np.max(np.abs(out)), 1e-12)
    return out.astype(np.float32)


def guitar_phrases(sample_rate=44_100, seconds=4.0, peak_volts=0.3, seed=0):
    """Random playing (float32 volts, peak `peak_volts`): single notes, double stops and chords
    from a pentatonic scale over three octaves, at a random tempo, with random velocities and
    let-ring or muted decays. Training data that sounds like a guitarist warming up."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n)
    scale = [0, 3, 5, 7, 10]
    root = int(rng.integers(40, 46))
    notes = [root + 12 * octave + step for octave in range(3) for step in scale]
    beat = 60.0 / rng.uniform(70.0, 170.0)
    t = 0.0
    while t < seconds:
        voices = rng.choice([1, 1, 1, 2, 3])
        first = int(rng.integers(0, len(notes) - 4))
        decay = rng.choice([0.15, 0.4, 1.0, 2.5])  # muted .. ringing
        start = int(t * sample_rate)
        for v in range(voices):
            note = notes[min(first + 2 * v, len(notes) - 1)]
            frequency = 440.0 * 2.0 ** ((note - 69) / 12.0)
            strum = int(v * rng.uniform(0.005, 0.02) * sample_rate)
            if start + strum < n:
                _pluck(out, start + strum, frequency, rng.uniform(0.3, 1.0), float(sample_rate),
                       decay, int(rng.integers(1 << 30)))
        t += beat * rng.choice([0.25, 0.5, 0.5, 1.0, 2.0])
    alpha = np.exp(-2 * np.pi * rng.uniform(3000.0, 8000.0) / sample_rate)  # pickup + cable
    from scipy.signal import lfilter
    out = lfilter([1 - alpha], [1, -alpha], out)
    out *= peak_volts / max(np.max(np.abs(out)), 1e-12)
    return out.astype(np.float32)


def sine_sweep(sample_rate, seconds, amplitude, low_hz=20.0, high_hz=20_000.0):
    """A logarithmic sine sweep with 5 ms fades at both ends (float64 volts)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    high_hz = min(high_hz, 0.45 * sample_rate)
    k = np.log(high_hz / low_hz)
    phase = 2 * np.pi * low_hz * seconds / k * (np.exp(t / seconds * k) - 1.0)
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.005)
    return amplitude * np.sin(phase) * np.clip(fade, 0.0, 1.0)

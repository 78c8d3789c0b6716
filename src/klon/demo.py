"""The demo: a synthesized guitar riff through the pedal at a few settings, as WAVs and a plot."""
import os
import sys
import tempfile

import numpy as np

from . import audio
from .circuit import Centaur
from .synth import guitar_riff

SAMPLE_RATE = 44_100
SETTINGS = [  # (name, gain, treble, level)
    ("clean-boost", 0.0, 0.5, 0.5),
    ("edge", 0.5, 0.5, 0.5),
    ("drive", 1.0, 0.7, 0.5),
]


def run_demo(out_dir, seconds=4.0):
    os.makedirs(out_dir, exist_ok=True)
    riff = guitar_riff(SAMPLE_RATE, seconds)
    paths = [os.path.join(out_dir, "input.wav")]
    audio.write(paths[0], riff, SAMPLE_RATE)
    outputs = []
    for name, gain, treble, level in SETTINGS:
        y = Centaur(SAMPLE_RATE, gain=gain, treble=treble, level=level)(riff)
        outputs.append((f"circuit {name} (gain {gain:g}, treble {treble:g}, level {level:g})", y))
        paths.append(os.path.join(out_dir, f"circuit-{name}.wav"))
        audio.write(paths[-1], y, SAMPLE_RATE)
    paths.append(os.path.join(out_dir, "demo.png"))
    plot_comparison(paths[-1], riff, outputs, SAMPLE_RATE)
    for p in paths:
        print(p, file=sys.stderr)
    return paths


def plot_comparison(path, x, outputs, sample_rate):
    """Waveforms (a 40 ms window after the first pluck) and spectra of input and outputs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    fig, (wave_ax, spec_ax) = plt.subplots(2, 1, figsize=(10, 8))
    start = int(0.05 * sample_rate)
    window = slice(start, start + int(0.04 * sample_rate))
    t_ms = np.arange(window.stop - window.start) / sample_rate * 1e3
    for label, signal in [("input (guitar DI)", x)] + outputs:
        wave_ax.plot(t_ms, signal[window], label=label, lw=1)
        f, p = welch(signal, sample_rate, nperseg=4096)
        spec_ax.semilogx(f[1:], 10 * np.log10(p[1:] + 1e-20), label=label, lw=1)
    wave_ax.set(xlabel="time (ms)", ylabel="volts", title="Waveforms")
    spec_ax.set(xlabel="frequency (Hz)", ylabel="power spectral density (dB V²/Hz)",
                title="Spectra", xlim=(20, sample_rate / 2))
    for ax in (wave_ax, spec_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def save_figure(fig, path):
    """Write a figure atomically (a temp file in the same folder, then a rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0o600 would hide the figure from other users
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

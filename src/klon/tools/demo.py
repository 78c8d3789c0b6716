"""The demo: a synthesized guitar riff through the pedal at a few settings, as WAVs and a plot."""
import os
import sys

import numpy as np

from klon.core import audio
from klon.core.errors import KlonError
from klon.core.figures import pyplot, save_figure
from klon.dsp.synth import guitar_riff
from klon.pedal import Centaur

SAMPLE_RATE = 44_100
SETTINGS = [  # (name, gain, treble, level)
    ("clean-boost", 0.0, 0.5, 0.5),
    ("edge", 0.5, 0.5, 0.5),
    ("drive", 1.0, 0.7, 0.5),
]


def run_demo(out_dir: str | os.PathLike, seconds: float = 4.0) -> list[str]:
    """The riff through both engines at each setting: input.wav, circuit-<setting>.wav,
    neural-<setting>.wav and demo.png; prints how far apart the engines are (ESR)."""
    from klon.core.metrics import esr
    make_folder(out_dir)
    riff = guitar_riff(SAMPLE_RATE, seconds)
    paths = [os.path.join(out_dir, "input.wav")]
    audio.write(paths[0], riff, SAMPLE_RATE)
    rows = []
    for name, gain, treble, level in SETTINGS:
        outputs = {}
        for engine in ("circuit", "neural"):
            pedal = Centaur(SAMPLE_RATE, gain=gain, treble=treble, level=level, engine=engine)
            outputs[engine] = pedal(riff)
            paths.append(os.path.join(out_dir, f"{engine}-{name}.wav"))
            audio.write(paths[-1], outputs[engine], SAMPLE_RATE)
        difference = esr(outputs["circuit"], outputs["neural"])
        rows.append((f"{name} (gain {gain:g}, treble {treble:g}, level {level:g})", outputs,
                     difference))
        print(f"{name}: neural vs circuit ESR {100 * difference:.2f} %", file=sys.stderr)
    paths.append(os.path.join(out_dir, "demo.png"))
    plot_comparison(paths[-1], riff, rows, SAMPLE_RATE)
    for p in paths:
        print(p, file=sys.stderr)
    return paths


def make_folder(out_dir: str | os.PathLike) -> None:
    """The output folder, made if missing, or a one-line KlonError saying why it cannot be."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise KlonError(f"--out '{out_dir}' is a file: give a folder for the demo's files")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise KlonError(f"cannot make the folder '{out_dir}': {error.strerror or error}") \
            from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise KlonError(f"cannot write into the folder '{out_dir}': permission denied")


def plot_comparison(path: str | os.PathLike, x: np.ndarray, rows: list, sample_rate: float) -> None:
    """Per setting, the two engines' waveforms (40 ms after the first pluck) and spectra, with
    the input's."""
    from scipy.signal import welch

    fig, axes = pyplot().subplots(len(rows), 2, figsize=(12, 3.2 * len(rows)), squeeze=False)
    start = int(0.05 * sample_rate)
    window = slice(start, start + int(0.04 * sample_rate))
    t_ms = np.arange(window.stop - window.start) / sample_rate * 1e3
    for (title, outputs, difference), (wave_ax, spec_ax) in zip(rows, axes, strict=True):
        signals = [("input (guitar DI)", x, ":")] + \
            [(engine, y, "-" if engine == "circuit" else "--") for engine, y in outputs.items()]
        for label, signal, style in signals:
            wave_ax.plot(t_ms, signal[window], style, label=label, lw=1)
            f, p = welch(signal, sample_rate, nperseg=4096)
            spec_ax.semilogx(f[1:], 10 * np.log10(p[1:] + 1e-20), style, label=label, lw=1)
        wave_ax.set(xlabel="time (ms)", ylabel="volts",
                    title=f"{title}: neural vs circuit ESR {100 * difference:.2f} %")
        spec_ax.set(xlabel="frequency (Hz)", ylabel="PSD (dB V²/Hz)", xlim=(20, sample_rate / 2))
        for ax in (wave_ax, spec_ax):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)

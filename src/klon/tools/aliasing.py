"""`klon aliasing`: how much the pedal aliases, as the signal-to-aliasing ratio (SAR) of pure tones.

The protocol of Carson, Wright and Bilbao (DAFx 2025): a sine at f0, faded in over FADE (50 ms),
goes through the pedal, the output settles (SETTLE seconds in all: the coupling capacitors are
slow), and an exactly periodic stretch of the steady state, N = SIZE samples, is analysed with a
plain (rectangular) FFT. The tone is put on bin k, f0 = k fs / N, with k odd and N a power of
two, so:

- the tone and all its harmonics m k sit exactly on bins (k cycles in N samples: no leakage, no
  window);
- a harmonic above Nyquist folds to the bin |j N - m k|, which is not a multiple of k (k and N
  share no factor), so every alias lands clear of every harmonic bin. (Only harmonics of order N
  and up could fold onto one: at a tone of 200 Hz that is above 3 MHz.)

SAR = 10 log10(energy in the harmonic bins, the tone's included / energy in every other bin but
DC). A requested tone is rounded to the nearest odd k. The strongest alias (the largest
non-harmonic bin) is reported with its level against the tone's.

The reference is as near alias-free as klon gets: the circuit engine at REFERENCE_FACTOR (4) times
the rate with 4x oversampling, fed the tone made at that rate, its steady state band-limited
below the target rate's Nyquist and decimated. The stretch is periodic, so the band-limit is
exact: the DFT bins above fs / 2 are dropped (an ideal low-pass, nothing of it folds back).
Where 4 fs is above klon's highest rate (192 kHz) the factor is 2, or 1 at 192 kHz.

Every output file is written atomically; no NaN or Inf reaches any of them (SAR is capped at
MAX_SAR dB, a silent output is a KlonError).
"""
import csv
import io
import json
import os
import statistics
from dataclasses import asdict, dataclass, fields

import numpy as np

from klon.core.errors import KlonError
from klon.core.figures import pyplot, save_figure
from klon.core.files import atomic_write
from klon.core.processor import MAX_SAMPLE_RATE, check_knob, check_sample_rate
from klon.tools.bench import output_folder

ENGINES = ("circuit", "neural", "reference")
SIZE = 2 ** 14  # samples analysed (0.37 s at 44.1 kHz: bins 2.7 Hz apart, odd ones 5.4 Hz)
SETTLE = 0.5  # seconds before the analysed stretch, the fade-in included
# A tone switched on at once kicks the slow capacitors: their decay, not periodic, is still
# there after 0.5 s and caps the reference's SAR near 130 dB (Gain 0.5, 0.3 V). Faded in over
# 50 ms, it is under 200 dB there by then.
FADE = 0.05  # seconds
REFERENCE_FACTOR = 4  # the reference runs at this many times the rate (less above 48 kHz)
REFERENCE_OVERSAMPLING = 4
SUMMARY_FROM = 1_000.0  # Hz: the summary's tones (below, the pedal barely aliases)
DEFAULT_TONES = 24  # log-spaced from LOWEST_TONE to HIGHEST_TONE or fs / 4
LOWEST_TONE, HIGHEST_TONE = 200.0, 10_000.0
LOWEST_ALLOWED = 20.0  # Hz: the bottom of the audio band
QUICK_TONES = (1_200.0, 2_000.0, 4_000.0, 8_000.0)
AMPLITUDE = 0.3  # volts: guitar level is 0.1-0.5 V
MAX_SAR = 300.0  # dB: an exactly alias-free stretch (float64 rounding is about -300 dB)
CHANNELS = 16  # tones rendered at once, as channels of one pedal
TICKS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)  # Hz, the plot's


@dataclass
class ToneResult:
    """One tone through one pedal: what was asked, what was played, what came out."""
    engine: str  # circuit, neural or reference
    sample_rate: float
    oversampling: int | None  # the circuit's (the reference's at its own rate); None: neural
    models: str | None  # the neural engine's model set
    gain: float
    treble: float
    level: float
    amplitude: float  # volts, peak
    requested: float  # Hz
    tone: float  # Hz: on bin k, k odd
    sar: float  # dB
    alias: float  # Hz: the strongest alias
    alias_level: float  # dB against the tone


@dataclass
class Analysis:
    """What one steady-state stretch holds."""
    sar: float  # dB
    alias_bin: int  # the strongest alias's bin
    alias_level: float  # its level against the tone's, dB


def tone_bin(frequency: float, sample_rate: float, size: int = SIZE) -> int:
    """The odd bin k nearest `frequency`, 3 at least (at k = 1 every bin is a harmonic's); a
    KlonError unless LOWEST_ALLOWED <= frequency < Nyquist."""
    if not np.isfinite(frequency) or frequency < LOWEST_ALLOWED:
        raise KlonError(f"tone {frequency:g} Hz: a tone must be {LOWEST_ALLOWED:g} Hz or more")
    if frequency >= sample_rate / 2:
        raise KlonError(f"tone {frequency:g} Hz is at or above Nyquist ({sample_rate / 2:g} Hz "
                        f"at {sample_rate:g} Hz)")
    k = 2 * round((frequency * size / sample_rate - 1) / 2) + 1
    return int(min(max(k, 3), size // 2 - 1))


def tone_frequency(k: int, sample_rate: float, size: int = SIZE) -> float:
    return k * sample_rate / size


def harmonic_bins(k: int, size: int = SIZE) -> np.ndarray:
    """The bins of the tone and its harmonics below Nyquist: k, 2k, 3k, ..."""
    return np.arange(k, size // 2 + 1, k)


def alias_bin(harmonic: int, k: int, size: int = SIZE) -> int:
    """Where harmonic m of the tone on bin k lands in an N-point DFT: |j N - m k| folded into
    0..N/2."""
    b = harmonic * k % size
    return int(min(b, size - b))


def sine(k: int, frames: int, size: int = SIZE, amplitude: float = 1.0,
         fade: int = 0) -> np.ndarray:
    """`frames` samples of the tone on bin k of an N-point DFT, from phase 0, faded in over
    `fade` samples (a raised cosine). The phase is taken modulo one period first, so every
    period is the same to the last bit."""
    n = np.arange(frames, dtype=np.int64)
    x = amplitude * np.sin(2 * np.pi * (k * n % size) / size)
    fade = min(fade, frames)
    x[:fade] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    return x


def analyse(stretch: np.ndarray, k: int) -> Analysis:
    """SAR of a periodic steady-state stretch (N samples, N a power of two) that holds the tone
    on odd bin k: harmonic bins (k's multiples) against every other bin but DC."""
    size = len(stretch)
    if size < 8 or size & (size - 1) or k % 2 == 0 or not 1 < k < size // 2:
        raise KlonError(f"bin {k} of a {size}-point DFT: need N a power of two and k odd, "
                        f"from 3 to below N/2")
    power = np.abs(np.fft.rfft(np.asarray(stretch, dtype=np.float64))) ** 2
    power[1:size // 2] *= 2  # a real signal's energy: the negative frequencies too
    power[0] = 0.0  # DC is neither tone nor alias (the pedal's bias, settling)
    harmonic = np.zeros(power.size, dtype=bool)
    harmonic[harmonic_bins(k, size)] = True
    signal = float(power[harmonic].sum())
    if not signal > 0 or not np.isfinite(power).all():
        raise KlonError("the output is silent (or not finite) at the tone: nothing to measure")
    aliases = np.where(harmonic, 0.0, power)
    floor = signal * 10 ** (-MAX_SAR / 10)
    strongest = int(np.argmax(aliases))
    return Analysis(sar=10 * np.log10(signal / max(float(aliases.sum()), floor)),
                    alias_bin=strongest,
                    alias_level=10 * np.log10(max(float(aliases[strongest]), floor) / power[k]))


def band_limit(stretch: np.ndarray, factor: int) -> np.ndarray:
    """A periodic stretch of factor * N samples low-passed below 1 / (2 factor) of its rate and
    decimated by `factor`, exactly: its DFT with the bins at and above the new Nyquist dropped
    (an ideal low-pass for a periodic signal: nothing folds back)."""
    frames = len(stretch)
    if factor < 1 or frames % factor or (frames // factor) % 2:
        raise KlonError(f"cannot decimate {frames} samples by {factor}")
    size = frames // factor
    spectrum = np.fft.rfft(np.asarray(stretch, dtype=np.float64))[:size // 2 + 1]
    spectrum[size // 2] = 0.0  # the new Nyquist bin: both sides of it fold there
    return np.fft.irfft(spectrum, size) / factor


def reference_factor(sample_rate: float) -> int:
    """How many times the rate the reference runs at: 4, or less where that is above klon's
    highest rate."""
    for factor in (REFERENCE_FACTOR, 2):
        if factor * sample_rate <= MAX_SAMPLE_RATE:
            return factor
    return 1


def default_tones(sample_rate: float, quick: bool = False) -> list[float]:
    """DEFAULT_TONES log-spaced from 200 Hz to 10 kHz (QUICK_TONES with `quick`), but none above
    fs / 4: there, 10 kHz would have no harmonic below Nyquist, and its rounding to an odd bin is
    coarse."""
    top = min(HIGHEST_TONE, sample_rate / 4)
    if quick:
        return [t for t in QUICK_TONES if t <= top] or [top]
    return [float(round(t)) for t in np.geomspace(LOWEST_TONE, top, DEFAULT_TONES)]


def amplitudes_of(amplitude) -> list[float]:
    """A peak amplitude or a list of them, as floats."""
    values = [amplitude] if np.ndim(amplitude) == 0 else list(amplitude)
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise KlonError(f"amplitude must be a number of volts, got {amplitude!r}") from None
    if not values:
        raise KlonError("no amplitude given")
    return values


def check_settings(engine: str, sample_rate: float, gain: float, treble: float, level: float,
                   amplitude, tones, oversampling: int | None = None,
                   models: str | os.PathLike | None = None, settle: float = SETTLE) -> None:
    """Refuse what cannot be measured, before any pedal runs."""
    if engine not in ENGINES:
        raise KlonError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    rate = check_sample_rate(sample_rate)
    for name, value in (("Gain", gain), ("Treble", treble), ("Level", level)):
        check_knob(name, value)
    for volts in amplitudes_of(amplitude):
        if not np.isfinite(volts) or volts <= 0:
            raise KlonError(f"amplitude must be a positive number of volts, got {volts:g}")
    if tones is not None:
        if len(tones) == 0:
            raise KlonError("no tones given")
        for frequency in tones:
            tone_bin(float(frequency), rate)
    if oversampling is not None and engine != "circuit":
        raise KlonError(f"oversampling applies to the circuit engine, not to {engine!r} (the "
                        f"reference's is fixed: {REFERENCE_OVERSAMPLING}x at "
                        f"{REFERENCE_FACTOR}x the rate)")
    if oversampling is not None and oversampling not in (1, 2, 4):
        raise KlonError(f"oversampling must be 1, 2 or 4, got {oversampling}")
    if models is not None and engine != "neural":
        raise KlonError(f"models apply to the neural engine, not to {engine!r}")
    if engine == "neural":
        from klon.dsp.resampler import check_rate
        from klon.neural.bank import model_set_files
        check_rate(rate)  # the models' rate converters take whole numbers of Hz
        if models is not None:
            model_set_files(models)
    if not np.isfinite(settle) or settle < 0:
        raise KlonError(f"settle must be a non-negative number of seconds, got {settle:g}")


def make_pedal(engine: str, sample_rate: float, gain: float, treble: float, level: float,
               oversampling: int | None, models):
    """The pedal that plays the tones and the rate it runs at (the reference's is higher)."""
    from klon.pedal import Centaur
    knobs = {"gain": gain, "treble": treble, "level": level}
    if engine == "reference":
        rate = reference_factor(sample_rate) * sample_rate
        return Centaur(rate, engine="circuit", oversampling=REFERENCE_OVERSAMPLING, **knobs), rate
    if engine == "neural":
        return Centaur(sample_rate, engine="neural", models=models, **knobs), sample_rate
    return Centaur(sample_rate, engine="circuit", oversampling=oversampling, **knobs), sample_rate


def steady_states(pedal, bins: list[int], amplitudes: list[float], factor: int,
                  settle_frames: int, fade_frames: int) -> np.ndarray:
    """Each (bin, amplitude) through `pedal` at `factor` times the analysis rate: the last
    factor * N samples, channels x frames, float64 (the kernels' own precision: a float32
    output would put a floor near -150 dB under the SAR)."""
    size = SIZE * factor
    frames = settle_frames + size
    jobs = [(k, volts) for volts in amplitudes for k in bins]
    out = np.empty((len(jobs), size))
    for start in range(0, len(jobs), CHANNELS):
        chunk = jobs[start:start + CHANNELS]
        x = np.stack([sine(k, frames, size, volts, fade_frames) for k, volts in chunk])
        y = np.empty_like(x)
        pedal.reset(len(chunk))
        pedal.process(x, out=y)  # one stream from rest; latency only shifts the phase
        out[start:start + len(chunk)] = y[:, -size:]
    return out


def measure(engine: str = "circuit", sample_rate: float = 44_100, gain: float = 0.5,
            treble: float = 0.5, level: float = 0.5, amplitude=AMPLITUDE, tones=None,
            oversampling: int | None = None, models: str | os.PathLike | None = None,
            quick: bool = False, settle: float = SETTLE) -> list[ToneResult]:
    """SAR of every tone at every amplitude (volts, peak; a number or a list) through the pedal
    (`engine` circuit or neural with its options, or the near-alias-free reference); `tones` in
    Hz (default: default_tones(sample_rate, quick)), each rounded to an odd bin. One ToneResult
    per amplitude and tone, amplitudes outermost."""
    check_settings(engine, sample_rate, gain, treble, level, amplitude, tones, oversampling,
                   models, settle)
    rate = float(sample_rate)
    requested = [float(t) for t in (default_tones(rate, quick) if tones is None else tones)]
    amplitudes = amplitudes_of(amplitude)
    pedal, run_rate = make_pedal(engine, rate, gain, treble, level, oversampling, models)
    factor = round(run_rate / rate)
    bins = [tone_bin(t, rate) for t in requested]
    states = steady_states(pedal, bins, amplitudes, factor, round(settle * run_rate),
                           round(min(FADE, settle) * run_rate))
    if engine == "neural":
        from klon.neural.gain_stage import default_models
        used_models, used_oversampling = str(default_models(rate) if models is None else models), \
            None
    else:
        used_models, used_oversampling = None, pedal.gain_stage.oversampling
    results, row = [], 0
    for volts in amplitudes:
        for asked, k in zip(requested, bins, strict=True):
            stretch = band_limit(states[row], factor) if factor > 1 else states[row]
            a = analyse(stretch, k)
            results.append(ToneResult(
                engine=engine, sample_rate=rate, oversampling=used_oversampling,
                models=used_models, gain=float(gain), treble=float(treble), level=float(level),
                amplitude=volts, requested=asked, tone=tone_frequency(k, rate), sar=float(a.sar),
                alias=tone_frequency(a.alias_bin, rate), alias_level=float(a.alias_level)))
            row += 1
    return results


def label(result: ToneResult) -> str:
    """What played a tone, in a few words: 'circuit 2x', 'neural circuit', 'reference'."""
    if result.engine == "circuit":
        return f"circuit {result.oversampling}x"
    if result.engine == "neural":
        return f"neural {result.models}"
    factor = reference_factor(result.sample_rate)
    return (f"reference (circuit {result.oversampling}x at "
            f"{factor * result.sample_rate / 1000:g} kHz)")


def summarize(results: list[ToneResult]) -> list[dict]:
    """Median and worst SAR per engine and amplitude, over the tones asked at SUMMARY_FROM
    (1 kHz) and up, or over every tone where none is."""
    groups: dict[tuple, list[ToneResult]] = {}
    for r in results:
        groups.setdefault((label(r), r.amplitude), []).append(r)
    summary = []
    for (name, volts), group in groups.items():
        # the tone asked for: 1 kHz itself lands on 998.7 Hz at 44.1 kHz
        high = [r for r in group if r.requested >= SUMMARY_FROM]
        chosen = high or group
        sars = [r.sar for r in chosen]
        first = group[0]
        summary.append({"engine": first.engine, "label": name, "sample_rate": first.sample_rate,
                        "oversampling": first.oversampling, "models": first.models,
                        "gain": first.gain, "treble": first.treble, "level": first.level,
                        "amplitude": volts, "tones": len(chosen),
                        "over": f">= {SUMMARY_FROM:g} Hz" if high else "all tones",
                        "median_sar": float(statistics.median(sars)), "worst_sar": min(sars)})
    return summary


def run_aliasing(engine: str = "circuit", sample_rate: float = 44_100, gain: float = 0.5,
                 treble: float = 0.5, level: float = 0.5, amplitude=AMPLITUDE, tones=None,
                 oversampling: int | None = None, models=None, quick: bool = False,
                 reference: bool = False) -> dict:
    """`klon aliasing`'s whole job: the engine's tones, the reference's too with `reference`,
    and the summary, as one dict (settings, tones, summary)."""
    settings = {"engine": engine, "sample_rate": float(sample_rate), "gain": gain,
                "treble": treble, "level": level, "amplitudes": amplitudes_of(amplitude),
                "tones": None if tones is None else [float(t) for t in tones], "quick": quick,
                "oversampling": oversampling, "models": None if models is None else str(models),
                "reference": reference, "size": SIZE, "settle": SETTLE, "fade": FADE}
    check_settings(engine, sample_rate, gain, treble, level, amplitude, tones, oversampling,
                   models)
    common = {"sample_rate": sample_rate, "gain": gain, "treble": treble, "level": level,
              "amplitude": amplitude, "tones": tones, "quick": quick}
    results = measure(engine, oversampling=oversampling, models=models, **common)
    if reference and engine != "reference":
        results += measure("reference", **common)
    return {"settings": settings, "tones": [asdict(r) for r in results],
            "summary": summarize(results)}


def _results(report: dict) -> list[ToneResult]:
    return [ToneResult(**r) for r in report["tones"]]


def text_table(report: dict) -> str:
    """One row per tone, then the summary lines, as aligned text for the terminal."""
    s = report["settings"]
    lines = [f"SAR of pure tones at {s['sample_rate']:g} Hz, Gain {s['gain']:g}, Treble "
             f"{s['treble']:g}, Level {s['level']:g}: harmonic energy (the tone's included) "
             f"over every other bin's but DC, {SIZE} samples after {SETTLE:g} s.", ""]
    header = ["engine", "V", "asked Hz", "tone Hz", "SAR dB", "strongest alias Hz",
              "alias dB re tone"]
    rows = [[label(r), f"{r.amplitude:g}", f"{r.requested:g}", f"{r.tone:.1f}", f"{r.sar:.1f}",
             f"{r.alias:.1f}", f"{r.alias_level:.1f}"] for r in _results(report)]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(header)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
              for row in [header, *rows]]
    lines.append("")
    lines += [f"{g['label']}, {g['amplitude']:g} V: median SAR {g['median_sar']:.1f} dB, worst "
              f"{g['worst_sar']:.1f} dB over {g['tones']} tone(s) ({g['over']})"
              for g in report["summary"]]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = tuple(f.name for f in fields(ToneResult))


def csv_text(report: dict) -> str:
    """aliasing.csv: one row per engine, amplitude and tone."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in report["tones"]:
        writer.writerow(["" if r[c] is None else r[c] for c in CSV_COLUMNS])
    return buffer.getvalue()


def plot(report: dict, path: str | os.PathLike) -> None:
    """SAR against the tone (log frequency): one line per amplitude, the reference dashed in
    the same colour as its amplitude's line."""
    from matplotlib.ticker import NullFormatter

    results = _results(report)
    fig, ax = pyplot().subplots(figsize=(9, 5))
    colours = {}
    for reference in (False, True):
        for name in dict.fromkeys(label(r) for r in results
                                  if (r.engine == "reference") == reference):
            for volts in dict.fromkeys(r.amplitude for r in results if label(r) == name):
                line = [r for r in results if label(r) == name and r.amplitude == volts]
                style = {"color": colours.get(volts), "ls": "--"} if reference else {"ls": "-"}
                drawn, = ax.plot([r.tone for r in line], [r.sar for r in line], marker="o", ms=3,
                                 label=f"{name}, {volts:g} V", **style)
                colours.setdefault(volts, drawn.get_color())
    ax.set_xscale("log")
    ticks = [t for t in TICKS if min(r.tone for r in results) / 1.5 <= t
             <= max(r.tone for r in results) * 1.5]
    ax.set_xticks(ticks, [f"{t / 1000:g}k" if t >= 1000 else f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(SUMMARY_FROM, color="0.7", lw=0.8)
    s = report["settings"]
    ax.set(xlabel="tone f0 (Hz)", ylabel="SAR (dB)",
           title=f"klon aliasing: {s['sample_rate'] / 1000:g} kHz, Gain {s['gain']:g}, Treble "
                 f"{s['treble']:g}, Level {s['level']:g}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def write_outputs(report: dict, out_dir: str | os.PathLike) -> list[str]:
    """aliasing.csv, aliasing.json and aliasing.png in `out_dir` (made if missing)."""
    output_folder(out_dir)
    paths = [os.path.join(out_dir, f"aliasing.{ext}") for ext in ("csv", "json", "png")]
    atomic_write(paths[0], csv_text(report))
    # allow_nan=False: a NaN would be a bug, and must not pass as a number to whoever reads it
    atomic_write(paths[1], json.dumps(report, indent=1, allow_nan=False) + "\n")
    plot(report, paths[2])
    return paths

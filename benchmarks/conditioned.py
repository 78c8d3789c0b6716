"""The Gain-conditioned model at every Gain and the neural pedal at every host rate: the tables
of docs/conditioned.md.

    .venv/bin/python benchmarks/conditioned.py [--out docs/conditioned.md] [--clips 28]

1. ESR of the gain stage alone against the circuit's, on the reference DI clips the conditioned
   model never trained on (sample372..sample399; its dataset rendered sample0..sample371), at the
   13 Gain settings issue 14 measured: `circuit-cond` beside the five-model bank `circuit`.
2. The whole neural pedal against the whole circuit pedal at each host rate (the DI clips
   resampled to it), Gain 0.3 and 0.9, Treble and Level 0.5, with `circuit-cond` and with the
   default set for the rate; and `circuit-cond` against itself at its own rate (44.1 kHz, the
   output resampled to the host rate), in dB.
3. From a zero state, as RTNeural-based hosts start a model: the largest jump of the output in
   silence before it settles, for the shipped models and the original plugin's.
4. Generated playing (the demo's riff, `klon.dsp.synth.guitar_riff`), gain stage alone, at
   Gain 0 and 1 and three levels: what keeps `circuit-cond` from being the default; and at
   Gain 0 its error by frequency band.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from klon import Centaur  # noqa: E402
from klon.core import audio  # noqa: E402
from klon.core.files import rewrite_after  # noqa: E402
from klon.core.metrics import clip_esr, esr  # noqa: E402
from klon.core.paths import SHIPPED_MODELS, find_data  # noqa: E402
from klon.dsp.synth import guitar_riff  # noqa: E402
from klon.neural import ModelBank  # noqa: E402
from klon.neural.architectures import architecture  # noqa: E402
from klon.neural.kernels import compiled  # noqa: E402
from klon.neural.model_file import read_model  # noqa: E402
from klon.pedal import GainStage  # noqa: E402

GAINS = (0.0, 0.1, 0.2, 0.25, 0.33, 0.45, 0.5, 0.6, 0.7, 0.8, 0.875, 0.95, 1.0)
RATES = (22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 192_000)
HELD_OUT = [f"sample{i}" for i in range(372, 400)]
CONTEXT = 2048  # silence in front of each clip, as the training segments had
SKIP = 0.1  # seconds left out of the pedal scores (both pedals start from rest)
RIFF_LEVELS = (0.25, 0.5, 1.0)  # the riff scaled (at 1: 0.3 V peaks, as the demo plays it)
BANDS = (0, 20, 200, 500, 1000, 2000, 5000, 22_050)  # Hz


def _di_clips(data, names):
    return [audio.read(data / "klon-ltspice" / "DataIn" / f"{n}.wav")[0][0] for n in names]


def gain_table(clips):
    x = np.stack([np.r_[np.zeros(CONTEXT, np.float32), c] for c in clips])
    rows = []
    for gain in GAINS:
        y = GainStage(44_100, gain)(x.astype(np.float64))
        scores = []
        for models in ("circuit-cond", "circuit"):
            _, pooled = clip_esr(ModelBank(models, gain)(x)[:, CONTEXT:], y[:, CONTEXT:])
            scores.append(100 * pooled)
        rows.append((gain, *scores))
    return rows


def rate_table(clips):
    native_input = np.concatenate(clips)
    rows = []
    for rate in RATES:
        x = audio.resample(native_input, 44_100, rate)
        skip = int(SKIP * rate)
        cond = dict(engine="neural", models="circuit-cond")
        row = [rate, Centaur(rate, **cond).latency]
        for gain in (0.3, 0.9):
            knobs = dict(gain=gain, treble=0.5, level=0.5)
            circuit = Centaur(rate, **knobs)(x)
            neural = Centaur(rate, **cond, **knobs)(x)
            default = Centaur(rate, engine="neural", **knobs)(x)
            native = audio.resample(Centaur(44_100, **cond, **knobs)(native_input),
                                    44_100, rate)[:len(x)]
            row += [100 * esr(circuit[skip:], neural[skip:]),
                    10 * np.log10(max(esr(native[skip:], neural[skip:]), 1e-30)),
                    100 * esr(circuit[skip:], default[skip:])]
        rows.append(row)
    return rows


def zero_start_jump(spec, seconds=1.0):
    """Largest |output - settled output| in silence from a zero state, over the Gain grid for
    a conditioned model."""
    kernels = compiled(spec.kind, spec.hidden_size, spec.inputs)
    frames = int(seconds * spec.sample_rate)
    worst = 0.0
    for gain in (np.linspace(0, 1, 11) if spec.inputs == 2 else [None]):
        row = architecture(spec.kind).pack(spec)[None, :]  # state zero
        x = np.zeros((1, spec.inputs, frames), np.float32)
        if gain is not None:
            x[0, 1] = gain
        y = np.empty((1, frames), np.float32)
        kernels["run_model"](x, y, row)
        worst = max(worst, float(np.max(np.abs(y[0] - y[0, -1]))))
    return worst


def jump_table(data):
    rows = [("circuit-cond (GRU-16, Gain input)",
             zero_start_jump(read_model(SHIPPED_MODELS / "circuit-cond" / "gru16.json")))]
    for name, folder, pattern in (("circuit (GRU-8 bank)", SHIPPED_MODELS / "circuit", "gain_*"),
                                  ("original plugin's", data / "chowcentaur-models", "centaur_*")):
        rows.append((name, max(zero_start_jump(read_model(p))
                               for p in sorted(folder.glob(f"{pattern}.json")))))
    return rows


def riff_tables():
    """(rows of (gain, level, ESR % circuit-cond, ESR % circuit bank), rows of (band low, high,
    error energy % of the signal's, the band's share of the signal)) on the demo's riff, the
    gain stage alone, the first SKIP s left out; the bands at Gain 0, level 1."""
    riff = guitar_riff(44_100, 4.0)
    skip = int(SKIP * 44_100)
    rows, bands = [], []
    for gain in (0.0, 1.0):
        for level in RIFF_LEVELS:
            x = riff * level
            y = GainStage(44_100, gain)(x.astype(np.float64))[skip:]
            predictions = [ModelBank(m, gain)(x.astype(np.float32))[skip:]
                           for m in ("circuit-cond", "circuit")]
            rows.append((gain, level, *(100 * esr(y, p) for p in predictions)))
            if gain == 0.0 and level == 1.0:
                error = np.abs(np.fft.rfft(predictions[0] - y)) ** 2
                signal = np.abs(np.fft.rfft(y)) ** 2
                f = np.fft.rfftfreq(y.size, 1 / 44_100)
                for low, high in zip(BANDS[:-1], BANDS[1:], strict=True):
                    k = (f >= low) & (f < high)
                    bands.append((low, high, 100 * error[k].sum() / signal.sum(),
                                  signal[k].sum() / signal.sum()))
    return rows, bands


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "conditioned.md"))
    parser.add_argument("--clips", type=int, default=len(HELD_OUT))
    args = parser.parse_args()
    data = find_data()
    if data is None:
        sys.exit("the reference data (../shared/data) is needed")
    clips = _di_clips(data, HELD_OUT[:args.clips])
    lines = [f"Measured by `.venv/bin/python benchmarks/conditioned.py` on {len(clips)} held-out "
             f"DI clips ({HELD_OUT[0]}..{HELD_OUT[len(clips) - 1]}).", "",
             "### The gain stage at every Gain: ESR % against the circuit's", "",
             "| Gain | " + " | ".join(f"{g:g}" for g in GAINS) + " |",
             "|---|" + "---:|" * len(GAINS)]
    rows = gain_table(clips)
    for column, name in ((1, "`circuit-cond` (one conditioned GRU-16)"),
                         (2, "`circuit` (five GRU-8, crossfaded)")):
        lines.append(f"| {name} | " + " | ".join(f"{r[column]:.2f}" for r in rows) + " |")
    lines += ["", "### The whole pedal at every host rate", "",
              "ESR % of the neural pedal with `circuit-cond` against the circuit pedal at the "
              "same rate, and in dB against itself at its model's rate (44.1 kHz, output "
              "resampled to the host rate); and ESR % of the neural pedal with the default set "
              "for the rate (`circuit`, `circuit-48k` at 48 kHz) against the circuit pedal.", "",
              "| host rate | latency (samples) | Gain 0.3: cond | cond vs 44.1 kHz | default "
              "set | Gain 0.9: cond | cond vs 44.1 kHz | default set |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate, latency, c3, n3, d3, c9, n9, d9 in rate_table(clips):
        n3, n9 = ("(itself)", "(itself)") if rate == 44_100 else (f"{n3:.1f} dB", f"{n9:.1f} dB")
        lines.append(f"| {rate / 1000:g} kHz | {latency} | {c3:.2f} % | {n3} | {d3:.2f} % | "
                     f"{c9:.2f} % | {n9} | {d9:.2f} % |")
    lines += ["", "### From a zero state", "",
              "Largest jump of the output (V) in 1 s of silence from a zero state (what "
              "RTNeural's `reset()` leaves), against where it settles; every Gain on a grid of "
              "11 for the conditioned model, every model of a set.", "",
              "| model | largest jump |", "|---|---:|"]
    for name, jump in jump_table(data):
        lines.append(f"| {name} | {jump:.3f} V |")
    rows, bands = riff_tables()
    lines += ["", "### Generated playing: the demo's riff", "",
              "ESR % of the gain stage alone against the circuit's on "
              "`guitar_riff(44100, 4.0)` scaled by the level (1: 0.3 V peaks, as the demo plays "
              "it), the first 0.1 s left out.", "",
              "| Gain | level | `circuit-cond` | `circuit` bank |", "|---:|---:|---:|---:|"]
    for gain, level, cond, bank in rows:
        lines.append(f"| {gain:g} | {level:g} | {cond:.3f} | {bank:.3f} |")
    lines += ["", "`circuit-cond`'s error at Gain 0, level 1, by band: its energy there as a "
              "share of the whole signal's, and the share of the signal the band holds.", "",
              "| band | error, % of the signal | signal in the band |", "|---|---:|---:|"]
    for low, high, error, share in bands:
        lines.append(f"| {low:g}-{high:g} Hz | {error:.3f} | {share:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if rewrite_after(args.out, "<!-- tables -->", text):
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

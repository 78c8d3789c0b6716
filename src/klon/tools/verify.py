"""`klon verify`: the circuit model against ngspice runs of the same circuit, stage by stage.

The same audio goes through the model and through ngspice (netlists in klon.spice); the score is
the error-to-signal ratio (ESR) of the model against SPICE over the whole clip.
"""
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

from klon import spice
from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.core.metrics import esr
from klon.core.paths import find_data
from klon.dsp.synth import guitar_riff, sine_sweep
from klon.pedal import Centaur, GainStage, InputBuffer, OutputStage, Tone

KNOB_SETTINGS = (0.0, 0.25, 0.5, 0.75, 1.0)
DIODE_NAMES = ("1n34a", "mbrb2545ct")
GUITAR_CLIPS = ("sample0", "sample250")


def model_output(stage: str, x: np.ndarray, sample_rate: float, gain: float = 0.5,
                 treble: float = 0.5, level: float = 0.5, diode: str = "1n34a") -> np.ndarray:
    """The model's answer for one stage, aligned with its input (as the SPICE runs are)."""
    x2 = np.asarray(x, dtype=np.float64).reshape(1, -1)
    if stage == "input_buffer":
        return InputBuffer(sample_rate).process(x2, np.empty_like(x2))[0]
    if stage == "gain_stage":
        return GainStage(sample_rate, gain, diode)(x2)[0]
    if stage == "tone":
        return _oversampled(Tone, x2, sample_rate, treble)[0]
    if stage == "output_stage":
        return OutputStage(sample_rate, level).process(x2, np.empty_like(x2))[0]
    if stage == "pedal":
        return Centaur(sample_rate, gain, treble, level, diode=diode)(x2)[0].astype(np.float64)
    raise KlonError(f"unknown stage {stage!r}")


def _oversampled(stage_class, x, sample_rate, *knobs):
    """A linear stage run as the pedal runs it: between the gain stage's resamplers."""
    from klon.dsp.oversampling import Oversampler
    from klon.pedal.gain_stage import default_oversampling
    factor = default_oversampling(sample_rate)
    resampler = Oversampler(factor, x.shape[0])
    stage = stage_class(sample_rate * factor, *knobs)
    padded = np.concatenate([x, np.zeros((x.shape[0], resampler.latency))], axis=1)
    high = np.empty((x.shape[0], padded.shape[1] * factor))
    resampler.upsample(padded, high)
    stage.process(high, high)
    resampler.downsample(high, padded)
    return padded[:, resampler.latency:]


def verification_inputs(quick: bool, data: str | os.PathLike | None = None,
                        sample_rate: int = 44_100) -> list[tuple[str, np.ndarray]]:
    """(name, volts) pairs: real guitar DI clips when the reference data is here, then sweeps."""
    from klon.core import audio
    folder = find_data(data)
    seconds = 0.2 if quick else 0.5
    n = int(seconds * sample_rate)
    inputs = []
    if folder is not None:
        for clip in GUITAR_CLIPS[:1] if quick else GUITAR_CLIPS:
            x, rate = audio.read(folder / "klon-ltspice" / "DataIn" / f"{clip}.wav")
            if rate != sample_rate:
                raise KlonError(f"{clip}.wav is at {rate} Hz, expected {sample_rate}")
            inputs.append((f"guitar {clip}", x[0, :n].astype(np.float64)))
    else:
        inputs.append(("synth guitar riff", guitar_riff(sample_rate, seconds).astype(np.float64)))
    for amplitude in (0.05, 1.0) if quick else (0.05, 0.3, 1.0):
        inputs.append((f"sweep {amplitude:g} V", sine_sweep(sample_rate, seconds, amplitude)))
    return inputs


def cases(quick: bool) -> Iterator[tuple[str, dict]]:
    """(stage, knobs) pairs: every stage at five settings of its knob, the gain stage with both
    diodes."""
    settings = (0.0, 0.5, 1.0) if quick else KNOB_SETTINGS
    yield "input_buffer", {}
    for diode in DIODE_NAMES:
        for g in settings:
            yield "gain_stage", {"gain": g, "diode": diode}
    for t in settings:
        yield "tone", {"treble": t}
    for v in settings:
        yield "output_stage", {"level": v}
    for g in settings:
        yield "pedal", {"gain": g, "treble": 0.5, "level": 0.5}


def _spice_job(job):
    stage, knobs, x, sample_rate, opamp = job
    return spice.simulate(stage, x, sample_rate, opamp=opamp, **knobs)


def run_verification(quick: bool = False, opamp: str = "ideal",
                     data: str | os.PathLike | None = None,
                     markdown_path: str | os.PathLike | None = None, sample_rate: int = 44_100,
                     jobs: int | None = None) -> list[tuple[str, str, str, float]]:
    """Print (and optionally write as Markdown) the ESR of every stage against ngspice."""
    from concurrent.futures import ProcessPoolExecutor

    if markdown_path:  # a bad --out fails now, not after minutes of ngspice
        folder = os.path.dirname(os.path.abspath(markdown_path))
        if os.path.isdir(markdown_path) or not os.path.isdir(folder) \
                or not os.access(folder, os.W_OK | os.X_OK):
            raise KlonError(f"cannot write the table to '{markdown_path}': give a file in a "
                            f"folder that exists and can be written")
    inputs = verification_inputs(quick, data, sample_rate)
    work = [(stage, knobs, name, x) for stage, knobs in cases(quick) for name, x in inputs]
    print(f"circuit model vs ngspice ({opamp} op-amps), {sample_rate} Hz, {len(work)} runs",
          file=sys.stderr)
    print(f"{'stage':<13} {'setting':<28} {'input':<20} {'ESR %':>10}")
    started = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
        references = pool.map(_spice_job, [(s, k, x, sample_rate, opamp) for s, k, _, x in work])
        for (stage, knobs, name, x), reference in zip(work, references, strict=True):
            setting = ", ".join(f"{k} {v}" for k, v in knobs.items()) or "-"
            score = 100.0 * esr(reference, model_output(stage, x, sample_rate, **knobs))
            rows.append((stage, setting, name, score))
            print(f"{stage:<13} {setting:<28} {name:<20} {score:>10.2e}", flush=True)
    worst = {}
    for stage, _, _, score in rows:
        worst[stage] = max(worst.get(stage, 0.0), score)
    print("worst ESR per stage: " + ", ".join(f"{s} {w:.2e} %" for s, w in worst.items()))
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if markdown_path:
        write_markdown(markdown_path, rows, opamp, quick)
    return rows


def write_markdown(path: str | os.PathLike, rows: list, opamp: str, quick: bool) -> None:
    """The table as Markdown, with the command that measured it."""
    command = ("klon verify" + (" --quick" if quick else "")
               + (f" --opamp {opamp}" if opamp != "ideal" else ""))
    lines = [f"Measured with `{command}` ({opamp} op-amps in the netlists).", "",
             "| stage | setting | input | ESR % |", "|---|---|---|---:|"]
    lines += [f"| {s} | {k} | {i} | {e:.2e} |" for s, k, i, e in rows]
    atomic_write(path, "\n".join(lines) + "\n")

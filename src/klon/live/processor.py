"""The audio thread's work for `klon live`, with no audio device involved: engines, knobs,
engine crossfade, meters and callback statistics.

Everything the callback touches is allocated here, before the stream opens, and every loop over
samples runs in a compiled kernel. A block costs a fixed handful of kernel calls:
`_knobs_moved` (did the UI change anything?), `_take_input` (device buffer -> the engines' input,
input meters), one `process(block, out=...)` per engine, `_mix` (crossfade, output meters, the
test tone, device buffer) and, in the stream's callback, `_record` (load and status flags).

Both engines run all the time when both are available at the rate, so the one not heard has
the same state as the one heard and an engine switch is a short crossfade between two warm
pedals: nothing to pre-roll, no click. The engines agree to a fraction of a percent, so the
crossfade is linear (equal gain), not equal power.

The UI thread hands knob moves over without locks: it writes the new targets into `targets`
(gain, treble, level, engine), a preallocated float64 array, and the audio thread compares it
with what it last applied once per block. One float64 store is atomic, so a block sees each
value either old or new, and a change made while a block runs is picked up by the next one.
The meters and counters flow the other way, in `meters` (Meters), `stats` (Stats) and the
`loads` ring, which the UI and the report only read.

The audio thread's state is named: NamedTuples of small arrays (Meters, Stats, Crossfade) and of
constants (MeterSettings). They cross into the kernels as plain tuples (klon.core.kernel_state),
built once here, and the kernels name them again on entry.
"""
import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from klon.core.errors import KlonError
from klon.core.kernel_state import plain
from klon.core.processor import check_knob
from klon.pedal.centaur import ENGINES, Centaur

GAIN, TREBLE, LEVEL, ENGINE = range(4)
KNOBS = ("gain", "treble", "level")
CROSSFADE_SECONDS = 0.03
METER_SECONDS = 0.3    # the UI meters' RMS time constant
PEAK_FALL_DB = 20.0    # per second, the UI peak meters' fall-back
LOAD_RING = 1 << 20    # callback loads kept for the percentiles (23 min at 64 frames, 48 kHz)

# PortAudio's stream callback status flags (portaudio.h: paInputUnderflow ... paPrimingOutput),
# bit by bit in the order of FLAG_NAMES
INPUT_UNDERFLOW, INPUT_OVERFLOW, OUTPUT_UNDERFLOW, OUTPUT_OVERFLOW, PRIMING_OUTPUT = (
    1, 2, 4, 8, 16)
FLAG_NAMES = ("input_underflow", "input_overflow", "output_underflow", "output_overflow",
              "priming_output")
XRUN_FLAGS = INPUT_UNDERFLOW | INPUT_OVERFLOW | OUTPUT_UNDERFLOW | OUTPUT_OVERFLOW


class Meters(NamedTuple):
    """What the audio thread measures: each a 1-element float64 array the kernels write and the
    UI and the report read. The UI's values first, then the run's totals (the blocks that start
    once `meter_after` frames have passed)."""

    in_rms_ui: np.ndarray  # RMS with a METER_SECONDS time constant, volts
    out_rms_ui: np.ndarray
    in_peak_ui: np.ndarray  # peak, falling back PEAK_FALL_DB per second
    out_peak_ui: np.ndarray
    in_sumsq: np.ndarray  # the run's totals: sum of squares and peak
    out_sumsq: np.ndarray
    in_peak: np.ndarray
    out_peak: np.ndarray
    metered_frames: np.ndarray  # frames in the totals
    frames: np.ndarray  # frames since the start
    nonfinite_in: np.ndarray  # input samples that were NaN or Inf (played as 0)
    clipped_out: np.ndarray  # output samples beyond full scale
    tone_phase: np.ndarray  # the test tone's phase, radians


class MeterSettings(NamedTuple):
    """The meters' and the test tone's constants, fixed before the stream opens."""

    meter_after: float  # frames left out of the run's totals
    rms_coef: float  # the UI's RMS: one block's weight in the mean square
    peak_fall: float  # the UI's peak: its factor per block
    tone_step: float  # the test tone's phase step per sample, radians
    tone_volts: float  # its amplitude; 0: no tone


class Stats(NamedTuple):
    """The callbacks' counters: 1-element float64 arrays (`flags`: one per PortAudio status
    flag, in the order of FLAG_NAMES), written by the audio thread."""

    callbacks: np.ndarray
    xruns: np.ndarray
    load_max: np.ndarray  # the longest callback, a fraction of the block period
    odd_blocks: np.ndarray  # callbacks whose buffers were not one block (dropped)
    switches: np.ndarray  # engine switches applied
    last_start: np.ndarray  # when the last callback began, seconds
    max_gap: np.ndarray  # the longest time between two callbacks' starts, block periods
    late_starts: np.ndarray  # callbacks that began more than 1.5 periods after the one before
    flags: np.ndarray


class Crossfade(NamedTuple):
    """The engine crossfade: 1-element float64 arrays."""

    weight: np.ndarray  # engine 1's weight now (engine 0 has 1 - weight)
    target: np.ndarray  # where it is going: 0 or 1
    step: np.ndarray  # its change per sample


def _ones(fields):
    """A NamedTuple class's fields as zeroed 1-element float64 arrays."""
    return fields(*(np.zeros(1) for _ in fields._fields))


@njit(cache=True)
def _knobs_moved(targets, applied):
    """Has the UI moved a knob or switched the engine since the last block?"""
    for i in range(targets.shape[0]):
        if targets[i] != applied[i]:
            return True
    return False


@njit(cache=True)
def _take_input(indata, outdata, x, meters, settings):
    """Channel 0 of the device's (frames, channels) buffer -> the engines' (1, frames) input;
    samples that are not finite become 0 (and are counted), so an engine never refuses a
    block; input meters. False (and nothing done) if the device's buffers are not one block.
    meters, settings: a Meters and a MeterSettings as plain tuples."""
    m, s = Meters(*meters), MeterSettings(*settings)
    n = x.shape[1]
    if indata.shape[0] != n or outdata.shape[0] != n:
        return False
    peak = 0.0
    sumsq = 0.0
    for t in range(n):
        v = np.float64(indata[t, 0])
        if not np.isfinite(v):
            v = 0.0
            m.nonfinite_in[0] += 1.0
        x[0, t] = v
        peak = max(peak, abs(v))
        sumsq += v * v
    _meter(m.in_rms_ui, m.in_peak_ui, m.in_sumsq, m.in_peak, m.frames, s, peak, sumsq, n)
    return True


@njit(cache=True)
def _meter(rms_ui, peak_ui, total_sumsq, total_peak, frames, s, peak, sumsq, n):
    """One block into a meter: the UI's smoothed RMS and falling peak, and the run's totals
    for the blocks that start once the start-up (s.meter_after frames) is over."""
    rms_ui[0] = math.sqrt(rms_ui[0] ** 2 + s.rms_coef * (sumsq / n - rms_ui[0] ** 2))
    peak_ui[0] = max(peak, peak_ui[0] * s.peak_fall)
    if frames[0] >= s.meter_after:
        total_sumsq[0] += sumsq
        total_peak[0] = max(total_peak[0], peak)


@njit(cache=True)
def _mix(outs, n_engines, fade, outdata, meters, settings):
    """The engines' (engines, 1, frames) outputs -> every channel of the device's
    (frames, channels) buffer, crossfaded while an engine switch runs; output meters; and,
    when the settings have a tone, a sine on the last channel instead of the pedal.
    fade, meters, settings: a Crossfade, Meters and MeterSettings as plain tuples."""
    f, m, s = Crossfade(*fade), Meters(*meters), MeterSettings(*settings)
    n = outs.shape[2]
    channels = outdata.shape[1]
    pedal_channels = channels - 1 if s.tone_volts > 0.0 and channels > 1 else channels
    w, target, step = f.weight[0], f.target[0], f.step[0]
    phase = m.tone_phase[0]
    peak = 0.0
    sumsq = 0.0
    clipped = 0.0
    for t in range(n):
        if n_engines == 1:
            y = outs[0, 0, t]
        else:
            if w != target:
                w = min(w + step, 1.0) if target > w else max(w - step, 0.0)
            y = (1.0 - w) * outs[0, 0, t] + w * outs[1, 0, t]
        peak = max(peak, abs(y))
        sumsq += y * y
        if abs(y) > 1.0:
            clipped += 1.0
        for ch in range(pedal_channels):
            outdata[t, ch] = y
        if pedal_channels < channels:
            outdata[t, channels - 1] = s.tone_volts * math.sin(phase)
            phase = (phase + s.tone_step) % (2.0 * math.pi)
    f.weight[0] = w
    m.tone_phase[0] = phase
    m.clipped_out[0] += clipped
    _meter(m.out_rms_ui, m.out_peak_ui, m.out_sumsq, m.out_peak, m.frames, s, peak, sumsq, n)
    if m.frames[0] >= s.meter_after:  # (whole blocks, like _meter's totals)
        m.metered_frames[0] += n
    m.frames[0] += n


@njit(cache=True)
def _drop_block(outdata, stats):
    """A callback whose buffers are not one block: silence, counted."""
    for t in range(outdata.shape[0]):
        for ch in range(outdata.shape[1]):
            outdata[t, ch] = 0.0
    Stats(*stats).odd_blocks[0] += 1.0


@njit(cache=True)
def _start_crossfade(fade, stats, engine):
    """Fade towards `engine` (0 or 1) from wherever the crossfade is; counts the switch."""
    Crossfade(*fade).target[0] = engine
    Stats(*stats).switches[0] += 1.0


@njit(cache=True)
def _record(stats, loads, start, seconds, period, flags):
    """One callback into the counters: its load (`seconds` of work over the block `period`)
    into the ring, the gap since the previous callback began (`start`, seconds on the callback's
    clock: a callback that begins more than 1.5 periods after the one before woke late), its
    PortAudio status flags into the flag and xrun counts. A callback with PortAudio's priming
    flag only primes the output before the stream starts: not an xrun. stats: a Stats as a
    plain tuple."""
    s = Stats(*stats)
    load = seconds / period
    i = int(s.callbacks[0])
    loads[i % loads.shape[0]] = load
    if i > 0:
        gap = (start - s.last_start[0]) / period
        s.max_gap[0] = max(s.max_gap[0], gap)
        if gap > 1.5:
            s.late_starts[0] += 1.0
    s.last_start[0] = start
    s.callbacks[0] += 1.0
    s.load_max[0] = max(s.load_max[0], load)
    if flags & XRUN_FLAGS and not flags & PRIMING_OUTPUT:
        s.xruns[0] += 1.0
    for bit in range(s.flags.shape[0]):
        if flags & (1 << bit):
            s.flags[bit] += 1.0


def _engine(name, sample_rate, knobs):
    return Centaur(sample_rate, *knobs, engine=name)


class LiveProcessor:
    """The pedal for a duplex stream: `process(indata, outdata)` takes the device's
    (frames, 1) input buffer and fills its (frames, channels) output buffer, `block` frames at
    a time. `targets` is the UI's side (see the module's docstring).

    engine: the one heard first. The other runs beside it when it is available at this rate
    (`unavailable` says why not, else None). test_tone_hz: a sine of `test_tone_volts` on the
    last output channel instead of the pedal, for loopback checks. meter_after_seconds: the
    levels in `levels()` leave out the start-up.
    """

    def __init__(self, sample_rate: float, block: int, engine: str = "circuit",
                 gain: float = 0.5, treble: float = 0.5, level: float = 0.5,
                 out_channels: int = 2, test_tone_hz: float | None = None,
                 test_tone_volts: float = 0.25, meter_after_seconds: float = 1.0):
        if engine not in ENGINES:
            raise KlonError(f"unknown engine {engine!r}: klon has {', '.join(ENGINES)}")
        if not isinstance(block, int) or not 1 <= block <= 8192:
            raise KlonError(f"block must be a whole number of frames in 1..8192, got {block!r}")
        if out_channels not in (1, 2):
            raise KlonError(f"output channels must be 1 or 2, got {out_channels!r}")
        if test_tone_hz is not None and out_channels != 2:
            raise KlonError("the test tone plays on output channel 2: it needs 2 output channels")
        knobs = [check_knob(name, value)
                 for name, value in zip(KNOBS, (gain, treble, level), strict=True)]
        self.sample_rate = float(sample_rate)
        self.block = block
        self.out_channels = out_channels
        self.period = block / self.sample_rate
        # the engine heard first is built first: its errors (e.g. no models at this rate) stop
        # the run; the other's only leave it out
        first = _engine(engine, sample_rate, knobs)
        other_name = ENGINES[1 - ENGINES.index(engine)]
        try:
            other, self.unavailable = _engine(other_name, sample_rate, knobs), None
        except KlonError as error:
            other, self.unavailable = None, f"{other_name} engine unavailable: {error}"
        pedals = {engine: first, other_name: other}
        self.engines = tuple(name for name in ENGINES if pedals[name] is not None)
        self.pedals = tuple(pedals[name] for name in self.engines)
        self.latency = max(p.latency for p in self.pedals)

        self.targets = np.array([*knobs, float(self.engines.index(engine))])
        self.applied = self.targets.copy()
        self.x = np.zeros((1, block))
        self.outs = np.zeros((len(self.pedals), 1, block))
        self._out_views = tuple(self.outs[i] for i in range(len(self.pedals)))
        self.fade = _ones(Crossfade)
        self.fade.weight[0] = self.fade.target[0] = self.targets[ENGINE]
        self.fade.step[0] = 1.0 / max(1.0, CROSSFADE_SECONDS * self.sample_rate)
        tone_step = tone_volts = 0.0
        if test_tone_hz is not None:
            if not 0.0 < test_tone_hz < self.sample_rate / 2:
                raise KlonError(f"test tone must be between 0 and {self.sample_rate / 2:g} Hz, "
                                f"got {test_tone_hz:g}")
            tone_step = 2.0 * math.pi * test_tone_hz / self.sample_rate
            tone_volts = float(test_tone_volts)
        self.settings = MeterSettings(
            meter_after=float(round(meter_after_seconds * self.sample_rate)),
            rms_coef=1.0 - math.exp(-block / (METER_SECONDS * self.sample_rate)),
            peak_fall=10.0 ** (-PEAK_FALL_DB / 20.0 * self.period),
            tone_step=tone_step, tone_volts=tone_volts)
        self.meters = _ones(Meters)
        self.stats = _ones(Stats)._replace(flags=np.zeros(len(FLAG_NAMES)))
        self.loads = np.zeros(LOAD_RING, dtype=np.float32)
        # what the kernels get: the same arrays (and constants) as plain tuples
        self._fade, self._meters = plain(self.fade), plain(self.meters)
        self._settings, self._stats = plain(self.settings), plain(self.stats)
        self.warm_up()

    # ---- the audio thread -------------------------------------------------------------

    def process(self, indata: np.ndarray, outdata: np.ndarray) -> None:
        """One callback's audio: indata (frames, >= 1 channels), outdata (frames, channels)."""
        if _knobs_moved(self.targets, self.applied):
            self._apply_targets()
        if not _take_input(indata, outdata, self.x, self._meters, self._settings):
            # the stream is opened with a fixed block size, so this does not happen; if a
            # host delivered another size, the block is dropped rather than allocated for
            _drop_block(outdata, self._stats)
            return
        # no loop over the pedals: iterating would allocate an iterator per block
        self.pedals[0].process(self.x, self._out_views[0])
        if len(self.pedals) == 2:
            self.pedals[1].process(self.x, self._out_views[1])
        _mix(self.outs, len(self.pedals), self._fade, outdata, self._meters, self._settings)

    def record(self, start: float, seconds: float, flags: int) -> None:
        """The callback's own timing (when it began and how long its work took, seconds) and
        its PortAudio status flags."""
        _record(self._stats, self.loads, start, seconds, self.period, flags)

    def _apply_targets(self):
        """Hand the UI's targets to the engines (the knobs then glide over 50 ms) and start a
        crossfade if the engine changed. Values are read once each with .item() (a Python
        float, no NumPy scalar), `applied` gets exactly the values handed on, and the loop is a
        while over small integers (a for loop would make an iterator)."""
        targets, applied, pedals = self.targets, self.applied, self.pedals
        i = 0
        while i < len(KNOBS):
            value = targets.item(i)
            if value != applied.item(i):
                applied[i] = value
                setattr(pedals[0], KNOBS[i], value)
                if len(pedals) == 2:
                    setattr(pedals[1], KNOBS[i], value)
            i += 1
        value = targets.item(ENGINE)
        if value != applied.item(ENGINE):
            applied[ENGINE] = value
            _start_crossfade(self._fade, self._stats, value)

    # ---- the UI thread ------------------------------------------------------------------

    def set_knob(self, name: str, value: float) -> None:
        """Ask for a knob position (clamped to [0, 1]); the audio thread applies it."""
        self.targets[KNOBS.index(name)] = min(max(float(value), 0.0), 1.0)

    def knob(self, name: str) -> float:
        return float(self.targets[KNOBS.index(name)])

    @property
    def engine(self) -> str:
        """The engine asked for (heard once the crossfade is over)."""
        return self.engines[int(self.targets[ENGINE])]

    def switch_engine(self) -> bool:
        """Ask for the other engine; False (and nothing changes) if it is unavailable."""
        if len(self.engines) < 2:
            return False
        self.targets[ENGINE] = 1.0 - self.targets[ENGINE]
        return True

    def levels(self) -> dict[str, Any]:
        """The run's input and output levels after the start-up: RMS and peak, in volts (full
        scale = 1) and dB."""
        m = self.meters
        frames = m.metered_frames.item(0)
        result = {"measured_seconds": frames / self.sample_rate,
                  "after_seconds": self.settings.meter_after / self.sample_rate}
        for side, sumsq, peak in (("input", m.in_sumsq, m.in_peak),
                                  ("output", m.out_sumsq, m.out_peak)):
            rms = math.sqrt(sumsq.item(0) / frames) if frames else 0.0
            result[side] = {"rms": rms, "rms_db": _db(rms), "peak": peak.item(0),
                            "peak_db": _db(peak.item(0))}
        return result

    def now(self) -> dict[str, Any]:
        """The UI's view: smoothed levels (dB), callbacks, xruns."""
        m, s = self.meters, self.stats
        return {"in_db": _db(m.in_rms_ui.item(0)), "out_db": _db(m.out_rms_ui.item(0)),
                "in_peak_db": _db(m.in_peak_ui.item(0)),
                "out_peak_db": _db(m.out_peak_ui.item(0)),
                "callbacks": self.callbacks(), "xruns": int(s.xruns.item(0)),
                "clipped": int(m.clipped_out.item(0))}

    def callbacks(self) -> int:
        """Callbacks so far."""
        return int(self.stats.callbacks.item(0))

    def recent_loads(self, since: int) -> tuple[np.ndarray, int]:
        """Loads (fractions of the block period) of the callbacks numbered `since` onwards that
        the ring still holds, and the callback count they run up to."""
        count = self.callbacks()
        first = max(since, count - LOAD_RING + 1)
        index = np.arange(first, count) % LOAD_RING
        return self.loads[index], count

    def counters(self) -> dict[str, Any]:
        """Callbacks, xruns, status flags and load percentiles (% of the block period) so far."""
        s, m = self.stats, self.meters
        loads, count = self.recent_loads(0)
        percent = 100.0 * loads.astype(np.float64)
        load = {"p50": None, "p99": None, "p99.9": None, "max": None, "mean": None}
        if percent.size:
            p50, p99, p999 = np.percentile(percent, [50, 99, 99.9])
            load = {"p50": float(p50), "p99": float(p99), "p99.9": float(p999),
                    "max": 100.0 * s.load_max.item(0), "mean": float(percent.mean())}
        return {"callbacks": count, "xruns": int(s.xruns.item(0)),
                "status_flags": {name: int(s.flags[i]) for i, name in enumerate(FLAG_NAMES)},
                "odd_blocks": int(s.odd_blocks.item(0)),
                "engine_switches": int(s.switches.item(0)),
                "late_starts": int(s.late_starts.item(0)),
                "max_start_gap_periods": s.max_gap.item(0),
                "load_percent": load, "load_callbacks": int(percent.size),
                "block_period_ms": 1000.0 * self.period,
                "nonfinite_input_samples": int(m.nonfinite_in.item(0)),
                "clipped_output_samples": int(m.clipped_out.item(0))}

    # ---- before the stream ---------------------------------------------------------------

    def warm_up(self) -> None:
        """Compile every kernel the callback reaches, with the very array types the device
        hands over (float32, frames x channels), move every knob and switch engines once (the
        Gain glide and the neural bank's model warm-up have their own kernels), then put
        everything back at rest with the asked-for knobs. Done when the processor is built, and
        again by the stream after its last garbage collection (klon.live.stream.gc_off)."""
        start = self.targets.copy()
        indata = np.zeros((self.block, 1), dtype=np.float32)
        outdata = np.zeros((self.block, self.out_channels), dtype=np.float32)
        blocks = int(0.2 * self.sample_rate / self.block) + 2
        for i in range(blocks):
            if i == 1:
                for name in KNOBS:
                    self.set_knob(name, 1.0 - self.knob(name) if self.knob(name) != 0.5 else 0.9)
                self.switch_engine()
            self.process(indata, outdata)
            self.record(0.0, 0.0, 0)
        half_in, half_out = indata[:self.block // 2], outdata[:self.block // 2]
        self.process(half_in, half_out)  # (the odd-block path's kernel)
        self.targets[:] = start
        for _ in range(blocks):  # glide back and let the crossfade finish
            self.process(indata, outdata)
        for pedal in self.pedals:
            pedal.reset()
        self.x[:] = 0.0
        self.outs[:] = 0.0
        self.fade.weight[0] = self.fade.target[0]
        for array in (*self.meters, *self.stats):
            array[:] = 0.0
        self.loads[:] = 0.0

def _db(volts):
    return 20.0 * math.log10(volts) if volts > 0.0 else -math.inf

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
The meters and counters flow the other way, in `meters`, `stats` and the `loads` ring, which the
UI and the report only read.
"""
import math

import numpy as np
from numba import njit

from klon.core.errors import KlonError
from klon.core.processor import check_knob
from klon.pedal.centaur import ENGINES, Centaur

GAIN, TREBLE, LEVEL, ENGINE = range(4)
KNOBS = ("gain", "treble", "level")
CROSSFADE_SECONDS = 0.03
METER_SECONDS = 0.3    # the UI meters' RMS time constant
PEAK_FALL_DB = 20.0    # per second, the UI peak meters' fall-back
LOAD_RING = 1 << 20    # callback loads kept for the percentiles (23 min at 64 frames, 48 kHz)

# PortAudio's stream callback status flags (portaudio.h: paInputUnderflow ... paPrimingOutput)
INPUT_UNDERFLOW, INPUT_OVERFLOW, OUTPUT_UNDERFLOW, OUTPUT_OVERFLOW, PRIMING_OUTPUT = (
    1, 2, 4, 8, 16)
FLAG_NAMES = ("input_underflow", "input_overflow", "output_underflow", "output_overflow",
              "priming_output")
XRUN_FLAGS = INPUT_UNDERFLOW | INPUT_OVERFLOW | OUTPUT_UNDERFLOW | OUTPUT_OVERFLOW

# meters: float64 array; the UI's ballistic values first, then the run's totals
(IN_RMS_UI, OUT_RMS_UI, IN_PEAK_UI, OUT_PEAK_UI, IN_SUMSQ, OUT_SUMSQ, IN_PEAK, OUT_PEAK,
 METERED_FRAMES, FRAMES, METER_AFTER, RMS_COEF, PEAK_FALL, NONFINITE_IN, CLIPPED_OUT,
 TONE_PHASE, TONE_STEP, TONE_VOLTS) = range(18)
# stats: float64 array of counters
(CALLBACKS, XRUNS, LOAD_MAX, ODD_BLOCKS, SWITCHES, LAST_START, MAX_GAP, LATE_STARTS,
 FLAG_COUNTS) = range(9)
N_STATS = FLAG_COUNTS + len(FLAG_NAMES)
# crossfade: (weight of engine 1 now, its target, step per sample)
WEIGHT, WEIGHT_TARGET, WEIGHT_STEP = range(3)


@njit(cache=True)
def _knobs_moved(targets, applied):
    """Has the UI moved a knob or switched the engine since the last block?"""
    for i in range(targets.shape[0]):
        if targets[i] != applied[i]:
            return True
    return False


@njit(cache=True)
def _take_input(indata, outdata, x, meters):
    """Channel 0 of the device's (frames, channels) buffer -> the engines' (1, frames) input;
    samples that are not finite become 0 (and are counted), so an engine never refuses a
    block; input meters. False (and nothing done) if the device's buffers are not one block."""
    n = x.shape[1]
    if indata.shape[0] != n or outdata.shape[0] != n:
        return False
    peak = 0.0
    sumsq = 0.0
    for t in range(n):
        v = np.float64(indata[t, 0])
        if not np.isfinite(v):
            v = 0.0
            meters[NONFINITE_IN] += 1.0
        x[0, t] = v
        peak = max(peak, abs(v))
        sumsq += v * v
    _meter(meters, IN_RMS_UI, IN_PEAK_UI, IN_SUMSQ, IN_PEAK, peak, sumsq, n)
    return True


@njit(cache=True)
def _meter(meters, rms_ui, peak_ui, total_sumsq, total_peak, peak, sumsq, n):
    """One block into a meter: the UI's smoothed RMS and falling peak, and the run's totals
    for the blocks that start once the start-up (METER_AFTER frames) is over."""
    ms = math.sqrt(meters[rms_ui] ** 2 + meters[RMS_COEF] * (sumsq / n - meters[rms_ui] ** 2))
    meters[rms_ui] = ms
    meters[peak_ui] = max(peak, meters[peak_ui] * meters[PEAK_FALL])
    if meters[FRAMES] >= meters[METER_AFTER]:
        meters[total_sumsq] += sumsq
        meters[total_peak] = max(meters[total_peak], peak)


@njit(cache=True)
def _mix(outs, n_engines, fade, outdata, meters):
    """The engines' (engines, 1, frames) outputs -> every channel of the device's
    (frames, channels) buffer, crossfaded while an engine switch runs; output meters; and, when
    TONE_VOLTS is set, a sine on the last channel instead of the pedal."""
    n = outs.shape[2]
    channels = outdata.shape[1]
    pedal_channels = channels - 1 if meters[TONE_VOLTS] > 0.0 and channels > 1 else channels
    w = fade[WEIGHT]
    peak = 0.0
    sumsq = 0.0
    clipped = 0.0
    for t in range(n):
        if n_engines == 1:
            y = outs[0, 0, t]
        else:
            if w != fade[WEIGHT_TARGET]:
                w = min(w + fade[WEIGHT_STEP], 1.0) if fade[WEIGHT_TARGET] > w else \
                    max(w - fade[WEIGHT_STEP], 0.0)
            y = (1.0 - w) * outs[0, 0, t] + w * outs[1, 0, t]
        peak = max(peak, abs(y))
        sumsq += y * y
        if abs(y) > 1.0:
            clipped += 1.0
        for ch in range(pedal_channels):
            outdata[t, ch] = y
        if pedal_channels < channels:
            outdata[t, channels - 1] = meters[TONE_VOLTS] * math.sin(meters[TONE_PHASE])
            meters[TONE_PHASE] = (meters[TONE_PHASE] + meters[TONE_STEP]) % (2.0 * math.pi)
    fade[WEIGHT] = w
    meters[CLIPPED_OUT] += clipped
    _meter(meters, OUT_RMS_UI, OUT_PEAK_UI, OUT_SUMSQ, OUT_PEAK, peak, sumsq, n)
    if meters[FRAMES] >= meters[METER_AFTER]:  # (whole blocks, like _meter's totals)
        meters[METERED_FRAMES] += n
    meters[FRAMES] += n


@njit(cache=True)
def _silence(outdata):
    for t in range(outdata.shape[0]):
        for ch in range(outdata.shape[1]):
            outdata[t, ch] = 0.0


@njit(cache=True)
def _record(stats, loads, start, seconds, period, flags):
    """One callback into the counters: its load (`seconds` of work over the block `period`)
    into the ring, the gap since the previous callback began (`start`, seconds on the callback's
    clock: a callback that begins more than 1.5 periods after the one before woke late), its
    PortAudio status flags into the flag and xrun counts. A callback with PortAudio's priming
    flag only primes the output before the stream starts: not an xrun."""
    load = seconds / period
    i = int(stats[CALLBACKS])
    loads[i % loads.shape[0]] = load
    if i > 0:
        gap = (start - stats[LAST_START]) / period
        stats[MAX_GAP] = max(stats[MAX_GAP], gap)
        if gap > 1.5:
            stats[LATE_STARTS] += 1.0
    stats[LAST_START] = start
    stats[CALLBACKS] += 1.0
    stats[LOAD_MAX] = max(stats[LOAD_MAX], load)
    if flags & XRUN_FLAGS and not flags & PRIMING_OUTPUT:
        stats[XRUNS] += 1.0
    for bit in range(5):
        if flags & (1 << bit):
            stats[FLAG_COUNTS + bit] += 1.0


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

    def __init__(self, sample_rate, block, engine="circuit", gain=0.5, treble=0.5, level=0.5,
                 out_channels=2, test_tone_hz=None, test_tone_volts=0.25,
                 meter_after_seconds=1.0):
        if engine not in ENGINES:
            raise KlonError(f"unknown engine {engine!r}: klon has {', '.join(ENGINES)}")
        if not isinstance(block, int) or not 1 <= block <= 8192:
            raise KlonError(f"block must be a whole number of frames in 1..8192, got {block!r}")
        if out_channels not in (1, 2):
            raise KlonError(f"output channels must be 1 or 2, got {out_channels!r}")
        if test_tone_hz is not None and out_channels != 2:
            raise KlonError("the test tone plays on output channel 2: it needs 2 output channels")
        knobs = [check_knob(name, value) for name, value in zip(KNOBS, (gain, treble, level))]
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
        self.fade = np.zeros(3)
        self.fade[WEIGHT] = self.fade[WEIGHT_TARGET] = self.targets[ENGINE]
        self.fade[WEIGHT_STEP] = 1.0 / max(1.0, CROSSFADE_SECONDS * self.sample_rate)
        self.meters = np.zeros(18)
        self.meters[RMS_COEF] = 1.0 - math.exp(-block / (METER_SECONDS * self.sample_rate))
        self.meters[PEAK_FALL] = 10.0 ** (-PEAK_FALL_DB / 20.0 * self.period)
        self.meters[METER_AFTER] = round(meter_after_seconds * self.sample_rate)
        if test_tone_hz is not None:
            if not 0.0 < test_tone_hz < self.sample_rate / 2:
                raise KlonError(f"test tone must be between 0 and {self.sample_rate / 2:g} Hz, "
                                f"got {test_tone_hz:g}")
            self.meters[TONE_STEP] = 2.0 * math.pi * test_tone_hz / self.sample_rate
            self.meters[TONE_VOLTS] = test_tone_volts
        self.stats = np.zeros(N_STATS)
        self.loads = np.zeros(LOAD_RING, dtype=np.float32)
        self._warm_up()

    # ---- the audio thread -------------------------------------------------------------

    def process(self, indata, outdata):
        """One callback's audio: indata (frames, >= 1 channels), outdata (frames, channels)."""
        if _knobs_moved(self.targets, self.applied):
            self._apply_targets()
        if not _take_input(indata, outdata, self.x, self.meters):
            # the stream is opened with a fixed block size, so this does not happen; if a
            # host delivered another size, the block is dropped rather than allocated for
            _silence(outdata)
            self.stats[ODD_BLOCKS] = self.stats.item(ODD_BLOCKS) + 1.0
            return
        # no loop over the pedals: iterating would allocate an iterator per block
        self.pedals[0].process(self.x, self._out_views[0])
        if len(self.pedals) == 2:
            self.pedals[1].process(self.x, self._out_views[1])
        _mix(self.outs, len(self.pedals), self.fade, outdata, self.meters)

    def record(self, start, seconds, flags):
        """The callback's own timing (when it began and how long its work took, seconds) and
        its PortAudio status flags."""
        _record(self.stats, self.loads, start, seconds, self.period, flags)

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
            applied[ENGINE] = self.fade[WEIGHT_TARGET] = value
            self.stats[SWITCHES] = self.stats.item(SWITCHES) + 1.0  # (+= makes a NumPy scalar)

    # ---- the UI thread ------------------------------------------------------------------

    def set_knob(self, name, value):
        """Ask for a knob position (clamped to [0, 1]); the audio thread applies it."""
        self.targets[KNOBS.index(name)] = min(max(float(value), 0.0), 1.0)

    def knob(self, name):
        return float(self.targets[KNOBS.index(name)])

    @property
    def engine(self):
        """The engine asked for (heard once the crossfade is over)."""
        return self.engines[int(self.targets[ENGINE])]

    def switch_engine(self):
        """Ask for the other engine; False (and nothing changes) if it is unavailable."""
        if len(self.engines) < 2:
            return False
        self.targets[ENGINE] = 1.0 - self.targets[ENGINE]
        return True

    def levels(self):
        """The run's input and output levels after the start-up: RMS and peak, in volts (full
        scale = 1) and dB."""
        frames = self.meters[METERED_FRAMES]
        result = {"measured_seconds": frames / self.sample_rate,
                  "after_seconds": self.meters[METER_AFTER] / self.sample_rate}
        for side, sumsq, peak in (("input", IN_SUMSQ, IN_PEAK), ("output", OUT_SUMSQ, OUT_PEAK)):
            rms = math.sqrt(self.meters[sumsq] / frames) if frames else 0.0
            result[side] = {"rms": rms, "rms_db": _db(rms), "peak": self.meters[peak],
                            "peak_db": _db(self.meters[peak])}
        return result

    def now(self):
        """The UI's view: smoothed levels (dB), callbacks, xruns."""
        m, s = self.meters, self.stats
        return {"in_db": _db(m[IN_RMS_UI]), "out_db": _db(m[OUT_RMS_UI]),
                "in_peak_db": _db(m[IN_PEAK_UI]), "out_peak_db": _db(m[OUT_PEAK_UI]),
                "callbacks": int(s[CALLBACKS]), "xruns": int(s[XRUNS]),
                "clipped": int(m[CLIPPED_OUT])}

    def recent_loads(self, since):
        """Loads (fractions of the block period) of the callbacks numbered `since` onwards that
        the ring still holds, and the callback count they run up to."""
        count = int(self.stats[CALLBACKS])
        first = max(since, count - LOAD_RING + 1)
        index = np.arange(first, count) % LOAD_RING
        return self.loads[index], count

    def counters(self):
        """Callbacks, xruns, status flags and load percentiles (% of the block period) so far."""
        s = self.stats
        loads, count = self.recent_loads(0)
        percent = 100.0 * loads.astype(np.float64)
        load = {"p50": None, "p99": None, "p99.9": None, "max": None, "mean": None}
        if percent.size:
            p50, p99, p999 = np.percentile(percent, [50, 99, 99.9])
            load = {"p50": p50, "p99": p99, "p99.9": p999, "max": 100.0 * s[LOAD_MAX],
                    "mean": float(percent.mean())}
        return {"callbacks": count, "xruns": int(s[XRUNS]),
                "status_flags": {name: int(s[FLAG_COUNTS + i]) for i, name in
                                 enumerate(FLAG_NAMES)},
                "odd_blocks": int(s[ODD_BLOCKS]), "engine_switches": int(s[SWITCHES]),
                "late_starts": int(s[LATE_STARTS]),
                "max_start_gap_periods": float(s[MAX_GAP]),
                "load_percent": load, "load_callbacks": int(percent.size),
                "block_period_ms": 1000.0 * self.period,
                "nonfinite_input_samples": int(self.meters[NONFINITE_IN]),
                "clipped_output_samples": int(self.meters[CLIPPED_OUT])}

    # ---- before the stream ---------------------------------------------------------------

    def _warm_up(self):
        """Compile every kernel the callback reaches, with the very array types the device
        hands over (float32, frames x channels), move every knob and switch engines once (the
        Gain glide and the neural bank's model warm-up have their own kernels), then put
        everything back at rest with the asked-for knobs."""
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
        _silence(outdata)  # (the odd-block path's kernel)
        self.targets[:] = start
        for _ in range(blocks):  # glide back and let the crossfade finish
            self.process(indata, outdata)
        for pedal in self.pedals:
            pedal.reset()
        self.x[:] = 0.0
        self.outs[:] = 0.0
        self.fade[WEIGHT] = self.fade[WEIGHT_TARGET]
        tone = self.meters[[TONE_STEP, TONE_VOLTS]]
        coefs = self.meters[[METER_AFTER, RMS_COEF, PEAK_FALL]]
        self.meters[:] = 0.0
        self.meters[[TONE_STEP, TONE_VOLTS]] = tone
        self.meters[[METER_AFTER, RMS_COEF, PEAK_FALL]] = coefs
        self.stats[:] = 0.0
        self.loads[:] = 0.0


def _db(volts):
    return 20.0 * math.log10(volts) if volts > 0.0 else -math.inf

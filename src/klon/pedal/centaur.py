"""The whole pedal: input buffer -> gain stage -> treble control -> output stage.

The three linear stages are shared; the gain stage is interchangeable: the circuit's
(klon.pedal.gain_stage, WDFs, oversampled with the treble control) or the neural one
(klon.neural, trained models at the host rate). Each kind brings its own chain kernel, so a
block is one compiled call whatever the engine. The engine's module is imported only when it is
asked for: a neural pedal never loads the WDF gain stage.
"""
import importlib
from typing import Any

from klon.core.errors import KlonError
from klon.core.processor import Knob, Processor, check_sample_rate
from klon.pedal.stages import InputBuffer, OutputStage, Tone, share_memory

# engine -> (module, factory) of its gain stage. A factory takes (sample_rate, gain, diode,
# oversampling, models, model) and refuses the options that are not its engine's.
GAIN_STAGES = {"circuit": ("klon.pedal.gain_stage", "circuit_gain_stage"),
               "neural": ("klon.neural.gain_stage", "neural_gain_stage")}
ENGINES = tuple(GAIN_STAGES)


def make_gain_stage(engine: str, sample_rate: Any, gain: Any = 0.5, diode: str | None = None,
                    oversampling: int | None = None, models: Any = None, model: Any = None):
    """The gain stage of `engine` (see GAIN_STAGES), its options checked by its factory."""
    if engine not in GAIN_STAGES:
        raise KlonError(f"unknown engine {engine!r}: this build has {', '.join(ENGINES)}")
    module, factory = GAIN_STAGES[engine]
    return getattr(importlib.import_module(module), factory)(
        check_sample_rate(sample_rate), gain, diode=diode, oversampling=oversampling,
        models=models, model=model)


class Centaur(Processor):
    """The Klon Centaur. Samples are volts: 1.0 in is 1 V at the input jack, 1.0 out 1 V at the
    output jack.

    engine: "circuit" (the circuit model; options `diode`, `oversampling`) or "neural" (trained
    models in place of the gain stage; options `models`, a shipped set or a folder, and `model`,
    one file for every Gain). `Centaur(sample_rate)(audio)` processes a whole signal (mono 1-D,
    channels x frames, or soundfile's frames x channels, returned in the layout given; integer
    PCM is scaled to full scale 1 V) with fresh state and no latency. `process(block)` streams
    with state kept (it then lags by `latency` samples). Knobs (gain, treble, level in [0, 1])
    may change at any time; they glide over 50 ms.
    """

    refuses_non_finite = True  # the chain kernel checks every sample as it reads it
    gain = Knob("Gain, 0..1", via="gain_stage")
    treble = Knob("Treble, 0..1", via="tone")
    level = Knob("Level, 0..1", via="output_stage")

    def __init__(self, sample_rate: float, gain: float = 0.5, treble: float = 0.5,
                 level: float = 0.5, engine: str = "circuit", diode: str | None = None,
                 oversampling: int | None = None, models: Any = None, model: Any = None):
        self.gain_stage = make_gain_stage(engine, sample_rate, gain, diode, oversampling,
                                          models, model)
        self.engine = engine
        self.sample_rate = rate = self.gain_stage.sample_rate
        self.input_buffer = InputBuffer(rate)
        self.tone = Tone(self.gain_stage.tone_rate, treble)
        self.output_stage = OutputStage(rate, level)
        self.channels = 0
        self.reset(1)

    @property
    def latency(self) -> int:
        return self.gain_stage.latency

    def describe(self) -> str:
        return f", engine={self.engine!r}"

    def reset(self, channels: int | None = None) -> None:
        """Back to rest, as if the pedal had just been switched on: all state cleared, every
        knob at its value (a glide in progress ends there at once, in both engines) and the
        output silent for silent input; a channel count re-sizes the state."""
        self.channels = self.channels if channels is None else channels
        for stage in (self.input_buffer, self.gain_stage, self.tone, self.output_stage):
            stage.reset(self.channels)
        # built once per channel count: a block then costs one dispatch with these very arrays
        self.stages = share_memory(self.input_buffer, self.tone, self.output_stage)

    def render(self, x, y) -> None:
        # no views, generators or NumPy scalars here: a block makes no Python objects
        if not self.gain_stage.run_pedal(x, y, self.stages):
            raise KlonError("audio contains NaN or Inf samples")

"""The exported C, run: on the host through ctypes (to check it against the Python engines) and
on an emulated Cortex-M7 (QEMU's mps2-an500) to count its instructions per sample and its sizes.

Both runs take the same clip in 128-sample blocks (the Teensy Audio Library's block), and move
the Gain at the same sample, so their outputs compare sample for sample.
"""
import ctypes
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError
from klon.export import toolchain
from klon.export.c99.neural_c import export_c

BLOCK = 128
TEENSY_HZ = 600e6  # Teensy 4.0: a 600 MHz Cortex-M7
STATE_BYTES = 1 << 20  # what the host runs give the C state structs (the neural pedal with its
# sample-rate converter, sized for 22.05..192 kHz, takes about 430 KB)


@dataclass
class Case:
    """What runs: the whole pedal or the gain stage alone, with the neural bank or the circuit
    gain stage; the Gain, and where it starts gliding to `gain_after` (the pedal's Treble and
    Level, at 0.5 before, to `treble_after` and `level_after`)."""

    engine: str = "neural"  # neural | circuit
    target: str = "pedal"  # pedal | gain
    gain: float = 0.5
    move_at: int = 11_025
    gain_after: float = 1.0
    treble_after: float = 0.5
    level_after: float = 0.5

    @property
    def knobs_after(self):
        return self.gain_after, self.treble_after, self.level_after

    @property
    def defines(self):
        return ((["KLON_ENGINE_CIRCUIT"] if self.engine == "circuit" else [])
                + (["KLON_MEASURE_GAIN_STAGE"] if self.target == "gain" else []))


def reference_clip(seconds=0.5, sample_rate=44_100):
    """A reference DI clip (../shared/data) if there, else a generated riff; float32 volts."""
    from klon.core.paths import find_data
    data = find_data()
    frames = int(seconds * sample_rate)
    if data is not None and sample_rate == 44_100:
        from klon.core import audio
        x, _ = audio.read(data / "klon-ltspice" / "DataIn" / "sample1.wav")
        return np.ascontiguousarray(x[0, :frames], dtype=np.float32)
    from klon.dsp.synth import guitar_riff
    return guitar_riff(sample_rate, seconds).astype(np.float32)[:frames]


def python_output(x, case, sample_rate=44_100, models=None):
    """The Python engine on the same blocks and knob move."""
    if case.target == "gain":
        if case.engine == "circuit":
            from klon.pedal import GainStage
            unit = GainStage(sample_rate, case.gain)
        else:
            from klon.neural.gain_stage import neural_gain_stage
            unit = neural_gain_stage(sample_rate, case.gain, models)
    else:
        from klon.pedal.centaur import Centaur
        unit = Centaur(sample_rate, case.gain, engine=case.engine,
                       models=models if case.engine == "neural" else None)
    y = np.empty_like(x)
    x64 = x.astype(np.float64) if case.engine == "circuit" else x
    for start in range(0, len(x), BLOCK):
        if start <= case.move_at < start + BLOCK:
            unit.gain = case.gain_after
            if case.target == "pedal":
                unit.treble, unit.level = case.treble_after, case.level_after
        y[start:start + BLOCK] = unit.process(x64[start:start + BLOCK])
    return y


class HostBuild:
    """The exported library built as a host shared library, driven like measure.c drives it."""

    def __init__(self, folder, case, optimisation="-O2", flags=(), defines=()):
        folder = Path(folder)
        sources = [folder / "klon_pedal.c"]
        if case.engine == "circuit":
            sources.append(folder / "klon_circuit_gain.c")
        self.case = case
        # a name per build: dlopen hands back a library already loaded from the same path
        name = "-".join([case.engine, case.target, optimisation, *flags, *defines])
        self.lib = ctypes.CDLL(str(toolchain.host_library(
            sources, folder / f"host-{name.replace('=', '')}.so", optimisation=optimisation,
            flags=flags, include_dirs=[folder], defines=[*case.defines, *defines])))
        f, p, i = ctypes.c_float, ctypes.c_void_p, ctypes.c_int
        prefix = {("neural", "gain"): "klon_bank", ("circuit", "gain"): "klon_circuit_gain"}.get(
            (case.engine, case.target), "klon_pedal")
        self._init = getattr(self.lib, f"{prefix}_init")
        self._process = getattr(self.lib, f"{prefix}_process")
        self._set_knobs = getattr(self.lib, "klon_pedal_set_params" if prefix == "klon_pedal"
                                  else f"{prefix}_set_gain")
        self._init.argtypes = [p, f, f, f, f] if prefix == "klon_pedal" else [p, f, f]
        self._process.argtypes = [p, p, p, i]
        self._set_knobs.argtypes = [p, f, f, f] if prefix == "klon_pedal" else [p, f]
        self._pedal = prefix == "klon_pedal"
        self.state = ctypes.create_string_buffer(STATE_BYTES)

    def init(self, sample_rate, gain):
        knobs = (gain, 0.5, 0.5) if self._pedal else (gain,)
        return self._init(self.state, sample_rate, *knobs)

    def set_knobs(self, gain, treble=0.5, level=0.5):
        self._set_knobs(self.state, *((gain, treble, level) if self._pedal else (gain,)))

    def run(self, x, sample_rate=44_100):
        """The clip through it from init, in BLOCK-sample blocks with the case's Gain move."""
        case = self.case
        if self.init(sample_rate, case.gain) != 0:
            raise KlonError(f"the exported C refused {sample_rate} Hz")
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.zeros_like(x)
        for start in range(0, len(x), BLOCK):
            if start <= case.move_at < start + BLOCK:
                self.set_knobs(*case.knobs_after)
            n = min(BLOCK, len(x) - start)
            self._process(self.state, x[start:].ctypes.data, y[start:].ctypes.data, n)
        return y


@dataclass
class Measurement:
    case: Case
    optimisation: str
    fast_activations: bool
    instructions_per_sample: float  # knobs still
    glide_instructions_per_sample: float  # while the Gain glides
    worst_block_instructions: int
    flash_bytes: int  # the library's code and constants (arm-none-eabi-size text + data)
    firmware_flash_bytes: int  # a least firmware running it: start-up, library, libm (klon_size.c)
    state_bytes: int  # the caller's state struct
    stack_bytes: int  # deepest stack use of init + process
    output: np.ndarray
    qemu_seconds: float

    @property
    def ram_bytes(self):
        return self.state_bytes + self.stack_bytes

    @property
    def teensy_share(self):
        """Share of a 600 MHz Cortex-M7 at 44.1 kHz, assuming one instruction per cycle."""
        return self.instructions_per_sample * 44_100 / TEENSY_HZ


def export(folder, case, models=None, fast_activations=False):
    """The library for a case into `folder` (the circuit gain stage too when it runs)."""
    export_c(folder, models=models, circuit=case.engine == "circuit", force=True)
    return Path(folder)


def cortex_m7(folder, case, x, optimisation="-O2", fast_activations=False, sample_rate=44_100,
              flags=(), defines=(), timeout=300):
    """Build measure.c with the library for the Cortex-M7, run it under QEMU on `x`, and count."""
    folder = Path(folder)
    defines = [*case.defines, *(["KLON_FAST_ACTIVATIONS"] if fast_activations else []), *defines]
    # a firmware for its one rate, unless told otherwise: no sample-rate converter (its tables,
    # sized for every rate, would be most of the RAM)
    one_rate = [f"KLON_{end}_SAMPLE_RATE={int(sample_rate)}" for end in ("MIN", "MAX")
                if not any(d.startswith(f"KLON_{end}_SAMPLE_RATE") for d in defines)]
    sources = [folder / "klon_pedal.c"]
    if case.engine == "circuit":
        sources.append(folder / "klon_circuit_gain.c")
    tag = f"{case.engine}-{case.target}{'-fast' if fast_activations else ''}{optimisation}"
    tag += "".join(flags + tuple(defines)).replace("=", "")
    defines += one_rate
    elf = toolchain.cortex_m7_program([*sources, toolchain.BOARD / "measure.c"],
                                      folder / f"measure-{tag}.elf", optimisation=optimisation,
                                      flags=flags, include_dirs=[folder, toolchain.BOARD],
                                      defines=defines)
    # the gain stage alone needs only its own file (the pedal's bank is not linked in)
    counted = sources[1:] if (case.engine, case.target) == ("circuit", "gain") else sources
    objects = [toolchain.cortex_m7_object(s, folder / f"{s.stem}-{tag}.o",
                                          optimisation=optimisation, flags=flags,
                                          include_dirs=[folder], defines=defines)
               for s in counted]
    clip = folder / "clip.f32"
    out = folder / f"out-{tag}.f32"
    np.ascontiguousarray(x, dtype=np.float32).tofile(clip)
    run = toolchain.run_cortex_m7(elf, [clip, out, sample_rate, case.gain, case.move_at,
                                        *case.knobs_after], timeout=timeout)
    ticks_per_instruction = run.value("calibration_ticks") / run.value("calibration_instructions")
    per = run.value("steady_ticks") / ticks_per_instruction / run.value("steady_samples")
    glide = run.value("glide_ticks") / ticks_per_instruction / max(run.value("glide_samples"), 1)
    sizes = toolchain.size(objects)
    firmware = toolchain.cortex_m7_program(
        [*sources, toolchain.BOARD / "klon_size.c"], folder / f"size-{tag}.elf",
        optimisation=optimisation, flags=flags, include_dirs=[folder, toolchain.BOARD],
        defines=defines, semihosting=False)
    return Measurement(case, optimisation, fast_activations, per, glide,
                       round(run.value("worst_block_ticks") / ticks_per_instruction),
                       sizes.flash, toolchain.size(firmware).flash, run.value("state_bytes"),
                       run.value("stack_bytes"), np.fromfile(out, dtype=np.float32), run.seconds)


def measure(case, x=None, optimisation="-O2", fast_activations=False, models=None, flags=(),
            defines=()):
    """Export, run on the Cortex-M7 and on the host; (Measurement, largest |M7 - host|,
    largest |M7 - Python|)."""
    x = reference_clip() if x is None else x
    flags, defines = tuple(flags), tuple(defines)
    with tempfile.TemporaryDirectory(prefix="klon-m7-") as folder:
        export(folder, case, models)
        m = cortex_m7(folder, case, x, optimisation, fast_activations, flags=flags,
                      defines=defines)
        host = HostBuild(folder, case, optimisation, flags=flags, defines=(
            *(["KLON_FAST_ACTIVATIONS"] if fast_activations else []), *defines)).run(x)
    python = python_output(x, case, models=models)
    return m, float(np.max(np.abs(m.output - host))), float(np.max(np.abs(m.output - python)))

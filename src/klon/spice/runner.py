"""Run ngspice in batch mode on a stage's netlist and bring the waveform back at the sample times.

The input reaches SPICE as the band-limited continuous signal a digital model assumes: x is
padded with silence, upsampled with a polyphase anti-imaging filter and played as a
piecewise-linear waveform. Two ngspice facts shape how:
  - A `PWL(...)` source looks its corners up linearly at every evaluation (and `+` continuation
    lines parse in quadratic time), so 176k corners would take many minutes. The XSPICE
    `filesource` model streams the same corners from a file in constant time per step.
  - `filesource` sets no breakpoints, so a zero-valued TRRANDOM source with period 1/fs is added
    for its side effect: a breakpoint at every sample instant. The solver then lands exactly on
    the instants we read, and the output needs no interpolation there.
"""
from __future__ import annotations

import numbers
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal

from klon.core.errors import KlonError
from klon.spice.netlist import build_netlist, check_stage, output_node, source_nodes

NGSPICE = "ngspice"
INTERPOLATION_HALF_LENGTH = 48  # input samples either side of the upsampling filter's centre

# Solver settings. Measured on a guitar clip through the gain stage at gain 1: halving the
# maximum step changes the output by an ESR of about 1e-9, and a run at reltol 1e-7 / trtol 1
# differs by about 2e-9, so SPICE's own error is far below anything we compare against.
#  - reltol 1e-6 (default 1e-3) drives both step control and Newton on every 4.5 V node.
#  - vntol 10 nV (default 1 uV) is the Newton floor for nodes near 0 V (clip node, jack). At
#    0.1 nV the clip node stalled at gain 0; 10 nV leaves a wide margin and changes no output
#    measurably (it is 1e-6 of a 10 mV signal, and Newton converges far past it).
#  - abstol stays at its 1 pA default. Tighter (1 fA) asks the diodes, which conduct ~6 uS at
#    rest, to settle the clip node to 1e-10 V through 1 uF coupling caps: round-off then wins
#    and the run stalls with "timestep too small".
#  - gear (order 2) rather than trapezoidal: the ideal op-amps' closed loops, the diode's
#    RS * CJO (7 ohm * 0.5 pF) and the 1 ohm pot ends are nano- to picosecond modes. Gear damps
#    them; the trapezoidal rule does not, and it stalled on the pedal in trials of an earlier
#    op-amp model. On the final netlists both agree to an ESR of about 1e-9.
OPTIONS = ".options reltol=1e-6 vntol=1e-8 abstol=1e-12 method=gear maxord=2"


def _prepare_input(x, sample_rate, oversampling, preroll):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise KlonError(f"input must be a non-empty 1-D array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise KlonError("input contains NaN or infinite values")
    try:
        sample_rate = float(sample_rate)
    except (TypeError, ValueError):
        raise KlonError(f"sample rate must be a number, got {sample_rate!r}") from None
    if not (np.isfinite(sample_rate) and sample_rate > 0):
        raise KlonError(f"sample rate must be positive, got {sample_rate}")
    for name, value, least in (("input_oversampling", oversampling, 1),
                               ("preroll_samples", preroll, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise KlonError(f"{name} must be an integer >= {least}, got {value!r}")
    oversampling, preroll = int(oversampling), int(preroll)
    # silence first, then upsample: the interpolation filter's pre-ringing before the first
    # sample lands inside the preroll instead of being cut off
    padded = np.concatenate([np.zeros(preroll), x])
    if oversampling == 1:
        return x, sample_rate, oversampling, preroll, padded
    fine = scipy.signal.resample_poly(padded, oversampling, 1,
                                      window=_interpolation_filter(oversampling))
    return x, sample_rate, oversampling, preroll, fine


def _interpolation_filter(oversampling: int) -> np.ndarray:
    """Windowed-sinc interpolator, cut off at the input's Nyquist frequency.

    scipy's default for resample_poly (10 input samples each side, Kaiser beta 5) misses the
    band-limited signal by 3e-4 of its amplitude at 100 Hz and 3e-3 at 18 kHz, which would
    show in comparisons aimed at an ESR of 1e-6. This one (48 samples each side, beta 13)
    stays within 3e-7 up to 20 kHz at 44.1 kHz; its pre-ringing spans 48 input samples, so
    the default 64-sample preroll holds all of it.
    """
    return scipy.signal.firwin(2 * INTERPOLATION_HALF_LENGTH * oversampling + 1,
                               1.0 / oversampling, window=("kaiser", 13.0))


def band_limited_input(x, sample_rate: float, *, input_oversampling: int = 8,
                       preroll_samples: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The (times, volts) corners of the PWL waveform `simulate` feeds to SPICE.

    Time 0 is the start of the preroll, so sample n of x sits at (preroll_samples + n) / fs.
    Useful for computing reference responses to exactly the signal SPICE saw.
    """
    _, sample_rate, oversampling, _, fine = _prepare_input(
        x, sample_rate, input_oversampling, preroll_samples)
    return np.arange(fine.size) / (sample_rate * oversampling), fine


def read_raw(path) -> dict[str, np.ndarray]:
    """Read an ngspice binary raw file of real vectors: {name: array}, names lower-case."""
    data = Path(path).read_bytes()
    marker = b"Binary:\n"
    end = data.find(marker)
    if end < 0:
        raise KlonError(f"{path}: not a binary ngspice raw file")
    nvars = npoints = None
    names: list[str] = []
    in_vars = False
    for line in data[:end].decode("latin-1").splitlines():
        if line.startswith("No. Variables:"):
            nvars = int(line.split(":")[1])
        elif line.startswith("No. Points:"):
            npoints = int(line.split(":")[1])
        elif line.startswith("Flags:") and "complex" in line:
            raise KlonError(f"{path}: complex data, expected a transient run")
        elif line.startswith("Variables:"):
            in_vars = True
        elif in_vars and line.strip():
            names.append(line.split()[1].lower())
    if nvars is None or npoints is None or len(names) != nvars:
        raise KlonError(f"{path}: unreadable raw file header")
    values = np.frombuffer(data, dtype="<f8", count=nvars * npoints, offset=end + len(marker))
    values = values.reshape(npoints, nvars)
    return {name: values[:, i].copy() for i, name in enumerate(names)}


def _run_ngspice(deck: Path, workdir: Path) -> None:
    exe = shutil.which(NGSPICE)
    if exe is None:
        raise KlonError("ngspice not found: install the Debian package 'ngspice'")
    log = workdir / "ngspice.log"
    try:
        proc = subprocess.run([exe, "-b", "-o", str(log), str(deck)], cwd=workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as exc:
        raise KlonError(f"could not start ngspice: {exc}") from None
    text = log.read_text(errors="replace") if log.exists() else ""
    text = "\n".join([text, proc.stderr])
    lines = [line for line in text.splitlines() if line.strip()]
    # ngspice can exit 0 after an aborted analysis, so look for its own complaints too
    trouble = [line for line in lines
               if "rror" in line or "aborted" in line or "too small" in line]
    if proc.returncode != 0 or trouble or not (workdir / "out.raw").exists():
        tail = "\n".join((trouble or lines)[-12:])
        raise KlonError(f"ngspice failed (exit code {proc.returncode}); its log ends:\n{tail}")


def _deck(stage: str, knobs: dict, sample_period: float, t_stop: float, max_step: float,
          node: str) -> str:
    plus, minus = source_nodes(stage)
    input_card = "\n".join([
        f"Ain %vd([{plus} {minus}]) klon_input",
        '.model klon_input filesource (file="input.txt" amploffset=[0] amplscale=[1] '
        "timeoffset=0 timescale=1 timerelative=false amplstep=false)",
        "* no signal: a breakpoint at every sample instant (uniform 0..0 every 1/fs)",
        f"Vtick tick 0 DC 0 TRRANDOM(1 {sample_period!r} 0 0 0)",
        "Rtick tick 0 1k",
    ])
    return "\n".join([
        build_netlist(stage, input_card, **knobs),
        OPTIONS,
        ".control",
        "set filetype=binary",
        f"save v({node})",
        f"tran {max_step!r} {t_stop!r} 0 {max_step!r}",
        f"write out.raw v({node})",
        "quit 0",
        ".endc",
        ".end",
        "",
    ])


def simulate(stage: str, x, sample_rate: float, *, gain: float = 0.5, treble: float = 0.5,
             level: float = 0.5, diode: str = "1n34a", opamp: str = "ideal",
             diode_capacitance: bool = True, input_oversampling: int = 8,
             preroll_samples: int = 64, max_step: float | None = None,
             workdir=None) -> np.ndarray:
    """Transient-simulate one stage (or the whole pedal) in ngspice.

    `x` is the AC input in volts at `sample_rate`; the result is the stage's AC output in volts
    at exactly t = n / sample_rate (same length, no added delay). The circuit starts from its DC
    operating point, `preroll_samples` of silence before x (keep it >= 48, the upsampling
    filter's reach, so none of its pre-ringing is cut). `max_step` (seconds) caps SPICE's
    time step; the default is the PWL corner spacing 1 / (sample_rate * input_oversampling).
    `workdir` keeps the deck, input file, raw output and log there instead of in a throw-away
    directory.
    """
    check_stage(stage)
    knobs = dict(gain=gain, treble=treble, level=level, diode=diode, opamp=opamp,
                 diode_capacitance=diode_capacitance)
    node, bias = output_node(stage)
    build_netlist(stage, "", **knobs)  # bad knobs fail here, before any work
    x, sample_rate, oversampling, preroll, fine = _prepare_input(
        x, sample_rate, input_oversampling, preroll_samples)
    corner = 1.0 / (sample_rate * oversampling)
    if max_step is None:
        max_step = corner
    elif not (isinstance(max_step, numbers.Real) and max_step > 0):
        raise KlonError(f"max_step must be a positive number of seconds, got {max_step!r}")
    max_step = float(max_step)
    last = preroll + x.size - 1  # the last sample instant, in samples
    t_stop = max(last / sample_rate, corner)  # ngspice refuses a zero-length run
    deck = _deck(stage, knobs, 1.0 / sample_rate, t_stop, max_step, node)

    # one extra flat corner past the end: filesource holds its last value once the file ends
    times = np.arange(fine.size + 1) * corner
    values = np.append(fine, fine[-1])

    def run_in(directory: Path):
        np.savetxt(directory / "input.txt", np.column_stack([times, values]), fmt="%.17g")
        (directory / "deck.cir").write_text(deck)
        (directory / "out.raw").unlink(missing_ok=True)  # a reused workdir's old result
        _run_ngspice(directory / "deck.cir", directory)
        raw = read_raw(directory / "out.raw")
        return raw["time"], raw[f"v({node})"]

    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="klon-spice-") as tmp:
            time, volts = run_in(Path(tmp))
    else:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        time, volts = run_in(workdir)

    # the sample instants are breakpoints, hence solver time points: this is a lookup in effect
    instants = (preroll + np.arange(x.size)) / sample_rate
    if time[-1] < instants[-1] * (1 - 1e-12):
        raise KlonError(f"ngspice stopped at t = {time[-1]:.6g} s, before the last sample")
    return np.interp(instants, time, volts) - bias

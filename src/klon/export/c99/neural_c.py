"""The neural pedal as portable C99, generated from the very objects the Python engine runs.

`render_pedal(models)` returns the texts of klon_pedal.h and klon_pedal.c: the templates in
templates/ filled with
- the models' weights as the Python kernels pack them (the architecture's pack: sigmoid gates
  halved, GRU biases folded), float32 values written with 9 significant digits so they
  round-trip exactly, each array with the unit last (u[gate][m][j], k[gate][input][j],
  b[gate][j]), so a step's loop over the units reads contiguous memory and vectorises;
- each model's rest state and the output it subtracts, as the Python engine's bank computes
  them (klon.neural.bank.rest_rows: the silence fixed point and the output there, so the
  pedal starts silent and 0 V in gives 0 V out);
- the models' Gain positions, as ModelBank sorts them;
- a time step written out for the hidden size by the architecture (klon.neural.architectures:
  GRU or LSTM, one or two inputs), the sums over the previous state unrolled;
- the component values of the linear stages (klon.pedal.components);
- the tanh of klon.dsp.activations, and the cheaper one of -DKLON_FAST_ACTIVATIONS (FAST_TANH).

`export_c(out_dir, ...)` writes them (and, asked, the circuit gain stage of
klon.export.c99.circuit_c) atomically, file by file.
"""
import os
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.dsp import resampler
from klon.dsp.activations import TANH_DENOMINATOR, TANH_LIMIT, TANH_NUMERATOR
from klon.export.c99.circuit_c import render_circuit_gain
from klon.export.c99.literals import c_double, c_float, c_initialiser, fill_template
from klon.neural.architectures import architecture
from klon.neural.bank import ModelBank, rest_rows
from klon.neural.gain_stage import DEFAULT_SET
from klon.neural.kernels import TWIN_SETTLE
from klon.neural.model_file import ModelSpec
from klon.pedal import components as c

TEMPLATES = Path(__file__).with_name("templates")
HEADER, SOURCE = "klon_pedal.h", "klon_pedal.c"
CIRCUIT_FILES = ("klon_circuit_gain.h", "klon_circuit_gain.c")
ModelPath = str | os.PathLike  # a model file, a folder of them or a shipped set's name

# tanh(x) ~= x P(x^2) / Q(x^2), as klon.dsp.activations (within 3.4e-7 of tanh)
EXACT_TANH = dict(limit=float(TANH_LIMIT), p=[float(v) for v in TANH_NUMERATOR],
                  q=[float(v) for v in TANH_DENOMINATOR])
# -DKLON_FAST_ACTIVATIONS: degree 3 over 3 in x^2 on |x| <= 7, no output clamp (its largest
# value stays below 1): one multiply-add less each side and no clamp of the result. A weighted
# least-squares fit of ours, within 1.2e-6 of tanh in float32 (benchmarks/embedded.py measures
# what it costs the pedal's output).
FAST_TANH = dict(limit=7.0, p=[0.99999569, 0.123022623, 0.00227705954, 3.93034403e-06],
                 q=[1.0, 0.456341117, 0.0210725098, 0.000142358495])


def tanh_error(tanh: dict = FAST_TANH, clamp_output: bool = False) -> float:
    """Largest |error| against the exact tanh of the C function (float32 maths), over +-20."""
    x = np.linspace(-20.0, 20.0, 400_001).astype(np.float32)
    return float(np.max(np.abs(_tanh32(x, tanh, clamp_output) - np.tanh(x.astype(np.float64)))))


def _tanh32(x, tanh, clamp_output):
    f32 = np.float32
    x = np.clip(x, f32(-tanh["limit"]), f32(tanh["limit"])).astype(np.float32)
    s = x * x
    p = np.zeros_like(x) + f32(tanh["p"][-1])
    for coefficient in tanh["p"][-2::-1]:
        p = f32(coefficient) + s * p
    q = np.zeros_like(x) + f32(tanh["q"][-1])
    for coefficient in tanh["q"][-2::-1]:
        q = f32(coefficient) + s * q
    y = x * p / q
    return np.clip(y, f32(-1), f32(1)) if clamp_output else y


def _horner(coefficients, fused=False):
    """c0 + s * (c1 + s * (...)) with float literals; fused: each step one fmaf, as LLVM
    contracts Python's polynomial."""
    text = c_float(coefficients[-1])
    for coefficient in coefficients[-2::-1]:
        text = (f"fmaf(s, {text}, {c_float(coefficient)})" if fused
                else f"{c_float(coefficient)} + s * ({text})")
    return text


def bank_specs(models: ModelPath | None = None, model: ModelPath | None = None
               ) -> tuple[list[ModelSpec], list[float], str]:
    """(specs, positions, source text) of the bank the Python engine would build: `model` (one
    file, at every Gain) or `models` (a shipped set name or folder; default the shipped set the
    neural engine plays at 44.1 kHz)."""
    if model is not None and models is not None:
        raise KlonError("give either a model file or a model set, not both")
    if model is not None:
        bank = ModelBank([model])
        source = os.path.basename(os.fspath(model))
    else:
        models = DEFAULT_SET if models is None else models
        bank = ModelBank(models)
        source = f"the model set '{os.fspath(models)}'"
    return bank.specs, [float(p) for p in bank.positions], source


def _model_fields(kind: str) -> list[tuple[str, str, str]]:
    """The float fields of the C klon_model, in order: (name, dimensions, comment). Every weight
    array has the unit j as its last index, so a step's loop over the units reads it
    contiguously (klon.neural.architectures.c_source). The order: the fewest Cortex-M7
    instructions of the four measured (docs/embedded.md)."""
    arch = architecture(kind)
    gates = len(arch.GATES)
    return ([("dense", "[KLON_HIDDEN]", "the Dense layer"), ("dense_bias", "", "its bias"),
             ("k", f"[{gates}][KLON_INPUTS][KLON_HIDDEN]", "[gate][input][j]: input weights"),
             ("b", f"[{gates}][KLON_HIDDEN]", "[gate][j]: biases")]
            + [(name, "[KLON_HIDDEN]", f"[j]: {comment}")
               for name, _, comment in arch.C_UNIT_FIELDS]
            + [("u", f"[{gates}][KLON_HIDDEN][KLON_HIDDEN]",
                "[gate][m][j]: from unit m of the previous state")])


def _model_struct(kind: str) -> str:
    """The C type of a model."""
    lines = ["typedef struct klon_model {",
             f"    /* gates {', '.join(architecture(kind).GATES)}; the unit j last */"]
    lines += [f"    float {name}{dims};".ljust(44) + f" /* {comment} */"
              for name, dims, comment in _model_fields(kind)]
    return "\n".join(lines + ["} klon_model;"])


def _rows(values: np.ndarray, indent: str) -> str:
    """A nested brace initialiser, one innermost row to a line; a scalar's literal."""
    if values.ndim == 0:
        return c_float(values)
    if values.ndim == 1:
        return c_initialiser(values)
    inner = indent + " "
    return "{" + f",\n{inner}".join(_rows(v, inner) for v in values) + "}"


def _model_initialiser(spec: ModelSpec, position: float | None) -> str:
    """One klon_model's initialiser from the packed row the Python kernels run, whose blocks
    already hold each gate's weights unit last (U[m][j], K[input][j], B[j])."""
    arch = architecture(spec.kind)
    H, k = spec.hidden_size, spec.inputs
    offsets, _ = arch.layout(H, k)
    row = arch.pack(spec)

    def block(name, *shape):
        return row[offsets[name]:offsets[name] + int(np.prod(shape))].reshape(shape)

    values = {"dense": block("W", H), "dense_bias": row[offsets["BD"]],
              "k": np.stack([block(f"K{g}", k, H) for g in arch.GATES]),
              "b": np.stack([block(f"B{g}", H) for g in arch.GATES]),
              "u": np.stack([block(f"U{g}", H, H) for g in arch.GATES]),
              **{name: block(row_block, H) for name, row_block, _ in arch.C_UNIT_FIELDS}}
    indent = "      "
    gain = "any Gain" if position is None else f"Gain {position:g}"
    return (f"    {{ /* {spec.name}: {gain} */\n"
            + ",\n".join(f"{indent}{_rows(values[name], indent)}"
                          for name, _, _ in _model_fields(spec.kind)) + "}")


def _rest_initialiser(spec: ModelSpec, row: np.ndarray) -> str:
    """Where the model rests (the state vectors of its packed rest row), as the engine's."""
    arch = architecture(spec.kind)
    H = spec.hidden_size
    offsets, _ = arch.layout(H, spec.inputs)
    state = [v for block in arch.STATE_BLOCKS for v in row[offsets[block]:offsets[block] + H]]
    return "      " + c_initialiser(state)


def _components():
    u1_low, u1_high = c.output_limits(c.U1_RAILS)
    u2_low, u2_high = c.output_limits(c.U2_RAILS)
    values = dict(R1=c.R1, R2=c.R2, C1=c.C1, R21=c.R21, R22=c.R22, R23=c.R23, R24=c.R24,
                  C14=c.C14, R25=c.R25, R28=c.R28, C15=c.C15, TREBLE_POT=c.TREBLE_POT,
                  LEVEL_POT=c.LEVEL_POT, POT_MINIMUM=c.POT_MINIMUM, U1_LOW=u1_low,
                  U1_HIGH=u1_high, U2_LOW=u2_low, U2_HIGH=u2_high)
    lines = ["/* klon.pedal.components: ohms, farads; op-amp swings as AC volts */"]
    return "\n".join(lines + [f"#define {name} {c_double(v)}" for name, v in values.items()])


def _convertible(rate: float) -> int:
    """The models' rate as whole Hz, or 0 where the sample-rate converter cannot run at it."""
    try:
        return resampler.check_rate(rate)
    except KlonError:
        return 0


def render_pedal(models: ModelPath | None = None, model: ModelPath | None = None
                 ) -> dict[str, str]:
    """{file name: text} of klon_pedal.h and klon_pedal.c for a model set (or one model)."""
    specs, positions, source = bank_specs(models, model)
    first = specs[0]
    kind, H, k = first.kind, first.hidden_size, first.inputs
    arch = architecture(kind)
    state_size = H * len(arch.STATE_BLOCKS)
    single = model is not None or len(specs) == 1
    pairs = list(zip(specs, positions, strict=True))
    rest, silence = rest_rows(specs)
    models_doc = ", ".join(f"{s.name} ({'any Gain' if single else f'Gain {p:g}'})"
                           for s, p in pairs)
    model_code = "\n".join([
        _model_struct(kind), "",
        "static const klon_model klon_models[KLON_MODELS] = {",
        ",\n".join(_model_initialiser(s, None if single else p) for s, p in pairs),
        "};", "",
        "/* where each model rests: its state in silence (the Python engine's, see "
        "klon.neural.bank), at one point, or for a Gain-conditioned model at each Gain of a "
        "grid 0..1 */",
        "static const float klon_rest[KLON_MODELS][KLON_REST_POINTS][KLON_STATE_SIZE] = {",
        ",\n".join("    {\n" + ",\n".join(_rest_initialiser(s, row) for row in rows) + "\n    }"
                   for s, rows in zip(specs, rest, strict=True)),
        "};", "",
        *(["/* each model's output there, subtracted from its output in the bank: 0 V in "
            "gives 0 V out */",
            "static const float klon_offset[KLON_MODELS] = {"
            + ", ".join(c_float(v) for v in silence[:, 0]) + "};", ""]
          if rest.shape[1] == 1 else []),  # a conditioned model's: its silence twin's
        "/* the Gain setting of each model (ascending) */",
        "static const double klon_positions[KLON_MODELS] = {"
        + ", ".join(c_double(p) for p in positions) + "};", "",
        arch.c_step(H, k)])
    fast_error = tanh_error(FAST_TANH)
    fields = dict(
        SOURCE=source, MODELS_DOC=models_doc, KIND_UPPER=kind.upper(), HIDDEN=H, INPUTS=k,
        MODELS=len(specs), STATE_SIZE=state_size, REST_POINTS=rest.shape[1],
        TWIN_SETTLE=TWIN_SETTLE,
        SAMPLE_RATE=c_double(first.sample_rate),
        FAST_ERROR=f"{fast_error:.1e}", MODEL_CODE=model_code, COMPONENTS=_components(),
        EXACT_P=_horner(EXACT_TANH["p"], True), EXACT_Q=_horner(EXACT_TANH["q"], True),
        FAST_P=_horner(FAST_TANH["p"]), FAST_Q=_horner(FAST_TANH["q"]),
        FAST_LIMIT=c_float(-FAST_TANH["limit"]), FAST_LIMIT_POS=c_float(FAST_TANH["limit"]),
        FAST_DOC=(f"tanh ~= x P(x^2) / Q(x^2), degree {len(FAST_TANH['p']) - 1} over "
                  f"{len(FAST_TANH['q']) - 1}, on |x| <= {FAST_TANH['limit']:g}: within "
                  f"{fast_error:.1e} of tanh"),
        MODEL_RATE=_convertible(first.sample_rate), RS_HALF_SPAN=resampler.HALF_SPAN,
        RS_EXACT_ROWS=resampler.MAX_EXACT_ROWS, RS_FINE_ROWS=resampler.FINE_ROWS,
        RS_HOLD=resampler.HOLD, RS_CUTOFF=c_double(resampler.CUTOFF),
        RS_BETA=c_double(resampler.BETA),
    )
    return {name: fill_template(TEMPLATES / f"{name}.in", fields) for name in (HEADER, SOURCE)}


def render_library(models: ModelPath | None = None, model: ModelPath | None = None,
                   circuit: bool = False) -> dict[str, str]:
    """The files of `klon export c`: the neural pedal, and with circuit=True the circuit gain
    stage for -DKLON_ENGINE_CIRCUIT."""
    texts = render_pedal(models, model)
    if circuit:
        texts.update(zip(CIRCUIT_FILES, render_circuit_gain(), strict=True))
    return texts


def export_c(out_dir: str | os.PathLike, models: ModelPath | None = None,
             model: ModelPath | None = None, circuit: bool = False, force: bool = False
             ) -> list[Path]:
    """Write the C library into out_dir (made if missing); returns the paths written.

    A folder that already holds files is refused unless force; even then only the library's own
    files are replaced, each atomically (written aside, then renamed), and never an input."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise KlonError(f"{out} is a file: give a folder for the C library")
    texts = render_library(models, model, circuit)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise KlonError(f"{out} is not empty: give an empty or new folder, or --force to "
                        f"replace {', '.join(texts)} in it")
    inputs = {Path(model).resolve()} if model is not None else set()
    for name in texts:
        if (out / name).resolve() in inputs:
            raise KlonError(f"writing {out / name} would overwrite the input model")
    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write(out / name, text) for name, text in texts.items()]

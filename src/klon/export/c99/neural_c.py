"""The neural pedal as portable C99, generated from the very objects the Python engine runs.

`render_pedal(models)` returns the texts of klon_pedal.h and klon_pedal.c: the templates in c/
filled with
- the models' weights as the Python kernels pack them (klon.neural.kernels.pack: sigmoid gates
  halved, GRU biases folded), float32 values written with 9 significant digits so they round-trip
  exactly, in a unit-major layout (all of one unit's weights together, so a step walks one
  pointer);
- each model's rest state (after the 2048-zero pre-roll), computed by the Python engine;
- the models' Gain positions, as ModelBank sorts them;
- a time step written out for the hidden size (GRU or LSTM, one or two inputs), the sums over the
  previous state unrolled;
- the component values of the linear stages (klon.pedal.components);
- the tanh of klon.dsp.activations, and the cheaper one of -DKLON_FAST_ACTIVATIONS (FAST_TANH).

`export_c(out_dir, ...)` writes them (and, asked, the circuit gain stage of
klon.export.c99.circuit_c) atomically, file by file.
"""
import os
import tempfile
from pathlib import Path

import numpy as np

from klon.pedal import components as c
from klon.dsp import activations
from klon.core.errors import KlonError
from klon.export.c99.circuit_c import render_circuit_gain
from klon.neural.bank import ModelBank
from klon.neural.kernels import gate_names, layout, pack
from klon.neural.model import rest_state
from klon.neural.gain_stage import DEFAULT_MODELS

TEMPLATES = Path(__file__).with_name("templates")
HEADER, SOURCE = "klon_pedal.h", "klon_pedal.c"
CIRCUIT_FILES = ("klon_circuit_gain.h", "klon_circuit_gain.c")
DEFAULT_SET = DEFAULT_MODELS[44_100]

# tanh(x) ~= x P(x^2) / Q(x^2), as klon.dsp.activations (within 3.4e-7 of tanh)
EXACT_TANH = dict(limit=9.0, p=[float(v) for v in (activations._P0, activations._P1,
                                                    activations._P2, activations._P3,
                                                    activations._P4)],
                  q=[1.0] + [float(v) for v in (activations._Q1, activations._Q2,
                                                activations._Q3, activations._Q4)])
# -DKLON_FAST_ACTIVATIONS: degree 3 over 3 in x^2 on |x| <= 7, no output clamp (its largest
# value stays below 1): one multiply-add less each side and no clamp of the result. A weighted
# least-squares fit of ours, within 1.2e-6 of tanh in float32 (benchmarks/embedded.py measures
# what it costs the pedal's output).
FAST_TANH = dict(limit=7.0, p=[0.99999569, 0.123022623, 0.00227705954, 3.93034403e-06],
                 q=[1.0, 0.456341117, 0.0210725098, 0.000142358495])


def tanh_error(tanh=FAST_TANH, clamp_output=False):
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


def c_float(value):
    """A float32 value as a C literal that reads back to the same float."""
    text = f"{float(np.float32(value)):.9g}"
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text + "f"


def c_double(value):
    text = repr(float(value))
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text


def _horner(coefficients, fused=False):
    """c0 + s * (c1 + s * (...)) with float literals; fused: each step one fmaf, as LLVM
    contracts Python's polynomial."""
    text = c_float(coefficients[-1])
    for coefficient in coefficients[-2::-1]:
        text = (f"fmaf(s, {text}, {c_float(coefficient)})" if fused
                else f"{c_float(coefficient)} + s * ({text})")
    return text


def bank_specs(models=None, model=None):
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


def _unit_struct(kind, inputs, hidden):
    gates = len(gate_names(kind))
    names = ", ".join(gate_names(kind))
    lines = ["typedef struct klon_unit {",
             f"    float k[{gates}][KLON_INPUTS];   /* input weights, gates {names} */",
             f"    float b[{gates}];                /* biases */"]
    if kind == "gru":
        lines.append("    float rc;                  /* the candidate's recurrent bias, halved */")
    lines += [f"    float u[{gates}][KLON_HIDDEN];   /* weights from each unit of the previous "
              "state */", "} klon_unit;", "",
              "typedef struct klon_model {",
              "    klon_unit unit[KLON_HIDDEN];",
              "    float dense[KLON_HIDDEN];",
              "    float dense_bias;",
              "} klon_model;"]
    return "\n".join(lines)


def _model_initialiser(spec, position):
    """One klon_model's initialiser from the packed row the Python kernels run."""
    H, k = spec.hidden_size, spec.inputs
    offsets, _ = layout(spec.kind, H, k)
    row = pack(spec)
    gates = gate_names(spec.kind)

    def values(items):
        return "{" + ", ".join(c_float(v) for v in items) + "}"

    units = []
    for j in range(H):
        kernel = ", ".join(values(row[offsets[f"K{g}"] + i * H + j] for i in range(k))
                           for g in gates)
        bias = values(row[offsets[f"B{g}"] + j] for g in gates)
        recurrent = ", ".join(values(row[offsets[f"U{g}"] + m * H + j] for m in range(H))
                              for g in gates)
        rc = f" {c_float(row[offsets['RC'] + j])}," if spec.kind == "gru" else ""
        units.append(f"        {{{{{kernel}}}, {bias},{rc}\n         {{{recurrent}}}}}")
    dense = values(row[offsets["W"]:offsets["W"] + H])
    gain = "any Gain" if position is None else f"Gain {position:g}"
    return (f"    {{ /* {spec.name}: {gain} */\n      {{\n" + ",\n".join(units) + "\n      },\n"
            f"      {dense},\n      {c_float(row[offsets['BD']])}}}")


def _rest_initialiser(spec):
    H = spec.hidden_size
    offsets, _ = layout(spec.kind, H, spec.inputs)
    row = rest_state(spec)
    state = list(row[offsets["HS"]:offsets["HS"] + H])
    if spec.kind == "lstm":
        state += list(row[offsets["CS"]:offsets["CS"] + H])
    return "    {" + ", ".join(c_float(v) for v in state) + "}"


def _pairs(terms):
    """Python's balanced sum (kernels._tree) as LLVM contracts it: the first product of each pair
    fused into a multiply-add with the second, fmaf(a, b, c * d), then plain additions; a product
    left without a partner (odd counts) fused into the addition that takes it in.
    Returns (text, product): product is (a, b) when the whole sum is that one bare product."""
    level = [(f"fmaf({a}, {b}, {c} * {d})", None) for (a, b), (c, d) in zip(terms[::2], terms[1::2])]
    if len(terms) % 2:
        a, b = terms[-1]
        level.append((f"{a} * {b}", (a, b)))
    while len(level) > 1:
        level = [(_plus(level[i][0], level[i + 1]), None) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def _plus(left, right):
    """left + right, right as _pairs gives it: a bare product is fused into the addition."""
    text, product = right
    return f"fmaf({product[0]}, {product[1]}, {left})" if product else f"({left} + {text})"


def _chain(first, terms):
    """first + a0 b0 + a1 b1 + ...: one chain of multiply-adds."""
    return " + ".join([first] + [f"{a} * {b}" for a, b in terms])


def _blend(fused, other, exact):
    """a b + c d for fused = (a, b), other = (c, d); exact: the first product fused, as the
    Python kernel's update compiles, fmaf(a, b, c * d)."""
    (a, b), (c, d) = fused, other
    return f"fmaf({a}, {b}, ({c}) * ({d}))" if exact else f"({c}) * ({d}) + ({a}) * ({b})"


def _step(kind, hidden, inputs):
    """The C of one time step (klon.neural.kernels._step_source, unit by unit), twice: the
    Python kernel's order of operations (its balanced sums, with the multiply-adds LLVM fuses
    written as fmaf), and with -DKLON_FAST_ACTIVATIONS plain chains of multiply-adds (fewer
    instructions, the compiler fusing them where the target and flags allow)."""
    H = hidden
    us = ["u0", "u1"][:inputs]
    params = ", ".join(f"float {u}" for u in us)

    def recurrent(g):
        return [(f"h{m}", f"w->u[{g}][{m}]") for m in range(H)]

    def inputs_of(g, exact):
        if not exact:
            return _chain(f"w->b[{g}]", [(u, f"w->k[{g}][{i}]") for i, u in enumerate(us)])
        text = f"w->b[{g}]"
        for i, u in enumerate(us):
            text = f"fmaf({u}, w->k[{g}][{i}], {text})"
        return text

    def pre(g, exact):
        if exact:
            return _plus(inputs_of(g, True), _pairs(recurrent(g)))
        return _chain(inputs_of(g, False), recurrent(g))

    def either(exact, fast):
        return ["#ifdef KLON_FAST_ACTIVATIONS", *fast, "#else", *exact, "#endif"]

    gates = len(gate_names(kind))
    lines = [f"static float klon_step(const klon_model *m, float *state, {params})", "{",
             "    const float " + ", ".join(f"h{m} = state[{m}]" for m in range(H)) + ";",
             f"    float a[{gates * H}]; /* per gate and unit: pre-activations, then tanh */",
             "    const klon_unit *w = m->unit;", "    int j;",
             "    /* the sums of every gate of every unit, then the activations in one loop */",
             f"    for (j = 0; j < {H}; j++, w++) {{"]
    if kind == "gru":
        # gate 2 holds the candidate's g = rc + h Uc until r is known
        lines += either(
            [f"        a[j] = {pre(0, True)};", f"        a[{H} + j] = {pre(1, True)};",
             f"        a[{2 * H} + j] = {_plus('w->rc', _pairs(recurrent(2)))};"],
            [f"        a[j] = {pre(0, False)};", f"        a[{H} + j] = {pre(1, False)};",
             f"        a[{2 * H} + j] = {_chain('w->rc', recurrent(2))};"])
        lines += ["    }", f"    klon_tanh_block(a, {2 * H});",
                  f"    for (j = 0, w = m->unit; j < {H}; j++, w++) {{",
                  f"        const float g = a[{2 * H} + j];"]
        lines += either([f"        a[{2 * H} + j] = fmaf(g, a[{H} + j], {inputs_of(2, True)} + g);"],
                        [f"        a[{2 * H} + j] = {inputs_of(2, False)} + g + g * a[{H} + j];"])
        lines += ["    }", f"    klon_tanh_block(a + {2 * H}, {H});",
                  "    /* h' = z h + (1 - z) c with z = (1 + tanh) / 2 */",
                  f"    for (j = 0; j < {H}; j++) {{"]
        update = (("0.5f + 0.5f * a[j]", "state[j]"), (f"a[{2 * H} + j]", "0.5f - 0.5f * a[j]"))
        lines += either([f"        state[j] = {_blend(*update, True)};"],
                        [f"        state[j] = {_blend(*update, False)};"])
        lines.append("    }")
    else:  # LSTM: gates i | f | c | o
        lines += either([f"        a[{g * H} + j] = {pre(g, True)};" for g in range(4)],
                        [f"        a[{g * H} + j] = {pre(g, False)};" for g in range(4)])
        lines += ["    }", f"    klon_tanh_block(a, {4 * H});",
                  "    /* the new cell state; a[j] holds it for its tanh */",
                  f"    for (j = 0; j < {H}; j++) {{"]
        cell = ((f"0.5f + 0.5f * a[{H} + j]", f"state[{H} + j]"),
                ("0.5f + 0.5f * a[j]", f"a[{2 * H} + j]"))
        lines += either([f"        a[j] = {_blend(*cell, True)};"],
                        [f"        a[j] = {_blend(*cell, False)};"])
        lines += [f"        state[{H} + j] = a[j];", "    }", f"    klon_tanh_block(a, {H});",
                  f"    for (j = 0; j < {H}; j++)",
                  f"        state[j] = (0.5f + 0.5f * a[{3 * H} + j]) * a[j];"]
    dense = [(f"m->dense[{j}]", f"state[{j}]") for j in range(H)]
    lines += either([f"    return {_plus('m->dense_bias', _pairs(dense))};"],
                    [f"    return {_chain('m->dense_bias', dense)};"])
    lines.append("}")
    gain = "(float)(gain)" if inputs == 2 else ""
    step = f"klon_step((m), (state), (u0){', ' if gain else ''}{gain})"
    lines += ["", f"#define KLON_STEP(m, state, u0, gain) {step}"]
    return "\n".join(_wrap(line) for line in lines)


def _wrap(line, width=100):
    """Break a long generated line after '+' signs, continuing under its first operand."""
    if len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    parts, current = [], ""
    for piece in line.split(" + "):
        candidate = piece if not current else f"{current} + {piece}"
        if current and len(candidate) > width - (len(indent) if parts else 0):
            parts.append(current + " +")
            current = piece
        else:
            current = candidate
    parts.append(current)
    return ("\n" + indent).join(parts)


def _components():
    u1_low, u1_high = c.output_limits(c.U1_RAILS)
    u2_low, u2_high = c.output_limits(c.U2_RAILS)
    values = dict(R1=c.R1, R2=c.R2, C1=c.C1, R21=c.R21, R22=c.R22, R23=c.R23, R24=c.R24,
                  C14=c.C14, R25=c.R25, R28=c.R28, C15=c.C15, TREBLE_POT=c.TREBLE_POT,
                  LEVEL_POT=c.LEVEL_POT, POT_MINIMUM=c.POT_MINIMUM, U1_LOW=u1_low,
                  U1_HIGH=u1_high, U2_LOW=u2_low, U2_HIGH=u2_high)
    lines = ["/* klon.pedal.components: ohms, farads; op-amp swings as AC volts */"]
    return "\n".join(lines + [f"#define {name} {c_double(v)}" for name, v in values.items()])


def render_pedal(models=None, model=None):
    """{file name: text} of klon_pedal.h and klon_pedal.c for a model set (or one model)."""
    specs, positions, source = bank_specs(models, model)
    first = specs[0]
    kind, H, k = first.kind, first.hidden_size, first.inputs
    state_size = H * (2 if kind == "lstm" else 1)
    single = model is not None or len(specs) == 1
    models_doc = ", ".join(
        f"{s.name} ({'any Gain' if single else f'Gain {p:g}'})" for s, p in zip(specs, positions))
    model_code = "\n".join([
        _unit_struct(kind, k, H), "",
        "static const klon_model klon_models[KLON_MODELS] = {",
        ",\n".join(_model_initialiser(s, None if single else p) for s, p in zip(specs, positions)),
        "};", "",
        "/* where each model rests: after 2048 zeros from a zero state (the Python engine's) */",
        "static const float klon_rest[KLON_MODELS][KLON_STATE_SIZE] = {",
        ",\n".join(_rest_initialiser(s) for s in specs), "};", "",
        "/* the Gain setting of each model (ascending) */",
        "static const double klon_positions[KLON_MODELS] = {"
        + ", ".join(c_double(p) for p in positions) + "};", "",
        _step(kind, H, k)])
    fast_error = tanh_error(FAST_TANH)
    fields = dict(
        SOURCE=source, MODELS_DOC=models_doc, KIND_UPPER=kind.upper(), HIDDEN=H, INPUTS=k,
        MODELS=len(specs), STATE_SIZE=state_size, SAMPLE_RATE=c_double(first.sample_rate),
        FAST_ERROR=f"{fast_error:.1e}", MODEL_CODE=model_code, COMPONENTS=_components(),
        EXACT_P=_horner(EXACT_TANH["p"], True), EXACT_Q=_horner(EXACT_TANH["q"], True),
        FAST_P=_horner(FAST_TANH["p"]), FAST_Q=_horner(FAST_TANH["q"]),
        FAST_LIMIT=c_float(-FAST_TANH["limit"]), FAST_LIMIT_POS=c_float(FAST_TANH["limit"]),
        FAST_DOC=(f"tanh ~= x P(x^2) / Q(x^2), degree {len(FAST_TANH['p']) - 1} over "
                  f"{len(FAST_TANH['q']) - 1}, on |x| <= {FAST_TANH['limit']:g}: within "
                  f"{fast_error:.1e} of tanh"),
    )
    texts = {}
    for name in (HEADER, SOURCE):
        text = (TEMPLATES / f"{name}.in").read_text()
        for key, value in fields.items():
            text = text.replace(f"@{key}@", str(value))
        if "@" in text:
            raise KlonError(f"unfilled placeholder in {name}")
        texts[name] = text
    return texts


def render_library(models=None, model=None, circuit=False):
    """The files of `klon export c`: the neural pedal, and with circuit=True the circuit gain
    stage for -DKLON_ENGINE_CIRCUIT."""
    texts = render_pedal(models, model)
    if circuit:
        texts.update(zip(CIRCUIT_FILES, render_circuit_gain()))
    return texts


def export_c(out_dir, models=None, model=None, circuit=False, force=False):
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
    paths = []
    for name, text in texts.items():
        descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        try:
            with os.fdopen(descriptor, "w") as f:
                f.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, out / name)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        paths.append(out / name)
    return paths

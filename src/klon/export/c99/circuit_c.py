"""The circuit engine's gain stage as portable C99, generated from the Python model.

`write_circuit_gain(out_dir)` writes `klon_circuit_gain.h` / `klon_circuit_gain.c`: the C
templates in `c/` filled with what the Python model defines, so the C cannot drift from it:

- both wave digital filter trees' state-space derivation, from the very trees
  `klon.pedal.GainStage` builds: `klon.wdf.tree.derive_state_space`'s probing, run on symbols
  by `wdf_c` into straight-line C with the sample period and the gain pots as variables. The C
  runs it in double at init (for the rate it is given) and at every step of a Gain glide (a
  step per 16 samples, as in Python), so any rate and any Gain position give Python's maps;
- the amp-stage and summing-amp components, the op-amp swings, the diode card;
- the half-band oversampling taps of `klon.dsp.oversampling` (they do not depend on the rate);
- the diode-pair solver, in one of the variants of DIODE_SOLVERS.

Precision is chosen per quantity (PRECISIONS): the state-space maps and states, the diode
solve, the op-amp stages and the oversampling filters can each be float or double.
"""
import os
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.core.processor import GLIDE_SECONDS, check_sample_rate
from klon.dsp.integration import WIDEBAND_HISTORY, WIDEBAND_RATIOS, WIDEBAND_WEIGHTS
from klon.dsp.oversampling import Oversampler, stage_taps
from klon.export.c99.literals import c_literal, c_table, fill_template
from klon.export.c99.wdf_c import derive_c
from klon.pedal import components as c
from klon.pedal.gain_stage import RAMP_STEP, build_clipper_tree, build_preamp_tree
from klon.wdf.omega import (
    MAX_NEWTON_STEPS,
    OMEGA_END,
    OMEGA_FIRST_COARSE,
    OMEGA_FIRST_COARSEST,
    OMEGA_PIECES,
    OMEGA_SEGMENTS,
)
from klon.wdf.tree import ADAA_THRESHOLD

TEMPLATES = Path(__file__).with_name("templates")
HEADER, SOURCE = "klon_circuit_gain.h", "klon_circuit_gain.c"
QUANTITIES = ("wdf", "diode", "opamp", "fir")
PRECISIONS = {
    # everything as Python computes it: matches GainStage to the float32 output's rounding
    "double": dict(wdf="double", diode="double", opamp="double", fir="double"),
    # the default: float where float is within a few 1e-6 of the peak, double where it is not.
    # The op-amp stages hold capacitor histories (companion currents) whose small differences
    # float loses while U1B clamps (C7 then charges through R12, a 35 ms mode that sums the
    # rounding): 1.6e-5 of the peak in float, 4e-8 in double. (Rewritten with the capacitors'
    # voltages and currents as states, float reaches 3e-6 at 44.1 kHz but 2.5e-5 at 192 kHz,
    # where C7 is nearly a short and the leg current a 100-fold cancellation; not kept.)
    "mixed": dict(wdf="float", diode="float", opamp="double", fir="float"),
    "float": dict(wdf="float", diode="float", opamp="float", fir="float"),
}
DEFAULT_PRECISION = "mixed"
# diode-pair solvers. "python": klon.wdf.omega's (omega from its table of cubic pieces, the
# pair's closed-form step, Newton on the pair's equation until a step is below 1e-6 nVt) with
# libm's exp. "fast" (float only, the default there): the same start and one Newton step,
# always, with exp (and, for waves past 100 V, log) as polynomials written here. From that
# start one step leaves under 4e-14 V (in double; both diodes, 0..30 V waves, 22.05..192 kHz,
# Gain 0..1), far below float's own resolution.
DIODE_SOLVERS = ("python", "fast")
FAST_NEWTON_STEPS = 1
EXP_DEGREE, LOG_DEGREE = 5, 5


def _derive(tree, variables):
    """The body of a derive_* function: the tree's maps into m, its port resistance returned."""
    lines, port = derive_c(tree, variables)
    used = [f"(void){name};" for name in ("period", *sorted(set(variables.values())))]
    return "\n".join("    " + line for line in [*used, *lines, f"return {port};"])


def _precision(precision):
    if isinstance(precision, str):
        try:
            precision = PRECISIONS[precision]
        except KeyError:
            raise KlonError(f"unknown precision {precision!r}: choose one of "
                            f"{', '.join(PRECISIONS)} or give a dict over {QUANTITIES}") from None
    types = dict(precision)
    if set(types) != set(QUANTITIES) or not set(types.values()) <= {"float", "double"}:
        raise KlonError(f"precision must give 'float' or 'double' for each of {QUANTITIES}")
    return types


def _polynomial(coefficients, variable, ctype):
    """Horner form of sum c_i x^i as C text."""
    text = c_literal(coefficients[-1], ctype)
    for c_i in coefficients[-2::-1]:
        text = f"{c_literal(c_i, ctype)} + {variable} * ({text})"
    return text


def fast_exp_log_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """Polynomials for exp(r), |r| <= ln2 / 2, and log(1 + t), 1/sqrt2 <= 1 + t <= sqrt2:
    Chebyshev fits (log's through log1p(t) / t, so it is exact at 0). Max errors: exp 1e-7
    relative, log 4e-7 absolute (in float arithmetic about twice that). The coefficients come
    rounded to float, as the C uses them: the fits' last double digits depend on the machine's
    linear algebra (AVX-512 or not), and the exported text must not."""
    half = np.log(2.0) / 2.0
    nodes = np.cos(np.linspace(0.0, np.pi, 2000))
    r = nodes * half
    chebyshev = np.polynomial.chebyshev
    exp = chebyshev.cheb2poly(chebyshev.chebfit(r, np.exp(r), EXP_DEGREE))
    low, high = 2.0 ** -0.5 - 1.0, 2.0 ** 0.5 - 1.0
    t = (nodes + 1.0) / 2.0 * (high - low) + low
    fit = chebyshev.chebfit(t, np.log1p(t) / t, LOG_DEGREE - 1)
    log = np.concatenate([[0.0], chebyshev.cheb2poly(fit)])
    return exp.astype(np.float32).astype(np.float64), log.astype(np.float32).astype(np.float64)


def _fast_exp_log():
    exp, log = fast_exp_log_coefficients()
    ln2 = np.log(2.0)
    ln2_high = float(np.float32(0.693145751953125))  # 12 bits: k * ln2_high is exact
    return f"""
#include <stdint.h>

typedef union bits {{
    float f;
    uint32_t u;
}} bits;

/* e^x for |x| <= 80: x = k ln2 + r (Cody-Waite), e^r by a polynomial, 2^k in the exponent */
static float exp_fast(float x)
{{
    bits scale;
    float k, r;
    x = x < -80.0f ? -80.0f : x;
    x = x > 80.0f ? 80.0f : x;
    k = (x * {c_literal(1.0 / ln2, 'float')} + 12582912.0f) - 12582912.0f;   /* round(x / ln2) */
    r = x - k * {c_literal(ln2_high, 'float')} - k * {c_literal(ln2 - ln2_high, 'float')};
    scale.u = (uint32_t)((int32_t)k + 127) << 23;
    return ({_polynomial(exp, 'r', 'float')}) * scale.f;
}}

/* ln x for normal x > 0: x = 2^e m with m in [1/sqrt2, sqrt2), ln m by a polynomial */
static float log_fast(float x)
{{
    bits m;
    float e, t;
    m.f = x;
    e = (float)((int32_t)(m.u >> 23) - 127);
    m.u = (m.u & 0x007fffffu) | 0x3f800000u;
    if (m.f > {c_literal(2.0 ** 0.5, 'float')}) {{
        m.f *= 0.5f;
        e += 1.0f;
    }}
    t = m.f - 1.0f;
    return e * {c_literal(ln2, 'float')} + t * ({_polynomial(log[1:], 't', 'float')});
}}

"""


def _diode_solver(solver, diode, ctype):
    """C source of `diode_pair(a, st)`: the voltage across the pair for incident wave a."""
    if solver not in DIODE_SOLVERS:
        raise KlonError(f"unknown diode solver {solver!r}: choose one of "
                        f"{', '.join(DIODE_SOLVERS)}")
    if solver == "fast" and ctype != "float":
        raise KlonError("the fast diode solver is float only: give the diode float precision")
    nvt = diode.ideality * c.THERMAL_VOLTAGE

    def lit(x):
        return c_literal(x, ctype)

    if solver == "fast":
        exp, log, fabs = "exp_fast", "log_fast", "fabsf"
        prelude = _fast_exp_log()
        # e (f, f') over one division: e^2 stays finite for v below 40 nVt, far past any root
        newton = f"""    for (n = 0; n < {FAST_NEWTON_STEPS}; n++) {{
        e = {exp}(v * INV_NVT);
        step = ((magnitude - v) * st->d_g * e - IS * (e * e - {lit(1.0)}))
               / (st->d_g * e + IS * INV_NVT * (e * e + {lit(1.0)}));
        v += step;
    }}"""
        steps_doc = f"then {FAST_NEWTON_STEPS} Newton step on the pair's equation"
        locals_ = "e, step"
    else:
        suffix = "f" if ctype == "float" else ""
        exp, log, fabs = "exp" + suffix, "log" + suffix, "fabs" + suffix
        prelude = ""
        newton = f"""    for (n = 0; n < {MAX_NEWTON_STEPS}; n++) {{
        e = {exp}(v * INV_NVT);
        ie = {lit(1.0)} / e;
        f = (magnitude - v) * st->d_g - IS * (e - ie);
        step = f / (st->d_g + IS * INV_NVT * (e + ie));
        v += step;
        if ({fabs}(step) < {lit(1e-6 * nvt)}) break;
    }}"""
        steps_doc = ("then Newton on the pair's equation until a step falls below 1e-6 nVt "
                     f"({MAX_NEWTON_STEPS} at most)")
        locals_ = "e, ie, f, step"
    (low, fine, _), (middle, coarse, _), (high, coarsest, _) = OMEGA_SEGMENTS
    return f"""{prelude}
#define NVT {lit(nvt)}
#define INV_NVT {lit(1.0 / nvt)}
#define IS {lit(diode.saturation_current)}

/* klon.wdf.omega.omega_start: omega(x) (w + ln w = x) to within 8e-7 from cubic pieces */
{c_table("OMEGA_PIECES", OMEGA_PIECES.ravel(), ctype)}

static klon_cg_diode omega_start(klon_cg_diode x)
{{
    const {ctype} *c;
    klon_cg_diode t, w;
    int j, first;
    if (x < {lit(middle)}) {{
        t = (x - {lit(low)}) * {lit(1.0 / fine)};
        if (t < {lit(0.0)}) {{
            w = {exp}(x);
            return w * ({lit(1.0)} - w);
        }}
        first = 0;
    }} else if (x < {lit(high)}) {{
        t = (x - {lit(middle)}) * {lit(1.0 / coarse)};
        first = {OMEGA_FIRST_COARSE};
    }} else if (x < {lit(OMEGA_END)}) {{
        t = (x - {lit(high)}) * {lit(1.0 / coarsest)};
        first = {OMEGA_FIRST_COARSEST};
    }} else {{
        return x - {log}(x);
    }}
    j = (int)t;
    t -= (klon_cg_diode)j;
    c = OMEGA_PIECES + 4 * (first + j);
    return c[0] + t * (c[1] + t * (c[2] + t * c[3]));
}}

/* klon.wdf.omega._newton_pair: the one-diode omega form for the diode that conducts at this
   sign of a (k = R Is / nVt: x1 = A + k - w, exp(x1) = w / k), the pair's Newton step from it
   in closed form, {steps_doc}. */
static klon_cg_diode diode_pair(klon_cg_diode a, const klon_circuit_gain *st)
{{
    klon_cg_diode magnitude = {fabs}(a), v, w, k = st->d_r_is * INV_NVT, {locals_};
    int n;
    w = omega_start(st->d_offset + magnitude * INV_NVT);
    v = (magnitude * INV_NVT + k - w - (k * w - k * k) / (w + w * w + k * k)) * NVT;
{newton}
    v = v < {lit(0.0)} ? {lit(0.0)} : v;
    v = v > magnitude ? magnitude : v;
    return a < {lit(0.0)} ? -v : v;
}}
"""


def _dot(pairs, fma, pad="    "):
    """Statements that leave sum(coefficient * value) in `a` (+ `b`): the products written out
    as fused multiply-adds (C99 fma/fmaf: one instruction on an FPU that has them, and ISO C
    modes let no compiler fuse `a * b + c` by itself); a long sum runs as two chains, a and
    b, that the FPU can overlap. Returns (lines, the C expression of the sum)."""
    chains = [pairs] if len(pairs) < 8 else [pairs[:(len(pairs) + 1) // 2],
                                              pairs[(len(pairs) + 1) // 2:]]
    names = ["a", "b"][:len(chains)]
    lines = []
    for step in range(max(len(chain) for chain in chains)):
        line = []
        for name, chain in zip(names, chains, strict=True):
            if step < len(chain):
                coefficient, value = chain[step]
                line.append(f"{name} = {coefficient} * {value};" if step == 0
                            else f"{name} = {fma}({coefficient}, {value}, {name});")
        lines.append(pad + "  ".join(line))
    return lines, " + ".join(names) if len(names) == 1 else "(a + b)"


def _row(matrix, row, columns):
    return [(f"st->{matrix}[{row}][{j}]", name) for j, name in enumerate(columns)]


def _kernel(n_pre, n_clip, n_fir1, n_fir2, types):
    """The per-sample matrix-vector products and FIR branches, written out."""
    pad = "    "
    fma = "fmaf" if types["wdf"] == "float" else "fma"
    pre_columns = [f"p{i}" for i in range(n_pre)] + ["vi"]
    clip_columns = [f"c{i}" for i in range(n_clip)] + ["amp", "vi", "down"]
    pre_load = ", ".join(f"p{i} = st->pre_x[{i}]" for i in range(n_pre))
    clip_load = ", ".join(f"c{i} = st->clip_x[{i}]" for i in range(n_clip))

    def assign(target, pairs, comment=""):
        lines, total = _dot(pairs, fma)
        return lines + [f"{pad}{target.format(total)};{comment}"]

    pre = []
    for i in range(n_pre):
        pre += assign(f"st->pre_x[{i}] = p{i} + {{}}", _row("pre", i, pre_columns))
    pre += assign("v_plus = (klon_cg_opamp){}", _row("pre", n_pre, pre_columns))
    pre += assign("i_sum = (klon_cg_opamp){}", _row("pre", n_pre + 1, pre_columns), "  /* FF1 */")
    up = assign("up = {}", _row("clip", 0, clip_columns[:-1]))
    clip = []
    for i in range(n_clip):
        clip += assign(f"st->clip_x[{i}] = c{i} + {{}}", _row("clip", 1 + i, clip_columns))
    clip += assign("i_sum += (klon_cg_opamp){}", _row("clip", 1 + n_clip, clip_columns),
                   "  /* R16, R17, R18 */")

    def fir(name, half):
        pairs = [(f"{name}[{i}]", f"(w[{i}] + w[{2 * half - 1 - i}])") for i in range(half)]
        lines, total = _dot(pairs, "fmaf" if types["fir"] == "float" else "fma")
        return "\n".join([f"{pad}klon_cg_fir a{', b' if half >= 8 else ''};",
                          f"{pad}w += offset;", *lines, f"{pad}return {total};"])

    return dict(PRE_LOAD=f"{pad}const klon_cg_wdf {pre_load};",
                CLIP_LOAD=f"{pad}const klon_cg_wdf {clip_load};", PRE_STEP="\n".join(pre),
                CLIP_UP="\n".join(up), CLIP_STEP="\n".join(clip), FIR1_SUM=fir("fir1", n_fir1),
                FIR2_SUM=fir("fir2", n_fir2))


def _tables(diode, types):
    pre, gang_a_top = build_preamp_tree(88_200.0)
    clip, gang_b_top, gang_b_bottom = build_clipper_tree(88_200.0, diode)
    if pre.source_names != ["vi"] or clip.source_names != ["amp", "vi"]:
        raise KlonError("the trees' sources changed; the C kernel expects vi and (amp, vi)")
    if len(pre.output_nodes) != 2 or len(clip.output_nodes) != 3:
        raise KlonError("the trees' outputs changed; the C kernel expects 2 and 3")
    g1, g2 = stage_taps(4)
    amp_low, amp_high = c.output_limits(c.U1_RAILS)
    sum_low, sum_high = c.output_limits(c.U2_RAILS)
    constants = dict(
        GAIN_POT=c.GAIN_POT, POT_MINIMUM=c.POT_MINIMUM, R10=c.R10, R11=c.R11, R12=c.R12,
        R20=c.R20, C7=c.C7, C8=c.C8, C13=c.C13, AMP_LOW=amp_low, AMP_HIGH=amp_high,
        SUM_LOW=sum_low, SUM_HIGH=sum_high, DIODE_IS=diode.saturation_current,
        DIODE_NVT=diode.ideality * c.THERMAL_VOLTAGE, SMOOTHING_SECONDS=GLIDE_SECONDS,
        ADAA_THRESHOLD=ADAA_THRESHOLD,
    )
    lines = [f"#define {name} {c_literal(value)}" for name, value in constants.items()]
    sizes = dict(PRE_STATES=pre.n_states, PRE_INPUTS=len(pre.source_names),
                 PRE_OUTPUTS=len(pre.output_nodes), CLIP_STATES=clip.n_states,
                 CLIP_INPUTS=len(clip.source_names), CLIP_OUTPUTS=len(clip.output_nodes),
                 WIDEBAND_HISTORY=WIDEBAND_HISTORY)
    lines += [f"#define {name} {value}" for name, value in sizes.items()]
    lines.append(f"#define RAMP_STEP {RAMP_STEP}")
    lines.append(f"#define WIDEBAND_W0 {c_literal(WIDEBAND_WEIGHTS[0])}")
    lines.append(c_table("wideband_ratio", WIDEBAND_RATIOS, types["opamp"]))
    lines.append(c_table("fir1", g1[:g1.size // 2], types["fir"]))
    lines.append(c_table("fir2", g2[:g2.size // 2], types["fir"]))
    sizes.update(FIR1_HALF=g1.size // 2, FIR2_HALF=g2.size // 2)
    derive = dict(
        PRE_DERIVE=_derive(pre, {pre.index_of(gang_a_top): "top"}),
        CLIP_DERIVE=_derive(clip, {clip.index_of(gang_b_top): "top",
                                   clip.index_of(gang_b_bottom): "bottom"}))
    return "\n".join(lines), sizes, derive


def render_circuit_gain(sample_rate: float = 44_100, diode: str = "1n34a",
                        precision: str | dict = DEFAULT_PRECISION,
                        diode_solver: str | None = None) -> tuple[str, str]:
    """(header text, source text) for these settings; diode_solver None: "fast" for a float
    diode solve, "python" for a double one."""
    rate = check_sample_rate(sample_rate)
    model = c.diode(diode)
    types = _precision(precision)
    if diode_solver is None:
        diode_solver = "fast" if types["diode"] == "float" else "python"
    tables, sizes, derive = _tables(model, types)
    name = precision if isinstance(precision, str) else "custom precision"
    fields = dict(
        DIODE=model.name, PRECISION=f"{name}, diode solver {diode_solver}",
        SAMPLE_RATE=f"{rate:g}", LATENCY_2X=Oversampler(2).latency,
        LATENCY_4X=Oversampler(4).latency,
        WDF_T=types["wdf"], DIODE_T=types["diode"], OPAMP_T=types["opamp"], FIR_T=types["fir"],
        TABLES=tables, DIODE_SOLVER=_diode_solver(diode_solver, model, types["diode"]),
        **sizes, **derive, **_kernel(sizes["PRE_STATES"], sizes["CLIP_STATES"],
                                     sizes["FIR1_HALF"], sizes["FIR2_HALF"], types),
    )
    return tuple(fill_template(TEMPLATES / f"{name}.in", fields) for name in (HEADER, SOURCE))


def write_circuit_gain(out_dir: str | os.PathLike, sample_rate: float = 44_100,
                       diode: str = "1n34a", precision: str | dict = DEFAULT_PRECISION,
                       diode_solver: str | None = None) -> list[Path]:
    """Write klon_circuit_gain.h and .c into out_dir (made if missing); returns their paths.

    The code runs at any rate from 22.05 to 192 kHz (init derives the filters for the rate it
    is given); sample_rate is checked and recorded as KLON_CIRCUIT_GAIN_DEFAULT_RATE.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = render_circuit_gain(sample_rate, diode, precision, diode_solver)
    return [atomic_write(out / name, text) for name, text in zip((HEADER, SOURCE), texts,
                                                                 strict=True)]

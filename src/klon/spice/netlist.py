"""SPICE netlists of the Klon Centaur, stage by stage and whole.

The values are written out here on purpose rather than imported from `klon.pedal`: this
package is the referee for the circuit model, so a typo on the model side must not leak in.
Everything is generated as plain ngspice text that a user can read, save and run by hand.
"""
from __future__ import annotations

from pathlib import Path

from klon.core.errors import KlonError
from klon.core.files import atomic_write
from klon.core.processor import check_knob

NETLIST_STAGES = ("input_buffer", "gain_stage", "tone", "output_stage", "pedal")

# Diode cards, as given in docs/klon-circuit.md and data/README.md. The junction capacitance
# is kept as a separate field so that it can be switched off (see `diode_card`).
DIODE_CARDS = {
    # the pedal's germanium diodes
    "1n34a": ("IS=2e-7 RS=7 N=1.3 VJ=0.1 M=0.27 BV=75 IBV=18u EG=0.67", "0.5p"),
    # the Schottky used by the reference LTspice simulation of the gain stage
    "mbrb2545ct": ("Is=19.4n Rs=0.01 N=0.733 Eg=0.718 Xti=0.535 Vj=0.4 M=0.41", "2.05n"),
}

# Op-amp flavours: open-loop gain and gain-bandwidth product of one single-pole model.
OPAMP_MODELS = {
    "ideal": {"aol": 1e6, "gbw": 1e9},
    "tl072": {"aol": 2e5, "gbw": 3e6},
}
OPAMP_SWING = 1.5  # volts a TL072's output stays inside each rail

# Supplies (volts): U1 runs on 0 / +9, U2 on the charge pump's -8.6 / +16.2; signals ride on 4.5.
BIAS, VCC, VPOS, VNEG = 4.5, 9.0, 16.2, -8.6
POT_MINIMUM = 1.0  # ohms: a pot end never reaches zero (as in the reference simulation)
GAIN_POT, TREBLE_POT, LEVEL_POT = 100e3, 10e3, 10e3

# One op-amp for all four: a single pole, a hard output clamp and no integrator wind-up.
#  - Gin drives aol / 1 Mohm into 1 Mohm || Cp, so x = ref + aol * vd at DC, with the pole at
#    gbw / aol. Cp returns to ground, not to ref: ref is a DC node, so the dynamics are the
#    same, but SPICE's charge tolerance then scales with the volts on x rather than with its
#    tiny swing about ref, where step control chased round-off and stalled at 1e-18 s steps.
#  - `ref` is where the output rests with no input difference. Tied to the 4.5 V reference, a
#    finite gain leaves no DC offset (otherwise 4.5 V / aol times the noise gain) on signals that
#    all sit at 4.5 V. A real part's offset is random; this one is zero.
#  - Bhold is a stiff conductance (1 kS, against 1 uS) that only conducts once x passes a swing
#    limit. It pins the pole node there, so the "integrator" never winds up: the amp leaves
#    saturation the instant ref + aol * vd comes back inside the range.
#  - Bout drives the output straight from x through an exact min/max clamp, so the output
#    never overshoots the limits by the millivolts Bhold lets x through. No series resistor: a
#    milliohm one makes its current an unknown that Newton must settle to 1e-12 A, i.e. to the
#    last bit of a 4.5 V node, and runs at rest stalled on it; an ideal output is also what the
#    model side assumes.
#  - No input currents: the inputs only sense voltages.
OPAMP_SUBCKT = """\
.subckt opamp inp inn vpos vneg ref out params: aol=1e6 gbw=1e9 swing=1.5
Gin ref x inp inn {aol/1e6}
Rp x ref 1meg
Cp x 0 {aol/(6.283185307179586e6*gbw)}
Bhold x 0 I = 1e3*(max(v(x)-v(vpos)+{swing}, 0) + min(v(x)-v(vneg)-{swing}, 0))
Bout out 0 V = min(max(v(x), v(vneg)+{swing}), v(vpos)-{swing})
.ends opamp
"""

# Where each stage's test source goes (positive node, negative node) and what is measured:
# the output node and the DC level subtracted from it.
_SOURCE = {
    "input_buffer": ("jack_in", "0"),
    "gain_stage": ("vi", "vb"),
    "tone": ("tin", "vb"),
    "output_stage": ("oin", "vb"),
    "pedal": ("jack_in", "0"),
}
_OUTPUT = {
    "input_buffer": ("vi", BIAS),
    "gain_stage": ("vout", BIAS),
    "tone": ("oin", BIAS),
    "output_stage": ("jack_out", 0.0),
    "pedal": ("jack_out", 0.0),
}
INPUT_SOURCE_NAME = "Vin"


def _ohms(value: float) -> str:
    return f"{value:.12g}"


def _pot(total: float, position: float) -> tuple[str, str]:
    """(total * position, total * (1 - position)) of a linear pot, neither end below 1 ohm."""
    return (_ohms(max(total * position, POT_MINIMUM)),
            _ohms(max(total * (1.0 - position), POT_MINIMUM)))


def check_stage(stage: str) -> str:
    if stage not in NETLIST_STAGES:
        raise KlonError(f"unknown stage {stage!r}: choose one of {', '.join(NETLIST_STAGES)}")
    return stage


def check_opamp(opamp: str) -> dict:
    key = str(opamp).lower()
    if key not in OPAMP_MODELS:
        raise KlonError(f"unknown op-amp model {opamp!r}: choose one of {', '.join(OPAMP_MODELS)}")
    return OPAMP_MODELS[key]


def diode_card(diode: str, capacitance: bool = True) -> str:
    """The `.model` body for a diode name; capacitance=False zeroes CJO (to measure its effect)."""
    key = str(diode).lower()
    if key not in DIODE_CARDS:
        raise KlonError(f"unknown diode {diode!r}: choose one of {', '.join(DIODE_CARDS)}")
    params, cjo = DIODE_CARDS[key]
    return f"D({params} CJO={cjo if capacitance else '0'})"


def _opamp(name: str, plus: str, minus: str, out: str, rails: tuple[str, str], model: dict) -> str:
    vpos, vneg = rails
    return (f"X{name} {plus} {minus} {vpos} {vneg} vb {out} opamp "
            f"aol={model['aol']:g} gbw={model['gbw']:g} swing={OPAMP_SWING:g}")


def _input_buffer(model: dict) -> list[str]:
    return [
        "* input buffer: R1, C1 coupling, R2 bias to 4.5 V, U1A unity follower (0 / +9 V)",
        "R1 jack_in n1 10k",
        "C1 n1 u1a_p 100n",
        "R2 u1a_p vb 1meg",
        _opamp("U1A", "u1a_p", "vi", "vi", ("vcc", "0"), model),
    ]


def _gain_stage(model: dict, gain: float) -> list[str]:
    top, bottom = _pot(GAIN_POT, gain)
    return [
        "* gain stage: pre-amp + FF1, amp stage (U1B, 0 / +9 V), clipper, FF2, summing amp (U2A)",
        "C3 vi n3 100n",
        "R7 n3 n20 1.5k",
        "C16 n20 0 1u",
        "R19 n20 sum 15k",
        "R6 n3 inp 10k",
        "C5 n3 inp 68n",
        f"RgainA_top inp vb {top}",
        f"RgainA_bot vb na2 {bottom}",
        "R10 na2 n7 2k",
        "R11 n7 inn 15k",
        "C7 n7 inn 82n",
        "R12 inn amp 422k",
        "C8 inn amp 390p",
        _opamp("U1B", "inp", "inn", "amp", ("vcc", "0"), model),
        "C9 amp n11 1u",
        "R13 n11 clip 1k",
        "D2 clip 0 dclip",
        "D3 0 clip dclip",
        "C10 clip n13 1u",
        "R16 n13 sum 47k",
        "R5 vi n2 5.1k",
        "C4 vi n2 68n",
        "R8 n2 vb 1.5k",
        "C6 n2 n6 390n",
        "R9 n6 vb 1k",
        f"RgainB_top n2 wb {top}",
        f"RgainB_bot wb vb {bottom}",
        "C11 n13 n15 2.2n",
        "R15 n15 wb 22k",
        "R17 wb sum 27k",
        "C12 sum n18 27n",
        "R18 n18 wb 12k",
        "R20 sum vout 392k",
        "C13 sum vout 820p",
        _opamp("U2A", "vb", "sum", "vout", ("vpos", "vneg"), model),
    ]


def _tone(model: dict, treble: float, tin: str = "tin") -> list[str]:
    # treble = 1 puts the wiper next to R21 (end A): most treble
    wiper_to_b, a_to_wiper = _pot(TREBLE_POT, treble)
    return [
        "* tone: U2B active treble control (-8.6 / +16.2 V)",
        f"R22 {tin} u2b_n 100k",
        "R24 oin u2b_n 100k",
        f"R21 {tin} pot_a 1.8k",
        f"RtrebleA pot_a wiper {a_to_wiper}",
        f"RtrebleB wiper pot_b {wiper_to_b}",
        "R23 pot_b oin 4.7k",
        "C14 wiper u2b_n 3.9n",
        _opamp("U2B", "vb", "u2b_n", "oin", ("vpos", "vneg"), model),
    ]


def _output_stage(level: float) -> list[str]:
    to_ground, to_top = _pot(LEVEL_POT, level)
    return [
        "* output stage: C15 coupling, R25, level pot (wiper = output jack), R28 to ground",
        "C15 oin n15o 4.7u",
        "R25 n15o lvl_top 560",
        f"RlevelTop lvl_top jack_out {to_top}",
        f"RlevelBot jack_out 0 {to_ground}",
        "R28 jack_out 0 100k",
    ]


def netlist(stage: str, *, gain: float = 0.5, treble: float = 0.5, level: float = 0.5,
            diode: str = "1n34a", opamp: str = "ideal", diode_capacitance: bool = True,
            source: str = "DC 0 AC 1") -> str:
    """The ngspice netlist of one stage (or the whole pedal) with its test source.

    The source `Vin` carries the AC input: for the stages fed from a 4.5 V-biased node it sits
    in series with the reference, so the node is 4.5 V + x(t). `source` is the value part of the
    `Vin` card (the default suits `.op` and `.ac`). The text has no analysis line and no `.end`,
    so it can be run by hand after adding e.g. `.ac dec 50 1 100k`.
    """
    plus, minus = source_nodes(stage)
    return build_netlist(stage, f"{INPUT_SOURCE_NAME} {plus} {minus} {source}", gain=gain,
                         treble=treble, level=level, diode=diode, opamp=opamp,
                         diode_capacitance=diode_capacitance)


def source_nodes(stage: str) -> tuple[str, str]:
    """(positive, negative) node of the stage's input source."""
    return _SOURCE[check_stage(stage)]


def build_netlist(stage: str, input_card: str, *, gain: float = 0.5, treble: float = 0.5,
                  level: float = 0.5, diode: str = "1n34a", opamp: str = "ideal",
                  diode_capacitance: bool = True) -> str:
    """`netlist` with the whole input element given as `input_card` (one or more lines)."""
    check_stage(stage)
    model = check_opamp(opamp)
    gain, treble, level = (check_knob("gain", gain), check_knob("treble", treble),
                           check_knob("level", level))
    card = diode_card(diode, diode_capacitance)

    blocks = {
        "input_buffer": _input_buffer(model),
        "gain_stage": _gain_stage(model, gain),
        # in the pedal the tone stage hangs straight off the summing amp's output
        "tone": _tone(model, treble, "vout" if stage == "pedal" else "tin"),
        "output_stage": _output_stage(level),
    }
    parts = blocks if stage == "pedal" else {stage: blocks[stage]}
    uses_diode = stage in ("gain_stage", "pedal")

    out_node, out_bias = _OUTPUT[stage]
    lines = [
        f"* Klon Centaur: {stage} (gain={gain:g} treble={treble:g} level={level:g} "
        f"diode={diode} opamp={opamp}{'' if diode_capacitance else ' CJO=0'})",
        f"* output: v({out_node}){f' - {out_bias:g} V' if out_bias else ''}",
        "* no analysis here: add one (e.g. `.ac dec 20 10 20k` or `.op`) to run it by hand;",
        "* klon.spice.simulate swaps Vin for the band-limited input and runs a transient",
        "",
        OPAMP_SUBCKT,
    ]
    if uses_diode:
        lines += [f".model dclip {card}", ""]
    lines += [
        "* supplies and the 4.5 V reference (ideal)",
        f"Vcc vcc 0 {VCC:g}",
        f"Vpos vpos 0 {VPOS:g}",
        f"Vneg vneg 0 {VNEG:g}",
        f"Vbias vb 0 {BIAS:g}",
        "",
        "* test source: the AC input x(t)",
        input_card,
        "",
    ]
    for block in parts.values():
        lines += block + [""]
    if stage == "gain_stage":
        # the load the reference LTspice bench put on the summing amp
        lines += ["Rload vout 0 1meg", ""]
    return "\n".join(lines) + "\n"


def output_node(stage: str) -> tuple[str, float]:
    """(node name, DC level to subtract) of a stage's output."""
    return _OUTPUT[check_stage(stage)]


def write_netlists(directory, **knobs) -> list[Path]:
    """Write every stage's netlist as `<stage>.cir` into `directory`; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [atomic_write(directory / f"{stage}.cir", netlist(stage, **knobs) + ".end\n")
            for stage in NETLIST_STAGES]

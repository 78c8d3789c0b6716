"""Component values of the Klon Centaur, by ElectroSmash designator (see docs/circuit.md)."""
from dataclasses import dataclass

from klon.core.errors import KlonError

# resistors (ohms)
R1, R2 = 10e3, 1e6
R5, R6, R7, R8, R9, R10, R11, R12, R13 = 5.1e3, 10e3, 1.5e3, 1.5e3, 1e3, 2e3, 15e3, 422e3, 1e3
R15, R16, R17, R18, R19, R20 = 22e3, 47e3, 27e3, 12e3, 15e3, 392e3
R21, R22, R23, R24, R25, R28 = 1.8e3, 100e3, 4.7e3, 100e3, 560.0, 100e3

# capacitors (farads)
C1, C3, C4, C5, C6 = 0.1e-6, 0.1e-6, 68e-9, 68e-9, 390e-9
C7, C8, C9, C10 = 82e-9, 390e-12, 1e-6, 1e-6
C11, C12, C13, C14, C15, C16 = 2.2e-9, 27e-9, 820e-12, 3.9e-9, 4.7e-6, 1e-6

# pots (ohms, linear): gain is a dual gang, treble and level single
GAIN_POT, TREBLE_POT, LEVEL_POT = 100e3, 10e3, 10e3
POT_MINIMUM = 1.0  # a pot end never reaches 0 ohm (as in the reference simulation)

# supplies (volts): U1 on 0 / +9, U2 on the charge pump's -8.6 / +16.2; signals ride on 4.5 V
BIAS = 4.5
U1_RAILS = (0.0, 9.0)
U2_RAILS = (-8.6, 16.2)
OPAMP_SWING_MARGIN = 1.5  # a TL072's output stays about 1.5 V inside its rails


def output_limits(rails):
    """The op-amp's output range as AC volts around the 4.5 V bias."""
    low, high = rails
    return low + OPAMP_SWING_MARGIN - BIAS, high - OPAMP_SWING_MARGIN - BIAS


def pot_halves(total, position):
    """(top, bottom) resistances of a linear pot at knob position in [0, 1]."""
    top, bottom = total * position, total * (1.0 - position)
    # not max(): in Python 3.11 it makes an iterator, and a gliding Gain knob calls this often
    return (top if top > POT_MINIMUM else POT_MINIMUM,
            bottom if bottom > POT_MINIMUM else POT_MINIMUM)


@dataclass(frozen=True)
class DiodeModel:
    """A SPICE diode card's DC part, plus its zero-bias junction capacitance."""

    name: str
    saturation_current: float  # IS, amperes
    ideality: float  # N
    series_resistance: float  # RS, ohms
    junction_capacitance: float  # CJO, farads
    spice_card: str


DIODES = {
    # the pedal's germanium diodes (klon-circuit.md)
    "1n34a": DiodeModel("1n34a", 2e-7, 1.3, 7.0, 0.5e-12,
                        "D(IS=2e-7 RS=7 N=1.3 CJO=0.5p VJ=0.1 M=0.27 BV=75 IBV=18u EG=0.67)"),
    # the Schottky the reference LTspice simulation used (data/README.md)
    "mbrb2545ct": DiodeModel("mbrb2545ct", 19.4e-9, 0.733, 0.01, 2.05e-9,
                             "D(Is=19.4n Rs=0.01 N=0.733 Eg=0.718 Xti=0.535 Cjo=2.05n Vj=0.4 "
                             "M=0.41)"),
}
THERMAL_VOLTAGE = 0.025865  # kT/q at 27 C, SPICE's nominal temperature


def diode(name: str) -> DiodeModel:
    """The diode model called `name` (case ignored), or a KlonError listing the choices."""
    try:
        return DIODES[name.lower()]
    except (KeyError, AttributeError):
        raise KlonError(f"unknown diode {name!r}: choose one of {', '.join(DIODES)}") from None

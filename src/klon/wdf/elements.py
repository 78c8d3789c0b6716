"""Wave digital filter elements: what a tree is described with.

A tree reads like the schematic: leaves are one-ports built from component values, adaptors join
them in series or in parallel, and one root (a source or a nonlinearity) closes the tree. Polarity
follows the circuit: a series adaptor's voltage is the sum of its children's voltages and a
parallel adaptor's current the sum of theirs, so an element's voltage and current read with the
sign the schematic gives them (+ on the side towards the root's + terminal), with no polarity
inverters in the tree.

These objects only describe; `WDF` (tree.py) flattens them into arrays that compiled kernels run.
"""
from dataclasses import dataclass

# kind codes shared with the kernels in tree.py
RESISTOR, CAPACITOR, INDUCTOR, VOLTAGE_SOURCE, SERIES, PARALLEL = range(6)
ROOT_IDEAL_VOLTAGE_SOURCE, ROOT_DIODE, ROOT_DIODE_PAIR, ROOT_OPEN, ROOT_SHORT = range(5)


class Node:
    """Anything that can hang below an adaptor."""

    kind = -1
    children = ()


@dataclass(eq=False)
class Resistor(Node):
    resistance: float
    kind = RESISTOR

    def __post_init__(self):
        if not self.resistance > 0.0:
            raise ValueError(f"resistance must be positive, got {self.resistance}")


@dataclass(eq=False)
class Capacitor(Node):
    capacitance: float
    kind = CAPACITOR

    def __post_init__(self):
        if not self.capacitance > 0.0:
            raise ValueError(f"capacitance must be positive, got {self.capacitance}")


@dataclass(eq=False)
class Inductor(Node):
    inductance: float
    kind = INDUCTOR

    def __post_init__(self):
        if not self.inductance > 0.0:
            raise ValueError(f"inductance must be positive, got {self.inductance}")


@dataclass(eq=False)
class VoltageSource(Node):
    """A voltage source with a series resistance (0 for an ideal source inside a series branch).

    `name` says which entry of the tree's input vector drives it. An ideal source (resistance 0)
    is fine inside a series adaptor; under a parallel adaptor it needs a resistance.
    """

    name: str
    resistance: float = 0.0
    kind = VOLTAGE_SOURCE

    def __post_init__(self):
        if self.resistance < 0.0:
            raise ValueError(f"source resistance must be >= 0, got {self.resistance}")


class Series(Node):
    kind = SERIES

    def __init__(self, *children):
        if len(children) < 2:
            raise ValueError("a series adaptor needs at least two children")
        self.children = tuple(children)


class Parallel(Node):
    kind = PARALLEL

    def __init__(self, *children):
        if len(children) < 2:
            raise ValueError("a parallel adaptor needs at least two children")
        self.children = tuple(children)


# Roots: they see the whole tree as one port and need not be adapted.

@dataclass(eq=False)
class IdealVoltageSourceRoot:
    name: str
    kind = ROOT_IDEAL_VOLTAGE_SOURCE


@dataclass(eq=False)
class DiodeRoot:
    """One diode, anode on the + side: Shockley law with saturation current Is and n * Vt.

    A series resistance belongs in the tree (a Resistor in series below the root).
    """

    saturation_current: float
    ideality: float = 1.0
    thermal_voltage: float = 0.025865  # kT/q at 27 C, SPICE's default temperature
    kind = ROOT_DIODE


@dataclass(eq=False)
class DiodePairRoot(DiodeRoot):
    """Two identical diodes in anti-parallel, solved exactly (omega guess + Newton)."""

    kind = ROOT_DIODE_PAIR


@dataclass(eq=False)
class OpenRoot:
    kind = ROOT_OPEN


@dataclass(eq=False)
class ShortRoot:
    kind = ROOT_SHORT

"""Generic wave digital filters: describe a tree like the schematic, run it in compiled kernels."""
from klon.wdf.elements import (
    Capacitor,
    DiodePairRoot,
    DiodeRoot,
    IdealVoltageSourceRoot,
    Inductor,
    OpenRoot,
    Parallel,
    Resistor,
    Series,
    ShortRoot,
    VoltageSource,
)
from klon.wdf.omega import (
    diode_pair_antiderivative,
    diode_pair_reflection,
    diode_pair_voltage,
    diode_voltage,
    omega_start,
    pair_offset,
    wright_omega,
)
from klon.wdf.tree import (
    ADAA_MEMORY,
    ADAA_THRESHOLD,
    antialiased_diode_pair,
    set_antialiasing_memory,
)
from klon.wdf.wdf import WDF, PotHandle

__all__ = [
    "ADAA_MEMORY", "ADAA_THRESHOLD", "WDF", "Capacitor", "DiodePairRoot", "DiodeRoot",
    "IdealVoltageSourceRoot", "Inductor", "OpenRoot", "Parallel", "PotHandle", "Resistor",
    "Series", "ShortRoot", "VoltageSource", "antialiased_diode_pair", "diode_pair_antiderivative",
    "diode_pair_reflection", "diode_pair_voltage", "diode_voltage", "omega_start", "pair_offset",
    "set_antialiasing_memory", "wright_omega",
]

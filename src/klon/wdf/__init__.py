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
from klon.wdf.omega import diode_pair_voltage, diode_voltage, wright_omega
from klon.wdf.wdf import WDF, PotHandle

__all__ = [
    "WDF", "Capacitor", "DiodePairRoot", "DiodeRoot", "IdealVoltageSourceRoot", "Inductor",
    "OpenRoot", "Parallel", "PotHandle", "Resistor", "Series", "ShortRoot", "VoltageSource",
    "diode_pair_voltage", "diode_voltage", "wright_omega",
]

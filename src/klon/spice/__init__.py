"""ngspice as the circuit's external referee: netlists of each stage and a batch runner.

    simulate(stage, x, sample_rate, ...)  -> the stage's AC output at the sample instants
    netlist(stage, ...)                   -> the netlist text, with a placeholder source
    write_netlists(directory)             -> one `<stage>.cir` per stage
    band_limited_input(x, sample_rate)    -> the PWL corners SPICE is driven with
"""
from klon.spice.netlist import NETLIST_STAGES, netlist, write_netlists
from klon.spice.runner import band_limited_input, simulate

__all__ = ["NETLIST_STAGES", "band_limited_input", "netlist", "simulate", "write_netlists"]

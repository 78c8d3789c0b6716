"""The pedal as portable C99: the neural pedal (`neural_c`), the circuit gain stage
(`circuit_c`, its WDFs from `wdf_c`), from the templates in templates/."""

"""C99 for microcontrollers: the toolchains the export is proven with (`toolchain`) and the
circuit engine's gain stage as generated C (`circuit_c.write_circuit_gain`)."""

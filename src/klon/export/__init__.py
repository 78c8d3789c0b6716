"""Export targets: `c99` (the pedal as portable C99: the neural pedal and the circuit gain
stage), `cortex_m7` (building it for an emulated Cortex-M7 and counting its instructions), and
`toolchain` (the host and ARM compilers and QEMU both use)."""

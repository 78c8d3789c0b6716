"""The C export on an emulated Cortex-M7 (QEMU's mps2-an500): board files in board/, builds,
runs and instruction counts (`measure`)."""

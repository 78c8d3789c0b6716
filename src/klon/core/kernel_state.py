"""Kernel state crosses into compiled code as plain tuples.

State is described by NamedTuples of arrays: names, not positions. numba matches a call's
argument types in C when they are arrays or plain tuples of arrays, but types a NamedTuple in
Python, which makes a block call about 2.5 times as dear and allocates. So Python hands a
kernel `plain(state)`, built once when the state is (re)allocated, and the kernel names it again
on entry (`s = GainStageState(*s)`, free in compiled code).
"""
def plain(state: tuple) -> tuple:
    """`state` (a NamedTuple, maybe of NamedTuples) as nested plain tuples of its arrays."""
    return tuple(plain(value) if isinstance(value, tuple) else value for value in state)


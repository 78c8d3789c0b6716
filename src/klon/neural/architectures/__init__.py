"""The recurrent architectures klon runs, by the layer type model files give them ("gru",
"lstm"). Each is one module that owns everything that differs between architectures:

- KIND, GATES (gate names in the file's column order), STATE_BLOCKS (the state vectors in an
  instance's row), C_UNIT_FIELDS (per-unit C fields beyond k, b and u);
- weight_shapes(hidden, inputs) and check_weights(arrays, hidden, inputs): what the file reader
  accepts;
- layout(hidden, inputs) and pack(spec): the float32 row the compiled kernels run;
- step_source(hidden, inputs): the numba step (klon.neural.kernels compiles it);
- c_step(hidden, inputs): the C step (klon.export.c99.neural_c);
- reference_state(batch, hidden) and reference_step(spec, u, state): the float64 maths;
- torch_layer, torch_state, torch_run, from_torch, to_torch: the training side (klon.train),
  importing torch only when called.

A new architecture is a new module beside these, added to _MODULES below; docs/model-format.md
says what each entry must do.
"""
from types import ModuleType

import numpy as np

from klon.core.errors import KlonError
from klon.neural.architectures import gru, lstm

PROVIDES = ("KIND", "GATES", "STATE_BLOCKS", "C_UNIT_FIELDS", "weight_shapes", "check_weights",
            "layout", "pack", "step_source", "c_step", "reference_state", "reference_step",
            "torch_layer", "torch_state", "torch_run", "from_torch", "to_torch")
_MODULES = (gru, lstm)


def _register(modules: tuple[ModuleType, ...]) -> dict[str, ModuleType]:
    for module in modules:
        missing = [name for name in PROVIDES if not hasattr(module, name)]
        if missing:  # a programming error in klon, not a user's
            raise TypeError(f"architecture {module.__name__} lacks {', '.join(missing)}")
    return {module.KIND: module for module in modules}


ARCHITECTURES: dict[str, ModuleType] = _register(_MODULES)


def kinds() -> tuple[str, ...]:
    """The layer types klon runs."""
    return tuple(ARCHITECTURES)


def architecture(kind: str) -> ModuleType:
    """The module of an architecture, or a KlonError naming the ones there are."""
    try:
        return ARCHITECTURES[kind]
    except (KeyError, TypeError):
        raise KlonError(f"unknown architecture '{kind}': klon runs "
                        f"{' or '.join(ARCHITECTURES)} layers") from None


def gate_names(kind: str) -> tuple[str, ...]:
    return architecture(kind).GATES


def layout(kind: str, hidden: int, inputs: int) -> tuple[dict[str, int], int]:
    """({block: offset}, length) of an instance's float32 row."""
    return architecture(kind).layout(hidden, inputs)


def pack(spec) -> np.ndarray:
    """A model's weights as one float32 row in the kernels' layout, state zero."""
    return architecture(spec.kind).pack(spec)

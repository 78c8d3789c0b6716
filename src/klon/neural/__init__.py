"""Running recurrent models without torch: model files, compiled GRU/LSTM kernels, the model
bank with its Gain crossfade, and the neural engine's gain stage. Nothing here imports the
circuit's gain stage or the wave digital filters. Names are handed on lazily, so reading the
architecture names (the CLI's --cell) compiles nothing."""
from klon.core.lazy import lazy_names

_WHERE = {"ModelBank": "bank", "neural_gain_stage": "gain_stage", "RecurrentModel": "model",
          "load_model": "model", "ModelSpec": "model_file", "read_model": "model_file",
          "write_model": "model_file", "reference_output": "reference"}
__all__ = sorted(_WHERE)
__getattr__ = lazy_names(__name__, _WHERE)

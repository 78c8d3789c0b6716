"""Running recurrent models without torch: compiled GRU/LSTM kernels, model files, the model bank
with its Gain crossfade, and the neural pedal."""
from .model import RecurrentModel, load_model
from .model_file import ModelSpec, read_model
from .reference import reference_output

__all__ = ["ModelSpec", "RecurrentModel", "load_model", "read_model", "reference_output"]

"""Running recurrent models without torch: compiled GRU/LSTM kernels, model files, the model bank
with its Gain crossfade, and the neural pedal."""
from .bank import ModelBank
from .model import RecurrentModel, load_model
from .model_file import ModelSpec, read_model
from .pedal import NeuralCentaur, neural_gain_stage
from .reference import reference_output

__all__ = ["ModelBank", "ModelSpec", "NeuralCentaur", "RecurrentModel", "load_model",
           "neural_gain_stage", "read_model", "reference_output"]

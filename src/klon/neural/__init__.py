"""Running recurrent models without torch: compiled GRU/LSTM kernels, model files, the model bank
with its Gain crossfade, and the neural pedal."""
from klon.neural.bank import ModelBank
from klon.neural.model import RecurrentModel, load_model
from klon.neural.model_file import ModelSpec, read_model
from klon.neural.gain_stage import NeuralCentaur, neural_gain_stage
from klon.neural.reference import reference_output

__all__ = ["ModelBank", "ModelSpec", "NeuralCentaur", "RecurrentModel", "load_model",
           "neural_gain_stage", "read_model", "reference_output"]

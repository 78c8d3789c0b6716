"""Running recurrent models without torch: model files, compiled GRU/LSTM kernels, the model
bank with its Gain crossfade, and the neural engine's gain stage. Nothing here imports the
circuit's gain stage or the wave digital filters."""
from klon.neural.bank import ModelBank
from klon.neural.gain_stage import neural_gain_stage
from klon.neural.model import RecurrentModel, load_model
from klon.neural.model_file import ModelSpec, read_model
from klon.neural.reference import reference_output

__all__ = ["ModelBank", "ModelSpec", "RecurrentModel", "load_model", "neural_gain_stage",
           "read_model", "reference_output"]

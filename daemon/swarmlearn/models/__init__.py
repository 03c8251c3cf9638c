"""Torch forecasters (LSTM, TCN, N-BEATS, their ensemble): one interface, ``[B, L, F] -> [B, H, T]``; checkpoints."""

from swarmlearn.models._base import Forecaster, ForecastShape, SearchRange, searched
from swarmlearn.models._checkpoint import Checkpoint, load_checkpoint, save_checkpoint, write_checkpoint_bytes
from swarmlearn.models._ensemble import EnsembleConfig, EnsembleModel
from swarmlearn.models._kinds import MODEL_KINDS, ModelConfig, build_model, config_from_dict, config_to_dict
from swarmlearn.models._lstm import LSTMConfig, LSTMModel
from swarmlearn.models._nbeats import NBEATSConfig, NBEATSModel, StackType
from swarmlearn.models._tcn import TCNConfig, TCNModel

__all__ = [
    "MODEL_KINDS",
    "Checkpoint",
    "EnsembleConfig",
    "EnsembleModel",
    "ForecastShape",
    "Forecaster",
    "LSTMConfig",
    "LSTMModel",
    "ModelConfig",
    "NBEATSConfig",
    "NBEATSModel",
    "SearchRange",
    "StackType",
    "TCNConfig",
    "TCNModel",
    "build_model",
    "config_from_dict",
    "config_to_dict",
    "load_checkpoint",
    "save_checkpoint",
    "searched",
    "write_checkpoint_bytes",
]

"""Training: windows from event streams, one loop for every model, per-target evaluation, the pipeline."""

from swarmlearn.training._config import JOB_SETTINGS, Loss, Scaling, TrainingConfig
from swarmlearn.training._data import NotEnoughData, ScaledBatch, Split, StreamDataLoader
from swarmlearn.training._loop import Progress, TrainingCancelled, TrainResult, fit, forecast, resolve_device, seeded
from swarmlearn.training._metrics import (
    QUANTILE_LEVELS,
    Comparison,
    Evaluation,
    TargetMetrics,
    compare,
    diebold_mariano,
    evaluate,
    interval_coverage,
    interval_offsets,
    interval_quantiles,
)
from swarmlearn.training._pipeline import ModelReport, PipelineResult, TrainingPipeline
from swarmlearn.training._replay import Replay, ReplayLimits, ReplaySource, read_replay
from swarmlearn.training._scaling import GlobalScaler, Scaler, WindowScaler, scaler_from_state
from swarmlearn.training._trained import TrainedModel

__all__ = [
    "JOB_SETTINGS",
    "QUANTILE_LEVELS",
    "Comparison",
    "Evaluation",
    "GlobalScaler",
    "Loss",
    "ModelReport",
    "NotEnoughData",
    "PipelineResult",
    "Progress",
    "Replay",
    "ReplayLimits",
    "ReplaySource",
    "ScaledBatch",
    "Scaler",
    "Scaling",
    "Split",
    "StreamDataLoader",
    "TargetMetrics",
    "TrainResult",
    "TrainedModel",
    "TrainingCancelled",
    "TrainingConfig",
    "TrainingPipeline",
    "WindowScaler",
    "compare",
    "diebold_mariano",
    "evaluate",
    "fit",
    "forecast",
    "interval_coverage",
    "interval_offsets",
    "interval_quantiles",
    "read_replay",
    "resolve_device",
    "scaler_from_state",
    "seeded",
]

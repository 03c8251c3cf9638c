"""The domain's names and limits, one home each: what a client may ask for and what the daemon forecasts.

Torch-free and importing nothing of swarmlearn, so every layer may read it: the daemon validates
requests against these names without importing the torch side, and the torch side asserts that what
it builds matches them (``models.MODEL_KINDS``, ``tuning.OBJECTIVES``; tested).
"""

from __future__ import annotations

TARGETS: tuple[str, ...] = ("latency_ms", "tokens_per_second", "success_rate")
"""What Predict and the forecasters forecast, in this order; each is also a feature (``features.FEATURE_NAMES``)."""

MODEL_KINDS: tuple[str, ...] = ("lstm", "tcn", "nbeats", "ensemble")
"""The forecasters a training or tuning job may train (``models.MODEL_KINDS`` maps each to its classes)."""

TUNING_METHODS: tuple[str, ...] = ("bayesian", "random", "grid", "hyperband")
"""How a tuning job searches (``tuning.Method``)."""

OBJECTIVES: tuple[str, ...] = ("val_mase", "val_mse")
"""What a tuning job minimises, on the validation split."""

MAX_HORIZON = 48
"""The most steps Predict answers and a forecaster is trained for."""

MAX_TRIALS = 1_000
"""The most trials a tuning job runs."""

MAX_EPOCHS = 10_000
"""The most epochs a training job may ask for."""

# Defaults that more than one module starts from (``Settings`` and the objects built from it).

TUNING_MAX_EPOCHS = 27
"""Each tuning trial's budget of epochs (hyperband's R)."""

TUNING_GRID_POINTS = 3
"""Values a grid search takes from each continuous range."""

TUNING_MAX_GRID = 256
"""The largest grid a tuning job accepts when its request leaves ``max_trials`` at 0."""

REPLAY_RECENT_EVENTS = 100_000
"""A job reads at most this many of its scope's latest events ..."""

REPLAY_OLDER_EVENTS = 25_000
"""... and about this many older ones, sampled ..."""

REPLAY_RUN_EVENTS = 1_000
"""... in runs of this many consecutive log positions."""

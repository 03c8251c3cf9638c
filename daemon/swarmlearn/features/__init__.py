"""Per-event features: pure functions of one event, the same at ingest, training and prediction."""

from swarmlearn.features._event import FEATURE_NAMES, event_features, fill_forward, observed_features

__all__ = ["FEATURE_NAMES", "event_features", "fill_forward", "observed_features"]

"""Agent performance events: the domain type, its limits and its validation."""

from swarmlearn.events._model import FAILURE_BELOW, IS_OUTCOME, NO_ATTRIBUTES, Event, EventType
from swarmlearn.events._validate import LIMITS, METRICS, Limits, Rejection, validate_event

__all__ = [
    "FAILURE_BELOW",
    "IS_OUTCOME",
    "LIMITS",
    "METRICS",
    "NO_ATTRIBUTES",
    "Event",
    "EventType",
    "Limits",
    "Rejection",
    "validate_event",
]

"""Agent performance events: the domain type, its limits and its validation."""

from swarmlearn.events._model import NO_ATTRIBUTES, Event, EventType
from swarmlearn.events._validate import LIMITS, Limits, Rejection, validate_event

__all__ = ["LIMITS", "NO_ATTRIBUTES", "Event", "EventType", "Limits", "Rejection", "validate_event"]

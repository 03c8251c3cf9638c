"""Agent performance events: the domain type, its limits and its validation."""

from swarmlearn.events._model import Event, EventType, PromptData
from swarmlearn.events._validate import LIMITS, Limits, Rejection, validate_event

__all__ = ["LIMITS", "Event", "EventType", "Limits", "PromptData", "Rejection", "validate_event"]

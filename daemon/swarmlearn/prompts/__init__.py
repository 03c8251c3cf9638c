"""Prompt optimisation: online prompt models per agent and global, candidate scoring, variant selection.

The daemon process only passes requests and answers on (``_types``, no River); the models run in the
learner process and are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmlearn._lazy import lazy_attributes
from swarmlearn.prompts._config import PromptConfig
from swarmlearn.prompts._score import check_request, resolve_weights
from swarmlearn.prompts._types import Candidate, ScoredPrompt, ScoreResult, Weights

if TYPE_CHECKING:
    from swarmlearn.prompts._learner import PromptLearner
    from swarmlearn.prompts._models import TARGETS
    from swarmlearn.prompts._state import AgentPrompts, PromptState

_LAZY = {
    "TARGETS": "swarmlearn.prompts._models",
    "AgentPrompts": "swarmlearn.prompts._state",
    "PromptLearner": "swarmlearn.prompts._learner",
    "PromptState": "swarmlearn.prompts._state",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "TARGETS",
    "AgentPrompts",
    "Candidate",
    "PromptConfig",
    "PromptLearner",
    "PromptState",
    "ScoreResult",
    "ScoredPrompt",
    "Weights",
    "check_request",
    "resolve_weights",
]

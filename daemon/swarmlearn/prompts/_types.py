"""What a ScorePrompts request and response hold, field for field as in ``swarmlearn/v1/prompts.proto``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    """``PromptCandidate``: a prompt to score. Unset optional proto fields are None here."""

    text: str
    prompt_tokens: int | None = None
    """Tokens of ``text``; estimated from its words when None."""
    expected_response_tokens: int | None = None
    """When given, used as the response length instead of predicting it."""
    variant: str = ""
    """The prompt variant the text belongs to, as in events' ``attributes["prompt_variant"]``; may be empty."""


@dataclass(frozen=True, slots=True)
class Weights:
    """``ObjectiveWeights``: non-negative; None (an unset proto field) takes ``PromptConfig``'s default."""

    quality: float | None = None
    success: float | None = None
    latency: float | None = None
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class ScoredPrompt:
    """``ScoredPrompt``. A dataclass, not a NamedTuple: a field named ``index`` would hide ``tuple.index``."""

    index: int
    """Position of the candidate in the request."""
    variant: str
    predicted_quality: float
    predicted_success: float
    predicted_latency_ms: float
    predicted_response_tokens: float
    uncertainty: float
    """Standard error of ``score``, from the answering models' running residuals (see ``_score``)."""
    score: float
    """Weighted mean of the four utilities, in [0, 1]; higher is better."""


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """``ScorePromptsResponse``."""

    agent_id: str
    ranked: tuple[ScoredPrompt, ...]
    """Best first; ties keep the request's order."""
    used_global_model: bool
    """True when the global models answered every target (always for an unknown or young agent)."""
    selected_variant: str
    """The variant to use next when selection was asked for and there was one to choose; else empty."""

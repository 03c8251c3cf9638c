"""The objective: request checks, default weights, the four utilities, the combined score and its uncertainty.

A score is the weighted mean of four utilities, each in [0, 1] and higher-is-better, so scores of any
weights are comparable and lie in [0, 1]:

- quality: the predicted quality_score;
- success: the predicted success_rate;
- latency: ``ref / (ref + latency)``, with ref the agent's typical latency (0.5 at the typical latency,
  towards 1 for much faster, towards 0 for much slower): scale-free, so 100 ms agents and 10 s agents
  weigh latency alike;
- cost: ``ref / (ref + prompt tokens + response tokens)``, likewise.

The uncertainty is the standard error of that mean, propagated from each answering model's running
residual (``_models.RunningErrors``) through its utility to first order, as if the four errors were
independent; a utility whose model has not been scored yet counts 0.5, the most any value in [0, 1] can
deviate. The same utility, with the default weights, is the reward that the variant bandit learns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from swarmlearn.errors import InvalidArgument
from swarmlearn.events import Event
from swarmlearn.prompts._config import PromptConfig
from swarmlearn.prompts._types import Candidate, Weights

_MAX_SIGMA = 0.5  # the largest standard deviation of anything in [0, 1]


def resolve_weights(weights: Weights, config: PromptConfig) -> tuple[float, float, float, float]:
    """The four weights with defaults filled in, normalised to sum to 1; refuses negative, NaN, all zero."""
    given = (
        ("quality", weights.quality, config.quality_weight),
        ("success", weights.success, config.success_weight),
        ("latency", weights.latency, config.latency_weight),
        ("cost", weights.cost, config.cost_weight),
    )
    resolved = []
    for name, value, default in given:
        if value is None:
            value = default
        elif not 0.0 <= value < math.inf:  # also false for NaN
            raise InvalidArgument(f"weights.{name}", f"must be a finite number >= 0, got {value}")
        resolved.append(value)
    total = sum(resolved)
    if total <= 0.0:
        raise InvalidArgument("weights", "at least one weight must be > 0")
    q, s, lat, c = (value / total for value in resolved)
    return q, s, lat, c


def check_request(agent_id: str, candidates: Sequence[Candidate], config: PromptConfig) -> None:
    if not agent_id:
        raise InvalidArgument("agent_id", "must not be empty")
    if not candidates:
        raise InvalidArgument("candidates", "at least one candidate is required")
    if len(candidates) > config.max_candidates:
        raise InvalidArgument("candidates", f"at most {config.max_candidates} candidates, got {len(candidates)}")
    for i, candidate in enumerate(candidates):
        if not candidate.text:
            raise InvalidArgument(f"candidates[{i}].text", "must not be empty")
        if len(candidate.text) > config.max_text_chars:
            raise InvalidArgument(f"candidates[{i}].text", f"longer than {config.max_text_chars} characters")
        if len(candidate.variant) > config.max_variant_chars:
            raise InvalidArgument(f"candidates[{i}].variant", f"longer than {config.max_variant_chars} characters")
        for name in ("prompt_tokens", "expected_response_tokens"):
            value = getattr(candidate, name)
            if value is not None and value < 0:
                raise InvalidArgument(f"candidates[{i}].{name}", f"must be >= 0, got {value}")


class References:
    """A scope's typical latency and tokens per prompt: exponentially faded means of their ``log1p``."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.log_latency = 0.0
        self.log_tokens = 0.0
        self.latency_count = 0
        self.tokens_count = 0

    def update(self, log_latency: float | None, log_tokens: float | None) -> None:
        if log_latency is not None:
            n = self.latency_count = self.latency_count + 1
            self.log_latency += max(self.alpha, 1.0 / n) * (log_latency - self.log_latency)
        if log_tokens is not None:
            n = self.tokens_count = self.tokens_count + 1
            self.log_tokens += max(self.alpha, 1.0 / n) * (log_tokens - self.log_tokens)

    @property
    def latency_ms(self) -> float | None:
        return math.expm1(self.log_latency) if self.latency_count else None

    @property
    def tokens(self) -> float | None:
        return math.expm1(self.log_tokens) if self.tokens_count else None


def relative_utility(value: float, reference: float | None) -> float:
    """``ref / (ref + value)``: 0.5 at the reference, and 0.5 when there is none yet."""
    if reference is None or reference + value <= 0.0:
        return 0.5
    return reference / (reference + value)


def clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


class Objective:
    """The score of one request's candidates: its weights and the answering scope's references and errors."""

    def __init__(
        self, weights: tuple[float, float, float, float], references: References, sigmas: Sequence[float | None]
    ) -> None:
        """``sigmas``: per target in ``TARGETS`` order, the answering model's residual deviation (None: unknown)."""
        self.weights = weights
        self.latency_ref = references.latency_ms
        self.tokens_ref = references.tokens
        self.sigmas = tuple(sigmas)

    def __call__(
        self, quality: float, success: float, latency_ms: float, tokens: float, response_tokens: float | None
    ) -> tuple[float, float]:
        """``(score, uncertainty)``; ``response_tokens`` is None when the request gave it (no error in it)."""
        u_latency = relative_utility(latency_ms, self.latency_ref)
        u_cost = relative_utility(tokens, self.tokens_ref)
        s_quality, s_success, s_latency, s_response = self.sigmas
        # First order: d u / d log(latency) = -u (1 - u); d u / d log1p(response) = -u (1 - u) (r + 1) / tokens.
        if s_latency is not None:
            s_latency *= u_latency * (1 - u_latency)
        if response_tokens is None:
            s_response = 0.0
        elif s_response is not None:
            s_response *= u_cost * (1 - u_cost) * (response_tokens + 1) / max(tokens, 1.0)
        w_quality, w_success, w_latency, w_cost = self.weights
        score = w_quality * quality + w_success * success + w_latency * u_latency + w_cost * u_cost
        variance = 0.0
        for weight, sigma in zip(self.weights, (s_quality, s_success, s_latency, s_response), strict=True):
            variance += (weight * (_MAX_SIGMA if sigma is None else min(sigma, _MAX_SIGMA))) ** 2
        return score, math.sqrt(variance)


def event_reward(event: Event, references: References, config: PromptConfig) -> float:
    """The event's observed utility with the default weights, over the parts it has: the bandit's reward.
    Latency counts for successful outcomes only (a failure's latency is not a fast answer)."""
    total = weight = 0.0
    if event.success_rate is not None:
        total += config.success_weight * event.success_rate
        weight += config.success_weight
    if event.quality_score is not None:
        total += config.quality_weight * event.quality_score
        weight += config.quality_weight
    reference = references.latency_ms
    if reference is not None and event.latency_ms is not None and event.succeeded:
        total += config.latency_weight * relative_utility(event.latency_ms, reference)
        weight += config.latency_weight
    reference = references.tokens
    if reference is not None and event.prompt_tokens is not None and event.response_tokens is not None:
        total += config.cost_weight * relative_utility(event.prompt_tokens + event.response_tokens, reference)
        weight += config.cost_weight
    return total / weight if weight > 0 else 0.5

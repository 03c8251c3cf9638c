"""Typed, immutable results of the swarmlearn RPCs.

Callers never handle protobuf responses: ``_convert`` turns each into one of these. Mappings stay
plain dicts (cheap, JSON-friendly); treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "AgentPage",
    "AgentStats",
    "BaselineStats",
    "BatchAck",
    "DriftState",
    "Forecast",
    "ForecastPoint",
    "IngestSummary",
    "Job",
    "JobKind",
    "JobProgress",
    "JobState",
    "Metrics",
    "ModelVersion",
    "ObjectiveWeights",
    "PromptCandidate",
    "PromptRanking",
    "Rejection",
    "ScoredPrompt",
    "TargetForecast",
]

JobKind = Literal["unspecified", "training", "tuning"]
JobState = Literal["unspecified", "pending", "running", "succeeded", "failed", "cancelled"]

_TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event of a batch that the daemon refused; the rest of the batch was still stored."""

    index: int
    """Position of the event in its batch."""
    event_id: str
    field: str
    """Dotted path of the offending field, e.g. ``performance_metrics.latency_ms``."""
    reason: str


@dataclass(frozen=True, slots=True)
class BatchAck:
    """The daemon's acknowledgement of one batch, sent once the batch is durable."""

    batch_id: str
    accepted: int
    duplicates: int
    """Events already stored under the same (agent_id, event_id): kept once, not overwritten."""
    rejected: tuple[Rejection, ...]
    durable_sequence: int
    """Highest sequence number of the daemon's event log once this batch committed."""


@dataclass(frozen=True, slots=True)
class IngestSummary:
    """Totals over every acknowledged batch of one ingest stream."""

    accepted: int = 0
    duplicates: int = 0
    """Includes events of a batch resent after a reconnect whose first ack was lost."""
    rejected: int = 0
    """Events not stored: one per rejection, and every event of a batch refused whole (over the
    daemon's ``max_batch_events``)."""
    batches: int = 0
    durable_sequence: int = 0
    reconnects: int = 0
    """Times the stream was re-established after a failure (counted at its first ack)."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """The five performance metrics of an event (or their means over the events that carried them);
    None where there is none."""

    latency_ms: float | None = None
    tokens_per_second: float | None = None
    memory_usage_mb: float | None = None
    cpu_usage_percent: float | None = None
    success_rate: float | None = None


@dataclass(frozen=True, slots=True)
class BaselineStats:
    """One online expert of one target of an agent (``online:naive``, ``online:ewma``, ...)."""

    target: str
    model_kind: str
    running_mae: float | None
    """Mean absolute error of every scored forecast; None until one was scored."""
    scored: int
    """Predictions scored so far."""
    best: bool
    """This expert has the largest weight in the aggregate now."""
    weight: float | None = None
    """Its weight in the aggregate that answers Predict (a target's weights sum to 1)."""


@dataclass(frozen=True, slots=True)
class DriftState:
    target: str
    drift_count: int
    last_drift_time: datetime | None


@dataclass(frozen=True, slots=True)
class AgentStats:
    agent_id: str
    event_count: int
    first_event_time: datetime | None
    last_event_time: datetime | None
    mean_metrics: Metrics
    prompt_event_count: int
    """Events that carried prompt data."""
    features: Mapping[str, float]
    """Online features by name."""
    baselines: tuple[BaselineStats, ...]
    drift: tuple[DriftState, ...]
    online_sequence: int = 0
    """Event log sequence the online fields are as of; 0 if the learner has not reached the agent."""
    answered_mae: Mapping[str, float] = field(default_factory=dict)
    """Per target, the progressive-validation MAE of what Predict answered (compare with naive's)."""
    interval_coverage: Mapping[str, float] = field(default_factory=dict)
    """Per target, the share of observations inside the interval (at the daemon's predict_coverage)
    made the event before."""


@dataclass(frozen=True, slots=True)
class AgentPage:
    agents: tuple[AgentStats, ...]
    next_page_token: str
    """Pass to ``list_agents`` for the next page; empty on the last page."""


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    step: int
    """1-based step ahead."""
    value: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class TargetForecast:
    target: str
    points: tuple[ForecastPoint, ...]
    model_kind: str
    """Which model answered, e.g. ``online:ewma`` or ``torch:lstm``."""
    model_version: str
    running_mae: float | None
    """Progressive-validation MAE of that model on this agent and target; None until one was scored."""


@dataclass(frozen=True, slots=True)
class Forecast:
    agent_id: str
    forecasts: tuple[TargetForecast, ...]
    as_of_sequence: int = 0
    """Event log sequence the online state had reached when it answered."""
    durable_sequence: int = 0
    """The log's sequence when the question was asked: ``lag`` events more than the state had."""

    @property
    def lag(self) -> int:
        """Events in the log that the answering state had not learned yet (0: up to date)."""
        return max(0, self.durable_sequence - self.as_of_sequence)

    def __getitem__(self, target: str) -> TargetForecast:
        for forecast in self.forecasts:
            if forecast.target == target:
                return forecast
        raise KeyError(target)


@dataclass(frozen=True, slots=True)
class ScoredPrompt:
    index: int
    """Position of the candidate in the request."""
    variant: str
    predicted_quality: float
    predicted_success: float
    predicted_latency_ms: float
    predicted_response_tokens: float
    uncertainty: float
    score: float


@dataclass(frozen=True, slots=True)
class PromptRanking:
    agent_id: str
    ranked: tuple[ScoredPrompt, ...]
    """Best first."""
    used_global_model: bool
    """The swarm's global models answered every target (always for an unknown or young agent)."""
    selected_variant: str
    """Set when ``select=True``: the variant to use next (with exploration)."""
    as_of_sequence: int = 0
    """Event log sequence the prompt learner had reached when it answered."""
    durable_sequence: int = 0
    """The log's sequence when the question was asked: ``lag`` events more than the learner had."""

    @property
    def lag(self) -> int:
        """Events in the log that the answering learner had not learned yet (0: up to date)."""
        return max(0, self.durable_sequence - self.as_of_sequence)


@dataclass(frozen=True, slots=True)
class JobProgress:
    epoch: int = 0
    total_epochs: int = 0
    train_loss: float = 0.0
    val_loss: float = 0.0
    trials_done: int = 0
    total_trials: int = 0
    best_objective: float = 0.0


@dataclass(frozen=True, slots=True)
class TuningTrial:
    """One configuration a tuning job evaluated."""

    index: int
    status: str
    """running, completed, early_stopped, failed or interrupted."""
    objective: float | None
    """The objective at the largest budget it reached (lower is better); None without one."""
    epochs: int
    params: Mapping[str, Any]
    error: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    kind: JobKind
    state: JobState
    scope: str
    model_kind: str
    created_time: datetime | None
    started_time: datetime | None
    finished_time: datetime | None
    progress: JobProgress
    metrics: Mapping[str, float]
    model_version: str
    error: str
    note: str = ""
    """What became of the model the job made: promoted, or kept as a challenger, and why."""
    trials: tuple[TuningTrial, ...] = ()
    """A tuning job's trials, by index."""
    config_json: str = ""
    """A tuning job's best configuration: a ``start_training`` ``config_json``."""

    @property
    def done(self) -> bool:
        """The job reached a terminal state (succeeded, failed or cancelled)."""
        return self.state in _TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class ModelVersion:
    scope: str
    model_kind: str
    version: int
    champion: bool
    created_time: datetime | None
    metrics: Mapping[str, float]
    config_json: str
    job_id: str


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """What a running daemon holds and how it is exposed."""

    version: str
    started_time: datetime | None
    uptime_s: float
    listen: str
    tls: bool
    client_certificates_required: bool
    token_auth: bool
    data_dir: str
    events_stored: int
    durable_sequence: int
    event_log_bytes: int
    agent_count: int
    ingest_streams: int
    online_sequence: int = 0
    """Log sequence the online learner has applied (behind ``durable_sequence`` under load)."""
    online_agents: int = 0
    online_running: bool = False
    online_restarts: int = 0
    online_workers: int = 0
    """The daemon's ``online_workers`` setting; 0 means online learning is off."""


@dataclass(frozen=True, slots=True)
class PromptCandidate:
    """A prompt to score; a plain ``str`` passed to ``score_prompts`` means ``PromptCandidate(text)``."""

    text: str
    variant: str = ""
    """Your label for the prompt variant; echoed in the ranking and used by ``select``."""
    prompt_tokens: int | None = None
    """None lets the daemon estimate it from the text."""
    expected_response_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectiveWeights:
    """Non-negative weights of the combined prompt score; None keeps the daemon's default."""

    quality: float | None = None
    success: float | None = None
    latency: float | None = None
    cost: float | None = None

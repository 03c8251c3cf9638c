"""Python client of the swarmlearn daemon: stream agent events in, ask for forecasts and prompt scores."""

from swarmlearn_client._async_client import AsyncClient
from swarmlearn_client._client import Client, IngestStream
from swarmlearn_client._convert import make_event
from swarmlearn_client._errors import SwarmLearnError
from swarmlearn_client._ingest import AsyncIngestStream
from swarmlearn_client._types import (
    AgentPage,
    AgentStats,
    BaselineStats,
    BatchAck,
    DaemonStatus,
    DriftState,
    Forecast,
    ForecastPoint,
    IngestSummary,
    Job,
    JobKind,
    JobProgress,
    JobState,
    Metrics,
    ModelVersion,
    ObjectiveWeights,
    PromptCandidate,
    PromptRanking,
    Rejection,
    ScoredPrompt,
    TargetForecast,
    TuningTrial,
)
from swarmlearn_client.v1.events_pb2 import EventBatch, EventType, PerformanceMetrics, PromptData, StreamEvent

__version__ = "0.1.0"

__all__ = [
    "AgentPage",
    "AgentStats",
    "AsyncClient",
    "AsyncIngestStream",
    "BaselineStats",
    "BatchAck",
    "Client",
    "DaemonStatus",
    "DriftState",
    "EventBatch",
    "EventType",
    "Forecast",
    "ForecastPoint",
    "IngestStream",
    "IngestSummary",
    "Job",
    "JobKind",
    "JobProgress",
    "JobState",
    "Metrics",
    "ModelVersion",
    "ObjectiveWeights",
    "PerformanceMetrics",
    "PromptCandidate",
    "PromptData",
    "PromptRanking",
    "Rejection",
    "ScoredPrompt",
    "StreamEvent",
    "SwarmLearnError",
    "TargetForecast",
    "TuningTrial",
    "__version__",
    "make_event",
]

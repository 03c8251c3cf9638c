"""The messages between the daemon (``_process``) and a learner process (``_worker``), one frozen
dataclass each, so mypy checks both ends and each end ``match``-es on the type.

They travel pickled in ``multiprocessing.connection`` framing (``_channel``); only the daemon's own
children are unpickled. A query carries one of the questions; its answer's value is what the role's
handler returned (``OnlineState.predict``, ``ChampionState.forecast``, ``PromptLearner.score``, the
agents' ``AgentStats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from swarmlearn.prompts import Candidate, Weights

# -- questions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AskPredict:
    """The online aggregate's forecast of one agent (the baselines' role)."""

    agent_id: str
    horizon: int
    coverage: float


@dataclass(frozen=True, slots=True)
class AskStats:
    """The learners' statistics of these agents (the baselines' role)."""

    agent_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AskForecast:
    """The torch champion's forecast of one agent, or None (the forecaster's role)."""

    agent_id: str
    horizon: int
    coverage: float


@dataclass(frozen=True, slots=True)
class AskScore:
    """Prompt candidates scored for one agent (the prompts' role)."""

    agent_id: str
    candidates: tuple[Candidate, ...]
    weights: Weights
    select: bool


Question = AskPredict | AskStats | AskForecast | AskScore


def agents_of(question: Question) -> tuple[str, ...]:
    """The agents a question is about: it waits for the learner to meet them."""
    return question.agent_ids if isinstance(question, AskStats) else (question.agent_id,)


# -- to the learner process ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Committed:
    """Events up to ``seq`` are in the log."""

    seq: int


@dataclass(frozen=True, slots=True)
class Query:
    qid: int
    question: Question
    min_seq: int
    """The log's durable sequence when it was asked: a question about an agent not met yet waits
    until the learner has applied that far."""


@dataclass(frozen=True, slots=True)
class Reload:
    """The registry's champions changed (the forecaster's role)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Write the snapshot and exit."""


ToWorker = Committed | Query | Reload | Stop

# -- from the learner process -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    applied_seq: int
    agents: int
    how: str
    """How the state was obtained (a snapshot, or rebuilt from the log and why), for the log."""
    snapshot_refused: bool
    log_sequence: int


@dataclass(frozen=True, slots=True)
class Answered:
    qid: int
    applied_seq: int
    value: Any


ErrorKind = Literal["behind", "unknown", "invalid", "internal", "start"]


@dataclass(frozen=True, slots=True)
class Failed:
    """A query failed (``qid``), or the process could not start (``qid`` None, kind ``start``).
    ``detail``: ``(applied, wanted)`` for ``behind``, the agent id for ``unknown``, ``(field,
    reason)`` for ``invalid``, a traceback for ``internal`` and ``start``."""

    qid: int | None
    kind: ErrorKind
    detail: Any


@dataclass(frozen=True, slots=True)
class Progress:
    applied_seq: int
    agents: int


@dataclass(frozen=True, slots=True)
class DriftFound:
    seq: int
    agent_id: str
    target: str
    timestamp: float
    count: int


@dataclass(frozen=True, slots=True)
class Drifted:
    drifts: tuple[DriftFound, ...]


@dataclass(frozen=True, slots=True)
class Snapshotted:
    applied_seq: int
    size: int
    seconds: float


@dataclass(frozen=True, slots=True)
class SnapshotFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Stopped:
    applied_seq: int


FromWorker = Ready | Answered | Failed | Progress | Drifted | Snapshotted | SnapshotFailed | Stopped

"""Per-agent learners and the state that holds one per agent, fed from the event log in order.

What an event teaches (``docs/online.md`` has the table): every event is an arrival (inter-arrival
time); memory and CPU are learned from any event that carries them; an outcome (TaskCompleted,
ResponseReceived, PerformanceUpdate) teaches success from its ``success_rate`` and, if it succeeded
(``success_rate`` unset or at least 0.5, or always with ``learn_failed_outcomes``), latency and
throughput from the values it carries. TaskStarted and PromptGenerated teach no forecast. A field
that was not set teaches nothing: it is absent, not 0.

``OnlineState`` is everything the online layer knows; together with ``applied_seq`` it is a snapshot:
replaying the log after ``applied_seq`` into a restored state gives the state that was never restored.
The learner process snapshots it incrementally into an ``AgentStore`` (``save`` and ``load``; its
agents wait there beyond ``resident``, ``_agents``); without a store it is picklable whole (River
estimators are). Only unpickle it from the daemon's own data directory (the architecture's rule for
snapshots).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING

from swarmlearn.errors import InvalidArgument, UnknownAgent
from swarmlearn.events import FAILURE_BELOW, IS_OUTCOME, LIMITS, METRICS, Event
from swarmlearn.features import FEATURE_NAMES
from swarmlearn.names import TARGETS
from swarmlearn.online._agents import AgentTable
from swarmlearn.online._baselines import FeatureRegressor
from swarmlearn.online._config import LOG_TARGETS, OnlineConfig
from swarmlearn.online._prior import TargetPrior
from swarmlearn.online._results import AgentStats, Forecast
from swarmlearn.online._snapshot import Anchor, SnapshotRejected, StateUnpickler
from swarmlearn.online._stats import RunningStats
from swarmlearn.online._target import TargetLearner

if TYPE_CHECKING:
    from swarmlearn.online._agentstore import AgentStore

_LIMITS = dict(zip(METRICS, LIMITS.metric_maxima(), strict=True))
_NOTHING_YET = Forecast("online:none", None, [])
_NOTHING = (None, None, None)
"""A target the agent has not observed yet: no forecast."""


class AgentLearner:
    """The experts, aggregates, intervals and drift of one agent, for every target in ``TARGETS``."""

    __slots__ = (
        "_learners",
        "config",
        "events",
        "first_timestamp",
        "last_timestamp",
        "regressor",
        "running",
        "targets",
    )

    def __init__(self, config: OnlineConfig | None = None, priors: dict[str, TargetPrior] | None = None) -> None:
        """``priors``: the swarm's, per target (``OnlineState`` passes its own); fresh ones if None."""
        self.config = config = config or OnlineConfig()
        priors = priors or {name: TargetPrior() for name in TARGETS}
        self.events = 0
        self.first_timestamp: float | None = None
        self.last_timestamp: float | None = None
        self.targets = {
            name: TargetLearner(config, log_scale=name in LOG_TARGETS, limit=_LIMITS[name], prior=priors[name])
            for name in TARGETS
        }
        self.regressor = FeatureRegressor(len(FEATURE_NAMES), len(TARGETS), config)
        self.running = RunningStats(config)
        self._learners = tuple(self.targets.values())

    def learn(self, event: Event) -> tuple[str, ...]:
        """Learn one event of this agent; returns the targets in which it made ADWIN find a drift."""
        timestamp = event.timestamp
        if self.first_timestamp is None:
            self.first_timestamp = timestamp
        self.last_timestamp = timestamp
        self.events += 1
        if not IS_OUTCOME[event.event_type]:  # an arrival only
            self.running.update(event, _NOTHING)
            return ()
        success = event.success_rate
        if success is None or success >= FAILURE_BELOW or self.config.learn_failed_outcomes:
            observed = (event.latency_ms, event.tokens_per_second, success)
        else:
            observed = (None, None, success)
        self.running.update(event, observed)
        if observed == _NOTHING:
            return ()
        regressor = self.regressor
        linear = regressor.before(event)
        deviations: list[float | None] = [None, None, None]
        drifted = []
        for i, (value, target) in enumerate(zip(observed, self._learners, strict=True)):
            if value is not None:
                deviations[i], drift_found = target.learn(value, timestamp, linear[i])
                if drift_found:
                    drifted.append(TARGETS[i])
        regressor.after(deviations)
        return tuple(drifted)

    def predict(self, horizon: int = 1, coverage: float = 0.8) -> dict[str, Forecast]:
        """Per target, steps 1..horizon with intervals at ``coverage`` from the aggregate now; a target
        not observed yet has no points (``online:none``)."""
        if not 1 <= horizon <= self.config.max_horizon:
            raise InvalidArgument("horizon", f"must be between 1 and {self.config.max_horizon}, got {horizon}")
        if not 0.0 < coverage < 1.0:
            raise InvalidArgument("coverage", f"must be in (0, 1), got {coverage}")
        return {name: target.forecast(horizon, coverage) or _NOTHING_YET for name, target in self.targets.items()}

    def stats(self) -> AgentStats:
        return AgentStats(
            events=self.events,
            first_timestamp=self.first_timestamp,
            last_timestamp=self.last_timestamp,
            targets={name: target.stats() for name, target in self.targets.items() if target.n},
            features=self.running.features(),
        )


class OnlineState:
    """One ``AgentLearner`` per agent (``resident`` of them in memory at most, ``_agents``), the
    swarm's priors, and the sequence number of the last event applied."""

    def __init__(self, config: OnlineConfig | None = None, *, resident: int | None = None) -> None:
        self.config = config or OnlineConfig()
        self.priors = {name: TargetPrior() for name in TARGETS}
        """The swarm's prior per target, which every new agent starts from (``_prior``)."""
        self.agents = _table(self.config, self.priors, resident)
        self.applied_seq = 0

    def learn(self, event: Event, seq: int | None = None) -> tuple[str, ...]:
        """Apply one event in log order; ``seq`` is its position in the log.

        Returns the targets in which the event made ADWIN find a drift (for the log and the training
        scheduler), usually none. An event at or before ``applied_seq`` was applied already (a replay
        that overlaps the snapshot) and is skipped, so replaying from any earlier point is harmless.
        """
        if seq is not None:
            if seq <= self.applied_seq:
                return ()
            self.applied_seq = seq
        agents, agent_id = self.agents, event.agent_id
        learner = agents.get(agent_id)
        if learner is None:
            learner = AgentLearner(self.config, self.priors)
            agents.add(agent_id, learner)
        else:
            agents.changed(agent_id)
        return learner.learn(event)

    # -- snapshots in an AgentStore ---------------------------------------------------------------

    def save(self, store: AgentStore, *, anchor: Anchor, fingerprint: str) -> int:
        """Write what changed since the last save into ``store`` (one transaction, at ``anchor``, the
        event at ``applied_seq``); returns the bytes written. Into another store than the one the
        agents were loaded from (``AgentTable.attach``), e.g. a fresh one, only a whole state is complete."""
        shared = pickle.dumps({"applied_seq": self.applied_seq, "priors": self.priors}, protocol=5)
        size = store.save(self.agents.changes(), shared, anchor=anchor, fingerprint=fingerprint)
        self.agents.saved(store)
        return size

    @classmethod
    def load(
        cls,
        store: AgentStore,
        *,
        config: OnlineConfig,
        resident: int | None,
        fingerprint: str,
        anchor_at: Callable[[int], Anchor | None],
    ) -> OnlineState:
        """The state of ``store``'s last snapshot, its agents left in the store until needed; or
        ``SnapshotRejected``."""
        anchor, shared = store.load(fingerprint=fingerprint, anchor_at=anchor_at)
        try:
            loaded = StateUnpickler(io.BytesIO(shared)).load()
            applied_seq, priors = loaded["applied_seq"], loaded["priors"]
        except Exception as exc:  # anything a damaged or foreign pickle raises
            raise SnapshotRejected(f"cannot unpickle its shared state: {type(exc).__name__}: {exc}") from None
        if applied_seq != anchor.seq:
            raise SnapshotRejected("its state is not at its anchor")
        if set(priors) != set(TARGETS) or not all(isinstance(p, TargetPrior) for p in priors.values()):
            raise SnapshotRejected("its priors are not one per target")
        state = cls(config, resident=resident)
        state.priors, state.applied_seq = priors, applied_seq
        state.agents = _table(state.config, priors, resident)
        state.agents.attach(store, store.agent_ids())
        return state

    def advance(self, seq: int) -> None:
        """The log was read up to ``seq``: what this state has not learned up to there is another
        partition's (see ``WorkerSettings.shard``)."""
        self.applied_seq = max(self.applied_seq, seq)

    def agent(self, agent_id: str) -> AgentLearner:
        learner = self.agents.get(agent_id)
        if learner is None:
            raise UnknownAgent(agent_id)
        return learner

    def predict(self, agent_id: str, horizon: int = 1, coverage: float = 0.8) -> dict[str, Forecast]:
        return self.agent(agent_id).predict(horizon, coverage)

    def stats(self, agent_id: str) -> AgentStats:
        return self.agent(agent_id).stats()


def _table(config: OnlineConfig, priors: dict[str, TargetPrior], resident: int | None) -> AgentTable[AgentLearner]:
    """The agents' learners, whose pickles name the configuration and the priors they share."""
    return AgentTable(AgentLearner, {"config": config, **priors}, resident)

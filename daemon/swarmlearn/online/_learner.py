"""Per-agent learners and the state that holds one per agent, fed from the event log in order.

``OnlineState`` is everything the online layer knows; it is picklable (River estimators are), and
together with ``applied_seq`` it is a snapshot: replaying the log after ``applied_seq`` into a restored
state gives the state that was never restored. Only pickle it to and from the daemon's own data
directory (the architecture's rule for snapshots).

Cost, measured on the synthetic swarm (6 agents x 3000 events, 2-core VM, noisy): ``learn`` takes
about 30-47 µs per event for all three targets (21-33k events/s on one core); with the regressor
learning on every event instead of every fourth, 50-65 µs. What dominates: per target, scoring the
four baselines and choosing the best (about a third), the regressor's predict and its amortised SGD
step, then Holt, ADWIN and the residual ring; per event, the features and the scaler. ``predict``
costs about 2 µs when nothing was learned since the last call, tens of µs after new events (current
values, cached widths), and 0.1-0.9 ms (H = 1..48, three targets) when it refreshes the widths. A
snapshot is about 100 KB per agent (the residual rings). At 25k events/s ``learn`` is most of a core
of Python, so it cannot share the daemon process's GIL with ingest (about 0.9 of a core at 65k
events/s): run it in a process of its own, as the store's writer is.
"""

from __future__ import annotations

from river import preprocessing

from swarmlearn.errors import InvalidArgument, UnknownAgent
from swarmlearn.events import Event
from swarmlearn.features import FEATURE_NAMES, event_features
from swarmlearn.online._config import TARGETS, OnlineConfig
from swarmlearn.online._results import AgentStats, Forecast
from swarmlearn.online._stats import RunningStats
from swarmlearn.online._target import TargetLearner

# Index of each target in the feature tuple, so learn() reads the values it already has.
_TARGET_INDEX = tuple(FEATURE_NAMES.index(name) for name in TARGETS)


class AgentLearner:
    """The baselines, intervals and drift of one agent, for every target in ``TARGETS``."""

    def __init__(self, config: OnlineConfig | None = None) -> None:
        self.config = config or OnlineConfig()
        self.events = 0
        self.first_timestamp: float | None = None
        self.last_timestamp: float | None = None
        # One scaler for all targets' regressors: the features are the same, so scale them once.
        self.scaler = preprocessing.StandardScaler()
        self.targets = {name: TargetLearner(self.config) for name in TARGETS}
        self.running = RunningStats(self.config)
        self._learners = tuple(zip(TARGETS, _TARGET_INDEX, self.targets.values(), strict=True))

    def learn(self, event: Event) -> tuple[str, ...]:
        """Learn one event of this agent; returns the targets in which it made ADWIN find a drift."""
        features = event_features(event)
        raw = dict(zip(FEATURE_NAMES, features, strict=True))
        if self.events % self.config.linear_every == 0:
            self.scaler.learn_one(raw)
        x = self.scaler.transform_one(raw)
        timestamp = event.timestamp
        self.running.update(features, timestamp)
        drifted = tuple(name for name, index, target in self._learners if target.learn(features[index], x, timestamp))
        if self.first_timestamp is None:
            self.first_timestamp = timestamp
        self.last_timestamp = timestamp
        self.events += 1
        return drifted

    def predict(self, horizon: int = 1, coverage: float = 0.8) -> dict[str, Forecast]:
        """Per target, steps 1..horizon with intervals at ``coverage``, from the best baseline now."""
        if not 1 <= horizon <= self.config.max_horizon:
            raise InvalidArgument("horizon", f"must be between 1 and {self.config.max_horizon}, got {horizon}")
        if not 0.0 < coverage < 1.0:
            raise InvalidArgument("coverage", f"must be in (0, 1), got {coverage}")
        return {name: target.forecast(horizon, coverage) for name, target in self.targets.items()}

    def stats(self) -> AgentStats:
        return AgentStats(
            events=self.events,
            first_timestamp=self.first_timestamp,
            last_timestamp=self.last_timestamp,
            targets={name: target.stats() for name, target in self.targets.items()},
            features=self.running.features(),
        )


class OnlineState:
    """One ``AgentLearner`` per agent, and the sequence number of the last event applied."""

    def __init__(self, config: OnlineConfig | None = None) -> None:
        self.config = config or OnlineConfig()
        self.agents: dict[str, AgentLearner] = {}
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
        learner = self.agents.get(event.agent_id)
        if learner is None:
            learner = self.agents[event.agent_id] = AgentLearner(self.config)
        return learner.learn(event)

    def advance(self, seq: int) -> None:
        """The log was read up to ``seq``: what this state has not learned up to there is another
        partition's (see ``WorkerSettings.shard``)."""
        self.applied_seq = max(self.applied_seq, seq)

    def agent(self, agent_id: str) -> AgentLearner:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    def predict(self, agent_id: str, horizon: int = 1, coverage: float = 0.8) -> dict[str, Forecast]:
        return self.agent(agent_id).predict(horizon, coverage)

    def stats(self, agent_id: str) -> AgentStats:
        return self.agent(agent_id).stats()

"""The online layer's settings: one frozen dataclass, passed down to every learner."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

TARGETS: tuple[str, ...] = ("latency_ms", "tokens_per_second", "success_rate")
"""What is forecast for every agent, as ``Event`` field names."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OnlineConfig:
    ewma_alpha: float = 0.1
    """Weight of the newest value in the EWMA baseline (River ``stats.EWMean`` fading factor)."""

    holt_alpha: float = 0.2
    """Level smoothing of the Holt (River ``time_series.HoltWinters``) baseline."""

    holt_beta: float = 0.01
    """Trend smoothing of the Holt baseline; small, because a trend extrapolated over H steps is noisy."""

    linear_lr: float = 0.01
    """SGD step of the linear regressor on the standardised features."""

    linear_every: int = 4
    """The regressor and the feature scaler learn on every n-th event of an agent (they still predict on
    every event, so they are scored on every event). Their ``learn_one`` costs about 25 µs of the per-event
    budget of 40 µs when done on every event; see the cost notes in ``_learner``."""

    level_alpha: float = 0.05
    """Weight of the newest value in the running level and scale that the regressor predicts around."""

    warm_up: int = 20
    """Events of an agent before the baselines are scored; until then the EWMA answers."""

    selection_alpha: float = 0.02
    """Fading factor of the recent MAE that picks the best baseline (about 1/alpha events of memory), so a
    baseline that a regime shift has made worse stops answering."""

    residual_window: int = 400
    """Residuals per baseline and step kept for the prediction intervals."""

    interval_refresh: int = 16
    """The interval widths are recomputed once every n events of an agent (from the residuals up to that
    boundary), so Predict costs microseconds instead of the quantiles' few hundred."""

    min_residuals: int = 10
    """Fewer residuals than this for a step and its interval is unbounded (-inf, inf)."""

    max_horizon: int = 48
    """Largest horizon ``predict`` answers; bounds the residual history."""

    failure_below: float = 0.5
    """An event whose ``success_rate`` is below this counts as an error in the agent's error rate."""

    drift_delta: float = 0.002
    """ADWIN confidence on the best baseline's residuals; smaller means fewer, surer drifts."""

    drift_clock: int = 1
    """ADWIN looks for a cut after every n-th residual. The best baseline adapts, so a level shift shows in
    its residuals only for a few dozen events: River's default of 32 misses some of those bursts, 4 still
    missed one in twenty doubled-latency shifts in the tests' stream; 1 found all within 7 events."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What the daemon tells its learner process (as JSON on its command line)."""

    snapshot_interval_s: float = 60.0
    max_wait_s: float = 2.0
    stop_timeout_s: float = 30.0
    """How long the daemon waits for the process to write its snapshot and exit before killing it."""
    role: str = "baselines"
    """``baselines`` (``OnlineState``, one partition of the agents), ``prompts`` (``PromptLearner``,
    every agent) or ``forecaster`` (``ChampionState``: the torch champions and every agent's last
    feature rows)."""
    registry_root: str = ""
    """For the ``forecaster`` role: the model registry's directory."""
    shard: int = 0
    """A baselines process learns the agents with ``agent_shard(agent_id, shards) == shard``."""
    shards: int = 1
    config: OnlineConfig = dataclasses.field(default_factory=OnlineConfig)

    def identity(self) -> dict[str, object]:
        """What a snapshot's state depends on (the timings do not change what is learned)."""
        if self.role != "baselines":
            return {"role": self.role}  # the prompt models' configuration is PromptConfig's defaults
        return {
            "role": self.role,
            "shard": self.shard,
            "shards": self.shards,
            "config": dataclasses.asdict(self.config),
        }

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSettings:
        raw = json.loads(text)
        return cls(**{**raw, "config": OnlineConfig(**raw["config"])})

"""The online layer's settings: one frozen dataclass, passed down to every learner."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from swarmlearn.names import MAX_HORIZON

LOG_TARGETS = frozenset({"latency_ms", "tokens_per_second"})
"""Strictly positive, skewed targets: learned on a log scale and forecast back on the original one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OnlineConfig:
    learn_failed_outcomes: bool = False
    """Whether a failed outcome (success_rate below 0.5) teaches latency and throughput too. Off: the
    forecasts answer "how long will the next successful call take"; success is learned either way."""

    fast_alpha: float = 0.3
    """Weight of the newest value in the fast EWMA expert."""

    ewma_alpha: float = 0.1
    """Weight of the newest value in the EWMA expert (and the running statistics' EWMAs)."""

    holt_alpha: float = 0.2
    """Level smoothing of the Holt expert."""

    holt_beta: float = 0.01
    """Trend smoothing of the Holt expert; small, because a trend extrapolated over H steps is noisy."""

    holt_damping: float = 0.9
    """Damping of Holt's trend per step ahead (its H-step forecast adds at most 9 steps of trend)."""

    median_window: int = 21
    """Values in the rolling-median expert."""

    linear_lr: float = 0.01
    """SGD step of the feature regressor on the standardised features."""

    linear_every: int = 8
    """The feature regressor and its standardiser learn on every n-th outcome of an agent (they still
    predict on every one)."""

    clip_mads: float = 4.0
    """An observation further than this many robust deviations from the agent's rolling median is
    winsorised to that bound before anything learns from it (on the log scale for latency and
    throughput), so one artefact moves the state by a bounded amount."""

    clip_run: int = 3
    """So many consecutive observations beyond the bound on the same side are a level shift, not an
    artefact: from the last of them on, values are learned as they are."""

    scale_alpha: float = 0.05
    """Weight of the newest deviation in the robust scale (and in the intervals' scale)."""

    aggregation_forget: float = 0.005
    """Share of the accumulated regrets forgotten at each observation (about 1/0.005 = 200 observations
    of memory), so the weights follow a change of regime."""

    prior_events: float = 20.0
    """A new agent's weights start at the swarm's and move to its own as it is observed: the swarm's
    share is prior_events / (prior_events + observations)."""

    interval_step: float = 0.05
    """Step of the intervals' quantile trackers (in units of the scale): how fast coverage recovers."""

    residual_window: int = 400
    """Scores kept per target for the widths of steps 2..H relative to step 1."""

    interval_refresh: int = 16
    """The step 2..H width ratios are recomputed once every n observations of a target."""

    max_horizon: int = MAX_HORIZON
    """Largest horizon ``predict`` answers; bounds the forecast history."""

    drift_cusum_k: float = 0.5
    """Allowance of the CUSUM on the aggregate's residuals (in spreads): shifts smaller than about twice
    this are not chased."""

    drift_cusum_h: float = 10.0
    """Threshold of that CUSUM: about 5 observations to find a shift of 2.5 spreads; on stationary normal
    residuals a false alarm every 100,000 or so (Siegmund's approximation)."""

    drift_delta: float = 0.002
    """ADWIN confidence on the aggregate's absolute residuals (a change of spread); smaller means
    fewer, surer drifts."""

    drift_clock: int = 1
    """ADWIN looks for a cut after every n-th residual; River's default of 32 misses short bursts."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What the daemon tells its learner process (as JSON on its command line)."""

    snapshot_interval_s: float = 60.0
    max_wait_s: float = 2.0
    answer_within_s: float = 0.025
    """Predict waits this long for a learner before answering the agent's recent forecast again
    (``OnlineLearner.predict``); 0: always waits. The daemon's side only, not the process's."""
    max_lag_events: int = 0
    """An answer further behind the log than this is not given again (Predict would refuse it);
    0: no limit. The daemon's side only."""
    stop_timeout_s: float = 30.0
    """How long the daemon waits for the process to write its snapshot and exit before killing it."""
    role: str = "baselines"
    """``baselines`` (``OnlineState``, one partition of the agents), ``prompts`` (``PromptLearner``,
    every agent) or ``forecaster`` (``ChampionState``: the torch champions and the last feature rows
    of the agents they serve; nothing, and no torch, while there is no champion)."""
    registry_root: str = ""
    """For the ``forecaster`` role: the model registry's directory."""
    shard: int = 0
    """A baselines process learns the agents with ``agent_shard(agent_id, shards) == shard``."""
    shards: int = 1
    resident_agents: int = 5_000
    """For the ``baselines`` and ``prompts`` roles: agents' states kept in memory at most; the others wait
    in the process's store (``_agents``). Does not change what is learned, so not part of ``identity``."""
    prompt_resident_agents: int = 10_000
    """``resident_agents`` of the ``prompts`` process (``OnlineLearner`` gives it that role's settings)."""
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

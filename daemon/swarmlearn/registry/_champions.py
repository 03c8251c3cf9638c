"""The champions, loaded for serving: the forecaster process's state.

It follows the event log like the online learners, keeping each agent's last ``_KEEP`` (256) feature rows
(``event_features``, oldest first), and holds the registry's champions as ``TrainedModel``s. Predict
asks it for an agent's forecast: the champion of the agent's own scope, else the swarm's (``""``),
if there is one, it forecasts at least the horizon asked, and the agent has a full window of
events; otherwise it answers None and the daemon falls back to the online baseline.

Intervals come from the champion's residuals on its test split, per step and target, stored as
quantiles at ``QUANTILE_LEVELS`` by the training job; a coverage between two levels is
interpolated. Pickled for snapshots without the models (``__getstate__``): they are loaded again
from the registry, which is the source of truth, and reloaded whenever the daemon says the
champions changed. Torch is imported here, in the forecaster process, never in the daemon's.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from swarmlearn.events import Event
from swarmlearn.features import event_features
from swarmlearn.online import TARGETS, Forecast, Point
from swarmlearn.registry._registry import ModelRegistry

log = logging.getLogger(__name__)

_KEEP = 256
"""Feature rows kept per agent: the longest window a champion can serve with (a longer one falls
back to the online baseline). As tuples of floats, about 120 KB per agent."""
QUANTILE_LEVELS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9,
                   0.95, 0.975, 0.99, 0.995)  # fmt: skip


class ChampionState:
    def __init__(self, registry_root: Path) -> None:
        self.registry_root = registry_root
        self.applied_seq = 0
        self.agents: dict[str, deque[tuple[float, ...]]] = {}
        self._models: dict[str, tuple[Any, str, dict[str, float], list[Any]]] = {}
        """scope -> (TrainedModel, "<kind>-v<version>", test metrics, residual quantiles [level][step][target])"""
        self.reload()

    def __getstate__(self) -> dict[str, Any]:
        return {"registry_root": str(self.registry_root), "applied_seq": self.applied_seq, "agents": self.agents}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.registry_root = Path(state["registry_root"])
        self.applied_seq = state["applied_seq"]
        self.agents = state["agents"]
        self._models = {}
        self.reload()

    def reload(self) -> None:
        """Load every scope's champion from the registry (after a promotion or a rollback)."""
        import torch

        from swarmlearn.training import TrainedModel  # torch: only in this process

        # One window at a time gains nothing from threads, and on a busy machine OpenMP's waiting
        # threads cost more than the work: 180 ms for a small LSTM's forward with 2 threads while
        # the other core was busy, 0.4 ms with 1.
        torch.set_num_threads(1)
        registry = ModelRegistry(self.registry_root)
        models = {}
        for scope in {v.scope for v in registry.versions()}:
            champion = registry.champion(scope)
            if champion is None:
                continue
            try:
                trained = TrainedModel.load(registry.checkpoint_path(champion))
            except (OSError, ValueError, RuntimeError) as exc:
                log.error(
                    "champion %s-v%d of scope %r cannot be loaded: %s", champion.kind, champion.version, scope, exc
                )
                continue
            quantiles = trained.metadata.get("residual_quantiles") or []
            models[scope] = (trained, f"{champion.kind}-v{champion.version}", dict(champion.metrics), quantiles)
        self._models = models

    def learn(self, event: Event, seq: int | None = None) -> tuple[str, ...]:
        if seq is not None:
            if seq <= self.applied_seq:
                return ()
            self.applied_seq = seq
        rows = self.agents.get(event.agent_id)
        if rows is None:
            rows = self.agents[event.agent_id] = deque(maxlen=_KEEP)
        rows.append(event_features(event))
        return ()

    def advance(self, seq: int) -> None:
        self.applied_seq = max(self.applied_seq, seq)

    def forecast(self, agent_id: str, horizon: int, coverage: float) -> tuple[str, dict[str, Forecast]] | None:
        """``(model version, forecasts by target)`` from the champion that serves the agent, or None."""
        served = self._models.get(agent_id) or self._models.get("")
        rows = self.agents.get(agent_id)
        if served is None or rows is None:
            return None
        trained, version, metrics, quantiles = served
        if trained.horizon < horizon or len(rows) < trained.window:
            return None
        window = np.asarray(list(rows)[-trained.window :], dtype=np.float32)
        predicted = trained.predict(window)  # [H, T]
        lower_level, upper_level = (1.0 - coverage) / 2, (1.0 + coverage) / 2
        out = {}
        for t, target in enumerate(TARGETS):
            points = []
            for h in range(horizon):
                value = float(predicted[h, t])
                low = _quantile(quantiles, lower_level, h, t)
                high = _quantile(quantiles, upper_level, h, t)
                points.append(Point(value, value + low, value + high))
            out[target] = Forecast(f"torch:{trained.kind}", metrics.get(f"{target}.mae"), points)
        return version, out


def residual_quantiles(residuals: np.ndarray) -> list[Any]:
    """``[level][step][target]`` quantiles of test residuals ``[windows, H, T]`` (truth - forecast)."""
    if len(residuals) == 0:
        return []
    levels: list[Any] = np.quantile(residuals, QUANTILE_LEVELS, axis=0).tolist()
    return levels


def _quantile(quantiles: list[Any], level: float, step: int, target: int) -> float:
    """Interpolated between the stored levels; unbounded outside them or without any."""
    if not quantiles or level < QUANTILE_LEVELS[0] or level > QUANTILE_LEVELS[-1]:
        return -math.inf if level < 0.5 else math.inf
    for i in range(1, len(QUANTILE_LEVELS)):
        if level <= QUANTILE_LEVELS[i]:
            a, b = QUANTILE_LEVELS[i - 1], QUANTILE_LEVELS[i]
            weight = (level - a) / (b - a)
            low, high = quantiles[i - 1][step][target], quantiles[i][step][target]
            return float(low + weight * (high - low))
    return float(quantiles[-1][step][target])

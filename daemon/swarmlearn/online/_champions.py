"""The champions, loaded for serving: the forecaster process's state.

It follows the event log like the online learners, keeping each agent's latest outcomes as timestamps
and feature rows (``observed_features``, NaN where not observed) in time order (``History``), and holds the registry's
champions as ``TrainedModel``s. Predict asks it for an agent's forecast: the champion of the
agent's own scope, else the swarm's (``""``), if there is one, it forecasts at least the horizon
asked, and the agent has a full window; otherwise it answers None and the daemon falls back to the
online baseline. The window is built by the champion (``TrainedModel.input_window``), as its training
built them: the last L events, or with a time grid the last L buckets, resampled by the same function.

What an agent keeps: at least its last ``_KEEP`` (256) events, and as many more as any champion's
window reaches back (a grid champion's L buckets, and the bucket before them that they may carry
forward), up to ``_MAX_ROWS`` (16,384). A champion loaded later than the events it needs were
dropped answers None for that agent until enough new ones arrive.

A forecast is cached per agent until that agent's next event or a reload: an agent that asks again
between events costs no forward pass, and answers for the same horizon and coverage are reused as they
are. Intervals are scale-aware conformal ones: the training job stores, per step and target, quantiles
(at ``training.QUANTILE_LEVELS``) of its validation split's residuals divided by each window's scale
of the target (``training.interval_quantiles``); here they are multiplied by the agent's current
window's scale, so an agent with twenty times the latency of another gets twenty times the width. A
coverage between two levels is interpolated, beyond the outermost extrapolated. Values and bounds are
clipped to the metric's range (``_MAXIMA``), as the online aggregate's are.

Those quantiles are pooled over the agents of the job's validation split, so one agent's intervals
can be too wide or too narrow for it. Each agent's widths therefore adapt as its outcomes arrive
(adaptive conformal inference, Gibbs & Candès 2021, per agent and target, on the log of a width
factor): when an outcome follows a forecast served to the agent, a miss of its step-1 interval at
coverage c widens that target's intervals by ``exp(η·c)``, a hit narrows them by ``exp(-η·(1-c))``
(η = ``_WIDEN_STEP``), so in the long run the agent's misses are the share 1 - c that it asked for,
whatever the pooled quantiles said. The factors are learned from forecasts as they were served
(no replay can redo them), so they are kept in the snapshot.

Pickled for snapshots without the models (``__getstate__``): they are loaded again from the registry,
which is the source of truth, and reloaded whenever the daemon says the champions changed. Torch is
imported here, in the forecaster process, never in the daemon's, nor in the online learners' (which
import this module but never build a ``ChampionState``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from swarmlearn.events import LIMITS, METRICS, Event
from swarmlearn.features import FEATURE_NAMES, fill_forward, observed_features
from swarmlearn.names import TARGETS
from swarmlearn.online._results import Forecast, Point
from swarmlearn.registry import ModelRegistry

if TYPE_CHECKING:
    from swarmlearn.training import TrainedModel

log = logging.getLogger(__name__)

_MAXIMA = np.asarray([dict(zip(METRICS, LIMITS.metric_maxima(), strict=True))[t] for t in TARGETS])
"""``[T]``: the most each target may be (what events may carry); answers are clipped to [0, this]."""

_KEEP = 256
"""Events kept per agent at least."""
_MAX_ROWS = 16_384
"""Events kept per agent at most, whatever a champion's window would reach back to (about 1 MB)."""
_FORMAT = 4
"""Of the pickled state: 1 kept rows without timestamps in deques, 2 a row for every event (not only
outcomes); both are refused (rebuilt from the log). 4 adds the agents' width factors; a state of 3
is read with none (every agent starts again from the pooled widths)."""
_READABLE = (3, 4)
_ANSWERS_PER_AGENT = 8
"""Cached answers (horizon, coverage) per agent; more are dropped together."""
_WIDEN_STEP = 0.05
"""η: the step of an agent's log width factor per scored forecast."""
_WIDEN_LIMIT = 5.0
"""The log width factor stays within ±5 (intervals from 1/150 to 150 times the pooled width)."""
_TARGET_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in TARGETS)

Answer = tuple[str, dict[str, Forecast]]
"""``(model version, forecasts by target)``."""
_NeededFrom = Callable[[npt.NDArray[np.float64]], int]


class History:
    """One agent's latest events in time order: timestamps ``[N]`` and feature rows ``[N, F]`` at the
    front of arrays that grow by doubling; when they are full, rows no champion needs are dropped
    first. A window is a slice of ``rows``: nothing is copied to forecast."""

    __slots__ = ("carried", "dropped", "rows", "size", "times")

    def __init__(self, capacity: int = 64) -> None:
        self.times = np.zeros(capacity, dtype=np.float64)
        self.rows = np.zeros((capacity, len(FEATURE_NAMES)), dtype=np.float32)
        self.size = 0
        self.dropped = False
        """Whether older events were dropped: the history no longer starts at the agent's first event."""
        self.carried: npt.NDArray[np.float32] | None = None
        """``[F]``: each column's last value in the dropped rows (0 where none was observed), what the
        first kept rows' missing values are carried forward from, as training carries them over the
        agent's whole history. None until rows are dropped."""

    def view(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        return self.times[: self.size], self.rows[: self.size]

    def add(self, timestamp: float, features: tuple[float, ...], needed_from: _NeededFrom) -> None:
        """Insert an event at its place in time (after those with the same timestamp, as training's
        stable sort puts it). ``needed_from(times) -> int``: the first row a champion still needs."""
        if self.size == len(self.times):
            self._make_room(needed_from)
        size = self.size
        at = size
        if size and timestamp < self.times[size - 1]:  # a late event: rare, shift the later ones
            at = int(np.searchsorted(self.times[:size], timestamp, side="right"))
            self.times[at + 1 : size + 1] = self.times[at:size]
            self.rows[at + 1 : size + 1] = self.rows[at:size]
        self.times[at] = timestamp
        self.rows[at] = features
        self.size = size + 1

    def _make_room(self, needed_from: _NeededFrom) -> None:
        size = self.size
        times = self.times[:size]
        drop = max(0, size - _MAX_ROWS, min(size - _KEEP, needed_from(times)))
        if drop:
            self.carried = fill_forward(self.rows[:drop].copy(), self.carried)[-1].copy()
            self.times[: size - drop] = self.times[drop:size]
            self.rows[: size - drop] = self.rows[drop:size]
            self.size = size = size - drop
            self.dropped = True
        if size > len(self.times) * 3 // 4:  # too little room left: grow
            self.times = np.concatenate([self.times, np.zeros_like(self.times)])
            self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])

    def __getstate__(self) -> dict[str, Any]:
        times, rows = self.view()
        return {
            "times": times.copy(), "rows": rows.copy(), "dropped": self.dropped, "carried": self.carried,
            "capacity": len(self.times),
        }  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        times, rows = state["times"], state["rows"]
        # The arrays' room decides when rows are dropped: restored, they drop when the saved ones would
        # (a snapshot written before says nothing of it: the smallest power of two above its rows).
        capacity = max(len(times), state.get("capacity") or max(64, 1 << len(times).bit_length()))
        self.times = np.zeros(capacity, dtype=np.float64)
        self.rows = np.zeros((capacity, len(FEATURE_NAMES)), dtype=np.float32)
        self.size = len(times)
        self.times[: self.size] = times
        self.rows[: self.size] = rows
        self.dropped = bool(state["dropped"])
        self.carried = state.get("carried")  # snapshots written before carry none


class _Served(NamedTuple):
    """A scope's champion, ready to answer."""

    model: TrainedModel
    version: str
    """``<kind>-v<version>``."""
    metrics: dict[str, float]
    quantiles: npt.NDArray[np.float64] | None
    """Residual quantiles ``[level, H, T]`` (None: the intervals are the metric's whole range)."""
    scaled: bool
    """Whether they are in units of each window's target scale (``interval_quantiles``: multiplied by
    the window's scale at Predict), or in the targets' own units (checkpoints written before)."""

    def answer(
        self,
        predicted: npt.NDArray[np.float64],
        scales: npt.NDArray[np.float64],
        horizon: int,
        coverage: float,
        widen: list[float] | None = None,
    ) -> Answer:
        """``widen``: the agent's log width factor per target (None: the pooled widths)."""
        values = predicted[:horizon]  # [h, T]
        unit = scales[None, :] if self.scaled else np.ones((1, len(TARGETS)))  # [1, T]: the window's scale
        if widen is not None:
            unit = unit * np.exp(np.asarray(widen))[None, :]
        # Bounds from the model's own values, then all three within the metric's range, as the online
        # aggregate's are: a wide interval around a success rate of 1 went above 1, a latency's below 0.
        lows = np.clip(values + self._offset((1.0 - coverage) / 2)[:horizon] * unit, 0.0, _MAXIMA).tolist()
        highs = np.clip(values + self._offset((1.0 + coverage) / 2)[:horizon] * unit, 0.0, _MAXIMA).tolist()
        kind = f"torch:{self.model.kind}"
        columns = np.clip(values, 0.0, _MAXIMA).tolist()
        out = {
            target: Forecast(
                kind,
                self.metrics.get(f"{target}.mae"),
                [Point(columns[h][t], lows[h][t], highs[h][t]) for h in range(horizon)],
            )
            for t, target in enumerate(TARGETS)
        }
        return self.version, out

    def _offset(self, level: float) -> npt.NDArray[np.float64]:
        """``[H, T]``: the residual quantile at ``level``, interpolated between the stored levels and
        extrapolated beyond them; unbounded without any."""
        if self.quantiles is None:
            shape = (self.model.horizon, len(TARGETS))
            return np.full(shape, -math.inf if level < 0.5 else math.inf)
        from swarmlearn.training import interval_offsets  # torch is loaded already where a champion is

        return interval_offsets(self.quantiles, level)


class _Cached(NamedTuple):
    predicted: npt.NDArray[np.float64] | None
    """``[H, T]`` of the agent's current window; None: no full window (or one that cannot be exact)."""
    scales: npt.NDArray[np.float64]
    """``[T]``: that window's scale of the targets."""
    answers: dict[tuple[int, float], Answer]


class ChampionState:
    def __init__(self, registry_root: Path) -> None:
        self.registry_root = registry_root
        self.applied_seq = 0
        self.agents: dict[str, History] = {}
        self._models: dict[str, _Served] = {}
        """scope -> its champion"""
        self._cache: dict[str, _Cached] = {}
        """agent -> its current forecast; dropped on the agent's next event and on a reload."""
        self.widen: dict[str, list[float]] = {}
        """agent -> its log width factor per target (module docstring), once a forecast was scored."""
        self._served: dict[str, tuple[float, Answer]] = {}
        """agent -> the coverage and answer last served since its last event, to score on the next."""
        self.reload()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "registry_root": str(self.registry_root),
            "applied_seq": self.applied_seq,
            "agents": self.agents,
            "widen": self.widen,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("format") not in _READABLE:
            # An older state has no timestamps: refused, so the forecaster rebuilds from the log.
            raise ValueError(f"forecaster state format {state.get('format', 1)}, this release reads {_FORMAT}")
        self.registry_root = Path(state["registry_root"])
        self.applied_seq = state["applied_seq"]
        self.agents = state["agents"]
        self.widen = state.get("widen", {})
        self._models = {}
        self._cache = {}
        self._served = {}
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
            version = f"{champion.kind}-v{champion.version}"
            models[scope] = _Served(trained, version, dict(champion.metrics), *_quantiles(trained, version))
        self._models = models
        self._cache = {}

    def learn(self, event: Event, seq: int | None = None) -> tuple[str, ...]:
        if seq is not None:
            if seq <= self.applied_seq:
                return ()
            self.applied_seq = seq
        row = observed_features(event)
        if row is None:  # no outcome: not a step of any window
            return ()
        served = self._served.pop(event.agent_id, None)
        if served is not None:
            self._score(event.agent_id, row, *served)
        history = self.agents.get(event.agent_id)
        if history is None:
            history = self.agents[event.agent_id] = History()
        history.add(event.timestamp, row, self._needed_from)
        self._cache.pop(event.agent_id, None)
        return ()

    def _score(self, agent_id: str, row: tuple[float, ...], coverage: float, answer: Answer) -> None:
        """The outcome ``row`` against the step-1 intervals served before it: the agent's width factors
        move towards a miss rate of ``1 - coverage``."""
        _, forecasts = answer
        widen = self.widen.get(agent_id) or [0.0] * len(TARGETS)
        for t, (target, column) in enumerate(zip(TARGETS, _TARGET_COLUMNS, strict=True)):
            y = row[column]
            points = forecasts[target].points
            if y != y or not points:  # not observed (NaN), or nothing forecast
                continue
            missed = not points[0].lower <= y <= points[0].upper
            moved = widen[t] + _WIDEN_STEP * ((1.0 if missed else 0.0) - (1.0 - coverage))
            widen[t] = max(-_WIDEN_LIMIT, min(_WIDEN_LIMIT, moved))
        self.widen[agent_id] = widen

    def advance(self, seq: int) -> None:
        self.applied_seq = max(self.applied_seq, seq)

    def forecast(self, agent_id: str, horizon: int, coverage: float, *, serve: bool = True) -> Answer | None:
        """``(model version, forecasts by target)`` from the champion that serves the agent, or None.
        ``serve``: the answer goes to a client, and the agent's next outcome scores it (its width
        factors learn from it); False: a look that teaches nothing."""
        served = self._models.get(agent_id) or self._models.get("")
        history = self.agents.get(agent_id)
        if served is None or history is None or served.model.horizon < horizon:
            return None
        cached = self._cache.get(agent_id)
        if cached is None:
            cached = self._cache[agent_id] = _Cached(*_predict(served.model, history), {})
        if cached.predicted is None:
            return None
        key = (horizon, coverage)
        answer = cached.answers.get(key)
        if answer is None:
            if len(cached.answers) >= _ANSWERS_PER_AGENT:
                cached.answers.clear()
            widen = self.widen.get(agent_id)
            answer = cached.answers[key] = served.answer(cached.predicted, cached.scales, horizon, coverage, widen)
        if serve:
            self._served[agent_id] = (coverage, answer)
        return answer

    def _needed_from(self, times: npt.NDArray[np.float64]) -> int:
        """The first of an agent's rows that some champion's window still reads."""
        return min((served.model.history_start(times) for served in self._models.values()), default=len(times))


_NO_SCALES = np.ones(len(TARGETS))


def _predict(model: TrainedModel, history: History) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64]]:
    """The forecast ``[H, T]`` of the agent's current window and the window's target scales ``[T]``."""
    times, rows = history.view()
    start = model.history_start(times)
    if start == 0 and history.dropped and model.grid_s is not None:
        return None, _NO_SCALES  # its first bucket may have lost events: not the window training would build
    # What an outcome did not observe is carried forward from the rows before, as training does;
    # the history keeps it as NaN, so a late event fills the rows after it as it would have in time.
    filled = fill_forward(rows.copy(), history.carried)
    window = model.input_window(times[start:], filled[start:])
    if window is None:
        return None, _NO_SCALES
    predicted, scales = model.predict_scaled(window)  # [H, T], [T]
    return predicted.astype(np.float64), scales.astype(np.float64)


def _quantiles(model: TrainedModel, version: str) -> tuple[npt.NDArray[np.float64] | None, bool]:
    """The champion's interval quantiles and whether they are in window scales: ``interval_quantiles``
    (scale-aware, calibrated on the validation split), else the ``residual_quantiles`` of the test
    split in the targets' units that checkpoints written before carry, else none (unbounded)."""
    from swarmlearn.training import QUANTILE_LEVELS  # torch is loaded already where a champion is

    scaled = bool(model.metadata.get("interval_quantiles"))
    stored = model.metadata.get("interval_quantiles") or model.metadata.get("residual_quantiles") or []
    if not stored:
        return None, False
    quantiles = np.asarray(stored, dtype=np.float64)
    expected = (len(QUANTILE_LEVELS), model.horizon, len(TARGETS))
    if quantiles.shape != expected:
        log.error("champion %s: interval quantiles of shape %s, not %s; unbounded", version, quantiles.shape, expected)
        return None, False
    return quantiles, scaled

"""The champions, loaded for serving: the forecaster process's state.

It holds the registry's champions as ``TrainedModel``s and follows the event log like the online
learners, keeping the latest outcomes of each agent a champion serves (an agent scope's agent; every
agent for a swarm champion) as timestamps and feature rows (``observed_features``, NaN where not
observed) in time order (``History``). Predict asks it for an agent's forecast: the champion of the
agent's own scope, else the swarm's (``""``), if there is one, it forecasts at least the horizon
asked, and the agent has a full window; otherwise it answers None and the daemon falls back to the
online baseline. The window is built by the champion (``TrainedModel.input_window``), as its training
built them: the last L events, or with a time grid the last L buckets, resampled by the same function.

What an agent keeps as its events are learned: at least its last ``_KEEP`` (256) events, and as many
more as any champion's window reaches back (a grid champion's L buckets, and the bucket before them
that they may carry forward), up to ``_MAX_ROWS`` (16,384). An agent filled from the log (below)
starts with what the windows need only.

While the registry has no champion there is nothing to serve, and the forecaster costs next to
nothing: it keeps no history, never imports torch (nor ``swarmlearn.training``), and reads no event;
its process only moves its applied sequence to the log's end (``_worker``). Measured on the daemon
(benchmarks/RESULTS.md, "The forecaster without a champion"): 54 MiB RSS idle and after 5,000 agents,
where it held 346 MiB idle (torch's libraries) and grew about 6.5 KiB an agent.

When a champion comes (a reload after a promotion, or a start with one in the registry), the agents
it serves are filled from the log (``fill``), in slices of ``_FILL_SLICE_S`` that the process
interleaves with queries and learning, as the log's events up to ``applied_seq`` have them; a query
about an agent not filled yet fills it first. An agent is read through the log's per-agent index
(``read_agent_latest``), only what the windows need: twice the longest window's events first, twice
as many while the outcomes do not reach back before the windows or a metric the agent reported is
absent from all the rows before them (its value is carried forward), at most ``_FILL_MOST`` events;
so it forecasts as if the forecaster had learned every event (a metric last reported more than
``_FILL_MOST`` events back is carried as 0). An agent whose history already reaches back before the
windows is not read again. Measured (same section): 0.14 s per 1,000 agents of 20 events, 0.6-1 s
per 1,000 agents of 300-3,000 events (window 50), slices of at most about 3 ms. When no champion is
left (none can be loaded), the histories are dropped.

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
imported here, in the forecaster process once it has a champion, never in the daemon's, nor in the
online learners' (which import this module but never build a ``ChampionState``).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from swarmlearn.events import LIMITS, METRICS, Event
from swarmlearn.features import FEATURE_NAMES, fill_forward, observed_features
from swarmlearn.names import TARGETS
from swarmlearn.online._results import Forecast, Point
from swarmlearn.registry import ModelRegistry, ModelVersion
from swarmlearn.store import agents_after, metric_counts, read_agent_latest

if TYPE_CHECKING:
    from swarmlearn.training import TrainedModel

log = logging.getLogger(__name__)

_MAXIMA = np.asarray([dict(zip(METRICS, LIMITS.metric_maxima(), strict=True))[t] for t in TARGETS])
"""``[T]``: the most each target may be (what events may carry); answers are clipped to [0, this]."""

_KEEP = 256
"""Events kept per agent at least."""
_MAX_ROWS = 16_384
"""Events kept per agent at most, whatever a champion's window would reach back to (about 1 MB)."""
_FORMAT = 5
"""Of the pickled state: 1 kept rows without timestamps in deques, 2 a row for every event (not only
outcomes); both are refused (rebuilt from the log). 4 adds the agents' width factors; a state of 3
is read with none (every agent starts again from the pooled widths). 5 holds histories only of the
agents a champion serves (none without a champion); a state of 3 or 4 is read, and the histories
of agents no champion serves are dropped as it is loaded."""
_READABLE = (3, 4, 5)
_FILL_SLICE_S = 0.0025
"""Filling histories from the log (``fill``) works this long between two looks at the queries."""
_FILL_FIRST_READ = 2
"""A fill first reads this many times the events the windows need (some events are not outcomes)."""
_FILL_MOST = 2 * _MAX_ROWS
"""Events read per agent at most by a fill."""
_LIST_PAGE = 256
"""Agent ids listed at a time for a swarm champion's fill."""
_METRIC_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in METRICS)
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

    @classmethod
    def of(
        cls,
        times: npt.NDArray[np.float64],
        rows: npt.NDArray[np.float32],
        *,
        dropped: bool,
        carried: npt.NDArray[np.float32] | None,
    ) -> History:
        """A history holding ``times [N]`` and ``rows [N, F]`` (in time order), with room for as many
        again at most (a filled agent of 20 events holds 32 rows, not the 64 a new one starts with)."""
        history = cls.__new__(cls)
        capacity = max(8, 1 << len(times).bit_length())
        history.__setstate__(
            {"times": times, "rows": rows, "dropped": dropped, "carried": carried, "capacity": capacity}
        )
        return history

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
        """agent -> its history, for the agents a champion serves only (none without a champion)."""
        self._models: dict[str, _Served] = {}
        """scope -> its champion"""
        self._cache: dict[str, _Cached] = {}
        """agent -> its current forecast; dropped on the agent's next event and on a reload."""
        self.widen: dict[str, list[float]] = {}
        """agent -> its log width factor per target (module docstring), once a forecast was scored."""
        self._served: dict[str, tuple[float, Answer]] = {}
        """agent -> the coverage and answer last served since its last event, to score on the next."""
        self._to_fill: deque[str] = deque()
        """Agents whose histories ``fill`` reads from the log next (module docstring)."""
        self._listing: str | None = None
        """With a swarm champion, the agent id after which the log's agents are still to be listed for
        ``fill`` (None: all listed)."""
        self._filled: set[str] = set()
        """Agents filled (or found full) since the last reload, while a fill is in progress."""
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
        self._to_fill = deque()
        self._listing = None
        self._filled = set()
        self.reload()

    @property
    def follows_log(self) -> bool:
        """Whether any champion is loaded: without one there is nothing to learn, and the forecaster
        process only moves its applied sequence to the log's end (``_worker``)."""
        return bool(self._models)

    @property
    def filling(self) -> bool:
        """Whether some agents' histories are still to be read from the log (``fill``)."""
        return bool(self._to_fill) or self._listing is not None

    def serves(self, agent_id: str) -> bool:
        return "" in self._models or agent_id in self._models

    def reload(self) -> None:
        """Load every scope's champion from the registry (after a promotion or a rollback), forget the
        histories no champion serves any more, and queue the served agents for ``fill``."""
        registry = ModelRegistry(self.registry_root)
        champions = [c for scope in sorted({v.scope for v in registry.versions()}) if (c := registry.champion(scope))]
        self._models = _load(registry, champions) if champions else {}
        self._cache = {}
        self._filled = set()
        if "" in self._models:
            self._to_fill, self._listing = deque(), ""
        else:
            self._to_fill, self._listing = deque(scope for scope in self._models), None
            self.agents = {agent: history for agent, history in self.agents.items() if agent in self._models}
            self._served = {agent: served for agent, served in self._served.items() if agent in self._models}

    def fill(self, db: sqlite3.Connection, budget_s: float = _FILL_SLICE_S) -> None:
        """Read the histories of queued agents from the log for about ``budget_s`` (module docstring)."""
        end = time.perf_counter() + budget_s
        while time.perf_counter() < end:
            if not self._to_fill:
                if self._listing is None:
                    break
                page = agents_after(db, self._listing, _LIST_PAGE)
                self._listing = page[-1] if len(page) == _LIST_PAGE else None
                self._to_fill.extend(page)
                continue
            self._fill_one(db, self._to_fill.popleft())
        if not self.filling:
            self._filled = set()

    def _fill_one(self, db: sqlite3.Connection, agent_id: str) -> None:
        """The agent's history as the log has it up to ``applied_seq``, unless the one held already
        reaches back before every champion's window."""
        if agent_id in self._filled:
            return
        self._filled.add(agent_id)
        history = self.agents.get(agent_id)
        if history is not None and self._needed_from(history.view()[0]) > 0:
            return
        read = _read_history(db, agent_id, self.applied_seq, self._needed_from, self._read_first())
        if read is not None:
            self.agents[agent_id] = read
            self._cache.pop(agent_id, None)

    def _read_first(self) -> int:
        """Events a fill reads first: twice the longest window, and the row before it."""
        return _FILL_FIRST_READ * (1 + max((s.model.window for s in self._models.values()), default=0))

    def learn(self, event: Event, seq: int | None = None) -> tuple[str, ...]:
        if seq is not None:
            if seq <= self.applied_seq:
                return ()
            self.applied_seq = seq
        if not self.serves(event.agent_id):
            return ()
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

    def forecast(
        self, agent_id: str, horizon: int, coverage: float, *, serve: bool = True, db: sqlite3.Connection | None = None
    ) -> Answer | None:
        """``(model version, forecasts by target)`` from the champion that serves the agent, or None.
        ``serve``: the answer goes to a client, and the agent's next outcome scores it (its width
        factors learn from it); False: a look that teaches nothing. ``db``: the log, to fill the
        agent's history first if a fill in progress has not reached it yet."""
        served = self._models.get(agent_id) or self._models.get("")
        if served is not None and db is not None and self.filling:
            self._fill_one(db, agent_id)
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


def _load(registry: ModelRegistry, champions: list[ModelVersion]) -> dict[str, _Served]:
    """The champions, loaded: torch is imported here, only once there is a champion to serve."""
    import torch

    from swarmlearn.training import TrainedModel

    # One window at a time gains nothing from threads, and on a busy machine OpenMP's waiting
    # threads cost more than the work: 180 ms for a small LSTM's forward with 2 threads while
    # the other core was busy, 0.4 ms with 1.
    torch.set_num_threads(1)
    models = {}
    for champion in champions:
        try:
            trained = TrainedModel.load(registry.checkpoint_path(champion))
        except (OSError, ValueError, RuntimeError) as exc:
            log.error(
                "champion %s-v%d of scope %r cannot be loaded: %s",
                champion.kind, champion.version, champion.scope, exc,
            )  # fmt: skip
            continue
        version = f"{champion.kind}-v{champion.version}"
        models[champion.scope] = _Served(trained, version, dict(champion.metrics), *_quantiles(trained, version))
    return models


def _read_history(
    db: sqlite3.Connection, agent_id: str, upto: int, needed_from: _NeededFrom, first: int
) -> History | None:
    """The agent's history from the log's events up to ``upto``, or None if it has no outcome there.

    It reads the agent's latest ``first`` events, twice as many while its outcomes do not reach back
    before the windows (``needed_from``) or some metric the agent reported is missing from every row
    before them (the first rows would carry it forward), until the agent's events or ``_FILL_MOST``
    run out. It keeps the row before the windows (so a grid champion knows its first bucket is whole)
    and carries the older rows' last values (``History.carried``)."""
    counts = metric_counts(db, agent_id)
    never = [column for column, name in zip(_METRIC_COLUMNS, METRICS, strict=True) if not counts.get(name)]
    limit = first
    while True:
        events = read_agent_latest(db, agent_id, upto=upto, limit=limit, text=False)
        outcomes = [(e.timestamp, row) for _, e in events if (row := observed_features(e)) is not None]
        if not outcomes:
            return None
        order = np.argsort([t for t, _ in outcomes], kind="stable")  # time order, as training sorts
        times = np.asarray([t for t, _ in outcomes], dtype=np.float64)[order]
        rows = np.asarray([r for _, r in outcomes], dtype=np.float32)[order]
        whole = len(events) < limit
        start = needed_from(times)
        before = rows[:start]  # what the windows' first rows carry values from
        carried = all(column in never or not np.isnan(before[:, column]).all() for column in _METRIC_COLUMNS)
        if whole or (start > 0 and carried) or limit >= _FILL_MOST:
            break
        limit = min(2 * limit, _FILL_MOST)
    keep = max(0, start - 1, len(times) - _MAX_ROWS)  # beyond _MAX_ROWS, as a learned history would drop
    return History.of(
        times[keep:],
        rows[keep:],
        dropped=keep > 0 or not whole,
        carried=fill_forward(rows[:keep].copy())[-1].copy() if keep else None,
    )


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

"""Serving the torch champion: the forecaster's state (histories, windows, the cache, intervals, snapshots)."""

from __future__ import annotations

import math
import pickle
import sqlite3
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
import torch

from swarmlearn.events import LIMITS, Event
from swarmlearn.features import event_features, fill_forward, observed_features
from swarmlearn.models import LSTMConfig
from swarmlearn.names import TARGETS
from swarmlearn.online import _champions, _snapshot
from swarmlearn.online._champions import ChampionState, History
from swarmlearn.registry import ModelRegistry
from swarmlearn.store import EventStore, open_reader
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import QUANTILE_LEVELS, TrainedModel, TrainingConfig, TrainingPipeline, interval_quantiles
from swarmlearn.training._grid import resample
from tests.daemon.test_training import gappy_stream

TINY = LSTMConfig(hidden_size=16, num_layers=1)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # ChampionState sets one, as the forecaster process does


def train(events: list[Event], **settings: Any) -> TrainedModel:
    config = TrainingConfig(models=(TINY,), max_epochs=1, batch_size=128, **settings)
    model = TrainingPipeline(config).run(events).best
    rng = np.random.default_rng(0)
    residuals = rng.normal(size=(200, model.horizon, len(TARGETS))) * [50.0, 2.0, 0.05]
    scales = np.abs(rng.normal(size=(200, len(TARGETS)))) + 0.5
    model.metadata["interval_quantiles"] = interval_quantiles(residuals, scales)
    return model


@pytest.fixture(scope="module")
def grid_model() -> TrainedModel:
    return train(gappy_stream(1), window=10, horizon=2, grid_s=300.0)


@pytest.fixture(scope="module")
def event_model() -> TrainedModel:
    return train(list(generate_swarm(agents=3, events_per_agent=300, seed=3)), window=20, horizon=3)


def promote(root: Path, model: TrainedModel, scope: str = "") -> TrainedModel:
    """Register and promote ``model`` in the registry at ``root``; returns what a reload loads."""
    registry = ModelRegistry(root)
    version = registry.next_version(scope, model.kind)
    path = root / f"{scope or 'swarm'}-{model.kind}-{version}.pt"
    model.save(path)
    registry.register(scope, model.kind, version, path, metrics=model.metrics, config={})
    registry.promote(scope, model.kind, version)
    return TrainedModel.load(path)


def in_time_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.timestamp)


def resampled_window(model: TrainedModel, events: list[Event]) -> np.ndarray | None:
    """What training's resampling gives for the agent's whole history: the last L buckets."""
    assert model.grid_s is not None
    times = np.asarray([e.timestamp for e in events])
    rows = np.asarray([event_features(e) for e in events], dtype=np.float32)
    grid = resample(times, rows, model.grid_s)
    return grid.rows[-model.window :] if len(grid.rows) >= model.window else None


def test_a_grid_champion_serves_what_its_checkpoint_forecasts(tmp_path: Path, grid_model: TrainedModel) -> None:
    loaded = promote(tmp_path, grid_model)
    assert loaded.grid_s == 300.0
    state = ChampionState(tmp_path)
    events = in_time_order(gappy_stream(1))
    seen: dict[str, list[Event]] = {}
    compared = served = 0
    for seq, event in enumerate(events, start=1):
        state.learn(event, seq)
        mine = seen.setdefault(event.agent_id, [])
        mine.append(event)
        if seq % 7:
            continue
        answer = state.forecast(event.agent_id, 2, 0.9)
        window = resampled_window(loaded, mine)
        compared += 1
        if window is None:
            assert answer is None
            continue
        served += 1
        expected = loaded.predict(window)  # [H, T]
        assert answer is not None and answer[0] == "lstm-v1"
        for t, target in enumerate(TARGETS):
            forecast = answer[1][target]
            assert forecast.kind == "torch:lstm"
            assert [p.value for p in forecast.points] == [float(v) for v in expected[:, t]]
            assert all(p.lower < p.value < p.upper for p in forecast.points)
    assert served > 50 and compared > served
    # The long-lived agent's history was cut (more than 256 events), and its answers stayed exact.
    history = state.agents["all-along"]
    assert history.dropped and history.size < 600
    np.testing.assert_array_equal(
        state.forecast("all-along", 1, 0.9)[1]["latency_ms"].points[0].value,  # type: ignore[index]
        loaded.predict_events(seen["all-along"])[0, 0],
    )


def test_after_dropping_rows_a_metric_is_carried_from_the_agents_whole_history(
    tmp_path: Path, event_model: TrainedModel
) -> None:
    """An agent that stopped reporting throughput after its 10th event: training carries its last
    value forward over the whole history, and so must serving once those rows are dropped (it used to
    fill 0), live and after a snapshot."""
    promote(tmp_path, event_model)
    state = ChampionState(tmp_path)
    events = []
    for i, e in enumerate(in_time_order(list(generate_swarm(agents=1, events_per_agent=700, seed=4)))):
        events.append(e if i < 10 else e._replace(tokens_per_second=None))
        state.learn(events[-1], i + 1)
    history = state.agents[events[0].agent_id]
    assert history.dropped and history.carried is not None
    expected = event_model.predict_events(events)  # [H, T]
    answer = state.forecast(events[0].agent_id, 3, 0.9)
    assert answer is not None
    assert [p.value for p in answer[1]["tokens_per_second"].points] == [float(v) for v in expected[:, 1]]
    restored = pickle.loads(pickle.dumps(state))
    restored.reload()
    again = restored.forecast(events[0].agent_id, 3, 0.9)
    assert again is not None and again[1]["tokens_per_second"].points == answer[1]["tokens_per_second"].points


def test_a_forecast_is_cached_until_the_agents_next_event_or_a_reload(
    tmp_path: Path, event_model: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = promote(tmp_path, event_model)
    forwards: list[int] = []
    predict = TrainedModel.predict_scaled

    def counted(self: TrainedModel, windows: Any) -> Any:
        if self is not loaded:  # the state's own copy, not the reference's
            forwards.append(1)
        return predict(self, windows)

    monkeypatch.setattr(TrainedModel, "predict_scaled", counted)
    events = list(generate_swarm(agents=2, events_per_agent=60, seed=5))
    state = ChampionState(tmp_path)
    for seq, event in enumerate(events[:-2], start=1):
        state.learn(event, seq)
    agent, other = events[-2].agent_id, events[-1].agent_id
    first = state.forecast(agent, 3, 0.9)
    assert first is not None and len(forwards) == 1
    assert state.forecast(agent, 3, 0.9) is first and len(forwards) == 1  # asked again: the same answer
    narrower = state.forecast(agent, 2, 0.5)  # another horizon and coverage: the same forward pass
    assert narrower is not None and len(forwards) == 1
    for target in TARGETS:
        assert [p.value for p in narrower[1][target].points] == [p.value for p in first[1][target].points[:2]]
        assert narrower[1][target].points[0].upper < first[1][target].points[0].upper
    mine = [e for e in events[:-2] if e.agent_id == agent]
    expected = loaded.predict_events(mine)
    assert [p.value for p in first[1]["latency_ms"].points] == [float(v) for v in expected[:, 0]]

    state.learn(events[-1], len(events))  # another agent's event: this one's forecast still holds
    assert state.forecast(agent, 3, 0.9) is first and len(forwards) == 1
    state.learn(events[-2], len(events) - 1)  # an old sequence number: ignored
    assert state.forecast(agent, 3, 0.9) is first
    later = Event(*events[-2][:1], "late-1", events[-2].timestamp + 1.0, *events[-2][3:])
    state.learn(later, len(events) + 1)  # the agent's next event: a new forward pass
    again = state.forecast(agent, 3, 0.9)
    assert again is not None and again is not first and len(forwards) == 2
    expected = loaded.predict_events([*mine, later])  # events[-2] came with an old sequence number
    assert [p.value for p in again[1]["latency_ms"].points] == [float(v) for v in expected[:, 0]]
    state.reload()  # a promotion or a rollback: everything is forecast again
    assert state.forecast(agent, 3, 0.9) is not again and len(forwards) == 3
    assert state.forecast(other, 3, 0.9) is not None and len(forwards) == 4
    assert state.forecast(agent, 4, 0.9) is None  # beyond the champion's horizon: the online baseline's


def reference_offset(quantiles: list[Any], level: float, step: int, target: int) -> float:
    """The scalar interpolation the forecaster used before it was vectorised (and the normal shape's
    extrapolation beyond the outermost levels)."""
    if not quantiles:
        return -math.inf if level < 0.5 else math.inf
    if level <= QUANTILE_LEVELS[0] or level >= QUANTILE_LEVELS[-1]:
        gauss, middle = NormalDist(), quantiles[QUANTILE_LEVELS.index(0.5)][step][target]
        edge, at = (0, QUANTILE_LEVELS[0]) if level <= QUANTILE_LEVELS[0] else (-1, QUANTILE_LEVELS[-1])
        return float(middle + (quantiles[edge][step][target] - middle) * gauss.inv_cdf(level) / gauss.inv_cdf(at))
    for i in range(1, len(QUANTILE_LEVELS)):
        if level <= QUANTILE_LEVELS[i]:
            a, b = QUANTILE_LEVELS[i - 1], QUANTILE_LEVELS[i]
            weight = (level - a) / (b - a)
            low, high = quantiles[i - 1][step][target], quantiles[i][step][target]
            return float(low + weight * (high - low))
    return float(quantiles[-1][step][target])


@pytest.mark.parametrize("coverage", [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995])
def test_intervals_are_the_quantiles_times_the_windows_scale(
    tmp_path: Path, event_model: TrainedModel, coverage: float
) -> None:
    """Scale-aware: the stored quantiles are of residuals in units of each window's target scale, and
    an answer multiplies them by its own window's scale, around the model's own value, within the
    metric's range; finite at every coverage."""
    loaded = promote(tmp_path, event_model)
    state = ChampionState(tmp_path)
    events = list(generate_swarm(agents=1, events_per_agent=30, seed=6))
    for event in events:
        state.learn(event)
    answer = state.forecast(events[0].agent_id, 3, coverage)
    assert answer is not None
    rows = fill_forward(np.asarray([observed_features(e) for e in events], dtype=np.float32))
    predicted, scales = (a.astype(np.float64) for a in loaded.predict_scaled(rows[-loaded.window :]))
    quantiles = event_model.metadata["interval_quantiles"]
    maxima = (LIMITS.max_latency_ms, LIMITS.max_tokens_per_second, 1.0)
    for t, target in enumerate(TARGETS):
        for step, point in enumerate(answer[1][target].points):
            value = float(predicted[step, t])
            low = reference_offset(quantiles, (1 - coverage) / 2, step, t) * scales[t]
            high = reference_offset(quantiles, (1 + coverage) / 2, step, t) * scales[t]
            tolerance = 1e-6 * max(1.0, abs(value))  # float32 forecasts, float64 offsets
            assert point.value == pytest.approx(min(max(value, 0.0), maxima[t]), abs=tolerance)
            assert point.lower == pytest.approx(min(max(value + low, 0.0), maxima[t]), abs=tolerance)
            assert point.upper == pytest.approx(min(max(value + high, 0.0), maxima[t]), abs=tolerance)
            assert math.isfinite(point.lower) and math.isfinite(point.upper)


def test_a_checkpoint_from_before_keeps_its_absolute_intervals(tmp_path: Path, event_model: TrainedModel) -> None:
    """Written before the scale-aware quantiles: ``residual_quantiles`` in the targets' own units."""
    old = TrainedModel(event_model.model, event_model.scaler, metadata={"training": {"grid_s": None}})
    rng = np.random.default_rng(1)
    absolute = rng.normal(size=(200, old.horizon, len(TARGETS))) * [50.0, 2.0, 0.05]
    old.metadata["residual_quantiles"] = np.quantile(absolute, QUANTILE_LEVELS, axis=0).tolist()
    promote(tmp_path, old)
    state = ChampionState(tmp_path)
    for event in generate_swarm(agents=1, events_per_agent=30, seed=6):
        state.learn(event)
    answer = state.forecast("planner", 1, 0.8)
    assert answer is not None
    (point,) = answer[1]["latency_ms"].points
    quantiles = old.metadata["residual_quantiles"]
    assert point.upper - point.value == pytest.approx(reference_offset(quantiles, 0.9, 0, 0))


def test_without_residual_quantiles_the_intervals_are_the_metrics_range(
    tmp_path: Path, event_model: TrainedModel
) -> None:
    bare = TrainedModel(event_model.model, event_model.scaler, metadata={"training": {"grid_s": None}})
    promote(tmp_path, bare, scope="solo")
    state = ChampionState(tmp_path)
    for event in generate_swarm(agents=1, events_per_agent=30, seed=6):
        state.learn(Event("solo", *event[1:]))
    answer = state.forecast("solo", 1, 0.9)
    assert answer is not None
    (point,) = answer[1]["latency_ms"].points
    assert point.lower == 0.0 and point.upper == LIMITS.max_latency_ms


def test_history_keeps_time_order_and_what_champions_need(
    tmp_path: Path, grid_model: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History()
    stamps = [5.0, 1.0, 3.0, 3.0, 9.0, 0.5, 3.0]  # late events go after equal timestamps, as a stable sort
    for i, stamp in enumerate(stamps):
        history.add(stamp, (float(i),) * 13, lambda times: len(times))
    times, rows = history.view()
    assert times.tolist() == sorted(stamps)
    assert rows[:, 0].tolist() == [5.0, 1.0, 2.0, 3.0, 6.0, 0.0, 4.0]

    # Without a champion no agent keeps anything (a champion's fill reads the log when one comes).
    metrics = gappy_stream()[0][3:]
    state = ChampionState(tmp_path)
    for i in range(1000):
        state.learn(Event("a", str(i), 1_767_225_600.0 + i, *metrics), i + 1)
    assert state.agents == {} and state.applied_seq == 1000 and not state.follows_log
    # A grid champion keeps what its window reaches back to: here 10 buckets of 300 s at one event a
    # second, about 3,000 events; beyond the cap it answers None rather than a window it cannot rebuild.
    promote(tmp_path, grid_model)
    for cap, served in ((_champions._MAX_ROWS, True), (1000, False)):
        monkeypatch.setattr(_champions, "_MAX_ROWS", cap)
        state = ChampionState(tmp_path)
        events = [Event("a", str(i), 1_767_225_600.0 + i, *metrics) for i in range(6000)]
        for event in events:
            state.learn(event)
        assert state.agents["a"].dropped and state.agents["a"].size <= 2 * cap
        answer = state.forecast("a", 1, 0.9)
        assert (answer is not None) == served
        if answer is not None:
            expected = grid_model.predict_events(events)[0, 0]
            assert answer[1]["latency_ms"].points[0].value == float(expected)


def test_the_state_survives_a_snapshot_and_refuses_the_old_format(
    tmp_path: Path, grid_model: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote(tmp_path, grid_model)
    state = ChampionState(tmp_path)
    for seq, event in enumerate(in_time_order(gappy_stream(1)), start=1):
        state.learn(event, seq)
    path = tmp_path / "forecaster.snapshot"
    _snapshot.save(path, {"forecaster": state}, anchor=_snapshot.Anchor(0, "", ""), fingerprint="f")
    loaded, _ = _snapshot.load(path, fingerprint="f", anchor_at=lambda seq: None)
    again = loaded["forecaster"]  # type: ignore[index]
    assert again.applied_seq == state.applied_seq and set(again.agents) == set(state.agents)
    for agent in state.agents:
        assert again.forecast(agent, 2, 0.9) == state.forecast(agent, 2, 0.9)
        np.testing.assert_array_equal(again.agents[agent].view()[1], state.agents[agent].view()[1])
    # The first format kept rows without timestamps: refused, so the forecaster rebuilds from the log.
    old = {"registry_root": str(tmp_path), "applied_seq": 5, "agents": {"a": deque([(1.0,) * 13], maxlen=256)}}
    monkeypatch.setattr(ChampionState, "__getstate__", lambda self: old)
    _snapshot.save(path, {"forecaster": state}, anchor=_snapshot.Anchor(0, "", ""), fingerprint="f")
    with pytest.raises(_snapshot.SnapshotRejected, match="format 1"):
        _snapshot.load(path, fingerprint="f", anchor_at=lambda seq: None)
    assert pickle.loads(pickle.dumps(History())).size == 0


def test_an_agents_intervals_adapt_until_they_cover_what_it_asks(tmp_path: Path, event_model: TrainedModel) -> None:
    """The pooled quantiles fit no agent in particular; served forecasts scored on the agent's next
    outcomes move its width factors until its misses are the share asked for (ACI per agent)."""
    promote(tmp_path, event_model)
    state = ChampionState(tmp_path)
    pooled = ChampionState(tmp_path)  # the same champion, never asked: its intervals stay pooled
    events = list(generate_swarm(agents=1, events_per_agent=2_000, seed=11))
    hits: list[bool] = []
    pooled_hits: list[bool] = []
    for event in events:
        answer, fixed = state.forecast(event.agent_id, 1, 0.8), pooled.forecast(event.agent_id, 1, 0.8)
        if answer is not None and fixed is not None and event.succeeded:
            for served, out in ((answer, hits), (fixed, pooled_hits)):
                (point,) = served[1]["latency_ms"].points
                out.append(point.lower <= event.latency_ms <= point.upper)
        pooled._served.clear()  # as if its forecasts had not been served
        state.learn(event)
        pooled.learn(event)
    late, pooled_late = hits[-800:], pooled_hits[-800:]
    assert abs(sum(pooled_late) / len(pooled_late) - 0.8) > 0.1, "the pooled widths happen to fit: no test"
    assert sum(late) / len(late) == pytest.approx(0.8, abs=0.06)
    assert set(state.widen) == {events[0].agent_id} and not pooled.widen
    # The factors are in the snapshot: they cannot be replayed from the log.
    again = pickle.loads(pickle.dumps(state))
    assert again.widen == state.widen
    assert again.forecast(events[0].agent_id, 1, 0.8) == state.forecast(events[0].agent_id, 1, 0.8)


def write_log(path: Path, events: list[Event]) -> sqlite3.Connection:
    """The events in a real event log at ``path``, in this order; a reader of it."""
    store = EventStore(path)
    try:
        assert store.submit(events).result(30).accepted == len(events)
    finally:
        store.close()
    return open_reader(path)


def filled(state: ChampionState, db: sqlite3.Connection) -> ChampionState:
    while state.filling:
        state.fill(db)
    return state


def assert_forecasts_alike(state: ChampionState, live: ChampionState, agents: set[str], horizon: int) -> int:
    """Both states forecast every agent alike; returns how many agents had a forecast."""
    answered = 0
    for agent in sorted(agents):
        want = live.forecast(agent, horizon, 0.9, serve=False)
        assert state.forecast(agent, horizon, 0.9, serve=False) == want, agent
        answered += want is not None
    return answered


@pytest.mark.parametrize("grid", [False, True])
def test_a_champion_promoted_after_the_events_fills_their_histories_from_the_log(
    tmp_path: Path, grid: bool, event_model: TrainedModel, grid_model: TrainedModel
) -> None:
    """Without a champion nothing is kept; once one is promoted, the agents' histories are read from
    the log (only what the windows need), and each agent forecasts as a forecaster that learned
    every event would: the same window, the same carried values."""
    model, horizon = (grid_model, 2) if grid else (event_model, 3)
    events = in_time_order(gappy_stream(1)) if grid else list(generate_swarm(agents=4, events_per_agent=300, seed=8))
    if not grid:  # one agent stopped reporting throughput long ago: its value is carried from far back
        events = [e._replace(tokens_per_second=None) if e.agent_id == events[0].agent_id and i > 40 else e
                  for i, e in enumerate(events)]  # fmt: skip
    db = write_log(tmp_path / "events.sqlite3", events)
    state = ChampionState(tmp_path / "models")
    state.advance(len(events))
    assert state.agents == {} and not state.follows_log and not state.filling

    promote(tmp_path / "models", model)
    live = ChampionState(tmp_path / "models")
    for seq, event in enumerate(events, start=1):
        live.learn(event, seq)
    state.reload()
    assert state.follows_log and state.filling and state.agents == {}
    filled(state, db)
    agents = {e.agent_id for e in events}
    assert set(state.agents) == agents
    assert assert_forecasts_alike(state, live, agents, horizon) == len(agents) - grid  # "few": too few buckets
    if not grid:  # the rows the window needs and the one before, far fewer than the live forecaster keeps
        assert all(h.size == model.window + 1 for h in state.agents.values())
    # New events after the fill are learned as they come, as the live forecaster does.
    more = list(generate_swarm(agents=2, events_per_agent=30, seed=9)) if not grid else []
    for seq, event in enumerate(more, start=len(events) + 1):
        state.learn(event, seq)
        live.learn(event, seq)
    assert_forecasts_alike(state, live, agents, horizon)


def test_an_agent_champion_fills_its_agent_only_and_a_query_does_not_wait_for_the_fill(
    tmp_path: Path, event_model: TrainedModel
) -> None:
    events = list(generate_swarm(agents=3, events_per_agent=100, seed=8))
    agents = sorted({e.agent_id for e in events})
    db = write_log(tmp_path / "events.sqlite3", events)
    promote(tmp_path / "models", event_model, scope=agents[0])
    state = ChampionState(tmp_path / "models")
    state.advance(len(events))
    assert state.filling
    # Asked before the fill reached it, the agent is filled there and then.
    answer = state.forecast(agents[0], 1, 0.9, db=db)
    assert answer is not None and answer[0] == "lstm-v1"
    filled(state, db)
    assert set(state.agents) == {agents[0]}
    for seq, event in enumerate(events, start=len(events) + 1):
        state.learn(event._replace(event_id=f"again-{seq}"), seq)
    assert set(state.agents) == {agents[0]}  # the others' events are not kept: no champion serves them


def test_when_no_champion_is_left_the_histories_are_dropped(tmp_path: Path, event_model: TrainedModel) -> None:
    """The registry keeps a champion until another replaces it; a champion that can no longer be
    loaded (its checkpoint gone) leaves none to serve: the histories go, and the state learns nothing."""
    events = list(generate_swarm(agents=3, events_per_agent=100, seed=8))
    db = write_log(tmp_path / "events.sqlite3", events)
    promote(tmp_path / "models", event_model)
    state = ChampionState(tmp_path / "models")
    state.advance(len(events))
    filled(state, db)
    assert len(state.agents) == 3
    for checkpoint in (tmp_path / "models").glob("*.pt"):
        checkpoint.unlink()
    state.reload()
    assert state.agents == {} and not state.follows_log and not state.filling
    state.learn(events[0]._replace(event_id="late"), len(events) + 1)
    assert state.agents == {} and state.applied_seq == len(events) + 1


def test_a_snapshot_of_format_4_is_read_with_only_the_served_agents_histories(
    tmp_path: Path, event_model: TrainedModel
) -> None:
    """Format 4 kept every agent's history; loaded, those no champion serves are dropped."""
    events = list(generate_swarm(agents=3, events_per_agent=100, seed=8))
    agents = sorted({e.agent_id for e in events})
    promote(tmp_path, event_model)
    state = ChampionState(tmp_path)
    for seq, event in enumerate(events, start=1):
        state.learn(event, seq)
    old = {**state.__getstate__(), "format": 4}
    promote(tmp_path, event_model, scope=agents[1])
    (tmp_path / "registry.json").write_text(
        (tmp_path / "registry.json").read_text().replace('"": [', '"unused": [')
    )  # the swarm champion gone: only agents[1]'s remains
    again = ChampionState.__new__(ChampionState)
    again.__setstate__(old)
    assert set(again.agents) == {agents[1]} and again.applied_seq == len(events)
    assert again.forecast(agents[1], 1, 0.9) is not None


def test_values_and_bounds_stay_within_each_metrics_range(tmp_path: Path, event_model: TrainedModel) -> None:
    """A success rate above 1 or a latency below 0 is no forecast: the champion's values and bounds are
    clipped to the range events may carry, as the online aggregate's are (a wide interval on an agent
    that never fails gave an upper bound of 1.001)."""
    promote(tmp_path, event_model)
    state = ChampionState(tmp_path)
    events = [e._replace(success_rate=1.0) for e in generate_swarm(agents=1, events_per_agent=30, seed=6)]
    for event in events:
        state.learn(event)
    answer = state.forecast(events[0].agent_id, 3, 0.99)
    assert answer is not None
    success = answer[1]["success_rate"].points
    assert max(p.upper for p in success) == 1.0  # reached, and clipped there
    for target, maximum in zip(TARGETS, (LIMITS.max_latency_ms, LIMITS.max_tokens_per_second, 1.0), strict=True):
        for point in answer[1][target].points:
            assert 0.0 <= point.lower <= point.value <= point.upper <= maximum

"""The online layer on real River: event semantics, robust learning, aggregation, intervals, drift,
snapshots. In-process (the learner's own classes); the daemon-level tests are in test_online_daemon."""

from __future__ import annotations

import math
import pickle
import random
import subprocess
import sys
from collections.abc import Iterator

import pytest

import swarmlearn.online as online
from swarmlearn.errors import InvalidArgument, UnknownAgent
from swarmlearn.events import Event, EventType
from swarmlearn.online import EXPERTS, AgentLearner, OnlineConfig, OnlineState
from swarmlearn.online._aggregate import MLPoly
from swarmlearn.synthetic import generate_swarm

START = 1_767_225_600.0


def level_stream(n: int, *, shift_at: int | None = None, seed: int = 0, agent: str = "a") -> Iterator[Event]:
    """One agent, latency around 1000 ms (2000 from ``shift_at`` on), with a daily cycle and noise."""
    rng = random.Random(seed)
    for i in range(n):
        level = 2000.0 if shift_at is not None and i >= shift_at else 1000.0
        daily = 1.0 + 0.2 * math.sin(2 * math.pi * i / 1440)
        yield Event(
            agent,
            f"{agent}-{i}",
            START + 60.0 * i,
            EventType.PERFORMANCE_UPDATE,
            level * daily * rng.lognormvariate(0, 0.2),
            40.0 * rng.lognormvariate(0, 0.1),
            512.0,
            30.0,
            1.0 - 0.05 * rng.random(),
        )


def learner_after(events: list[Event]) -> AgentLearner:
    state = OnlineState()
    for event in events:
        state.learn(event)
    return state.agents[events[0].agent_id]


def test_public_names() -> None:
    assert sorted(online.__all__) == sorted(
        [
            "EXPERTS",
            "LOG_TARGETS",
            "AgentLearner",
            "AgentStats",
            "Answer",
            "BaselineError",
            "Drift",
            "Forecast",
            "OnlineConfig",
            "OnlineLearner",
            "OnlineState",
            "Point",
            "TargetStats",
            "WorkerSettings",
        ]
    )
    for name in online.__all__:  # the lazy ones too
        assert getattr(online, name) is not None


def test_the_daemon_process_does_not_import_river() -> None:
    """River costs about a second of start-up; only the learner process needs it."""
    code = "import sys, swarmlearn.server, swarmlearn.cli; assert 'river' not in sys.modules, 'river imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the learner's contract ------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 12])
def test_learner_contract(horizon: int) -> None:
    """An agent's learner learns, pickles, is deterministic, respects the horizon, answers finite values,
    and every expert is reported with a weight; the weights of a target sum to 1."""
    events = list(generate_swarm(agents=3, events_per_agent=400, seed=4))
    first, second = OnlineState(), OnlineState()
    for event in events[:600]:
        first.learn(event)
        second.learn(event)
    restored: OnlineState = pickle.loads(pickle.dumps(first))
    for event in events[600:]:
        for state in (first, second, restored):
            state.learn(event)
    for agent_id in first.agents:
        answer = first.predict(agent_id, horizon, 0.8)
        assert answer == second.predict(agent_id, horizon, 0.8) == restored.predict(agent_id, horizon, 0.8)
        for target, forecast in answer.items():
            assert forecast.kind == "online:aggregate"
            assert len(forecast.points) == horizon
            for p in forecast.points:
                assert all(math.isfinite(v) for v in p), (target, p)
                assert p.lower <= p.value <= p.upper
            stats = first.stats(agent_id).targets[target]
            assert set(stats.baselines) == set(EXPERTS)
            assert sum(e.weight for e in stats.baselines.values()) == pytest.approx(1.0)
            assert stats.best == "online:" + max(stats.baselines, key=lambda k: stats.baselines[k].weight)


def test_ml_poly_moves_weight_to_the_expert_that_is_right() -> None:
    aggregation = MLPoly([0.5, 0.5], forget=0.0, prior_events=0.0)
    for _ in range(200):
        forecasts = [1.0, 3.0]  # the truth is 1
        aggregate, _ = aggregation.combine(forecasts, 0)
        aggregation.update(forecasts, aggregate, 1.0 if aggregate > 1.0 else -1.0)
    assert aggregation.weights[0] > 0.95
    assert sum(aggregation.weights) == pytest.approx(1.0)


def test_aggregate_beats_naive_and_stays_near_the_best_expert() -> None:
    """The regret bound at work on the synthetic swarm: what is answered is better than the last value
    and not much worse than the best expert in hindsight, agent by agent."""
    state = OnlineState()
    for event in generate_swarm(agents=6, events_per_agent=1500, seed=2):
        state.learn(event)
    for agent_id in state.agents:
        for target in ("latency_ms", "tokens_per_second"):
            stats = state.stats(agent_id).targets[target]
            naive = stats.baselines["naive"].mae
            best = min(e.mae for e in stats.baselines.values() if e.mae is not None)
            assert stats.answer_mae is not None and naive is not None
            if naive == 0:  # the retriever streams no tokens
                continue
            assert stats.answer_mae < naive, (agent_id, target)
            assert stats.answer_mae < 1.05 * best, (agent_id, target)


# -- event semantics ---------------------------------------------------------------------------------


def test_task_started_and_prompt_generated_do_not_change_the_latency_forecast() -> None:
    events = list(level_stream(200))
    state = OnlineState()
    for event in events:
        state.learn(event)
    before = state.predict("a", 3, 0.8)
    for i, kind in enumerate((EventType.TASK_STARTED, EventType.PROMPT_GENERATED) * 5):
        # What a client built with the old make_event would send: zeros it never measured.
        state.learn(Event("a", f"x-{i}", START + 1e6 + i, kind, 0.0, 0.0, 0.0, 0.0, 0.0, prompt_text="hi"))
    after = state.predict("a", 3, 0.8)
    assert after == before
    assert state.stats("a").events == 210
    assert state.stats("a").features["inter_arrival_s.mean"] > 0  # arrivals still count


def test_failed_outcomes_teach_success_but_not_latency() -> None:
    events = list(level_stream(200))
    state = OnlineState()
    for event in events:
        state.learn(event)
    latency_before = state.predict("a")["latency_ms"]
    success_before = state.predict("a")["success_rate"].points[0].value
    for i in range(10):  # failures that report latency 0
        state.learn(Event("a", f"f-{i}", START + 1e6 + i, EventType.TASK_COMPLETED, 0.0, 0.0, None, None, 0.0))
    assert state.predict("a")["latency_ms"] == latency_before
    assert state.predict("a")["success_rate"].points[0].value < success_before - 0.2
    # Configurable: with learn_failed_outcomes the failures' latencies are learned too.
    taught = OnlineState(OnlineConfig(learn_failed_outcomes=True))
    for event in events:
        taught.learn(event)
    for i in range(10):
        taught.learn(Event("a", f"f-{i}", START + 1e6 + i, EventType.TASK_COMPLETED, 0.0, 0.0, None, None, 0.0))
    assert taught.predict("a")["latency_ms"].points[0].value < latency_before.points[0].value


def test_an_unset_metric_is_not_learned_as_zero() -> None:
    state = OnlineState()
    for i, event in enumerate(level_stream(100)):
        # Latency only: throughput and success were never set.
        state.learn(event._replace(tokens_per_second=None, success_rate=None, memory_usage_mb=None))
        if i == 0:
            assert state.predict("a")["tokens_per_second"].points == []
    answer = state.predict("a")
    assert answer["tokens_per_second"].kind == "online:none" and answer["tokens_per_second"].points == []
    assert answer["success_rate"].points == []
    assert 500 < answer["latency_ms"].points[0].value < 2000
    stats = state.stats("a")
    assert set(stats.targets) == {"latency_ms"}
    assert "tokens_per_second.mean" not in stats.features and "memory_usage_mb.mean" not in stats.features
    assert "last.tokens_per_second" not in stats.features
    assert stats.features["cpu_usage_percent.mean"] == 30.0


# -- robustness ----------------------------------------------------------------------------------------


def test_an_artefact_moves_the_forecast_a_bounded_amount_and_the_state_recovers() -> None:
    events = list(level_stream(400, seed=3))
    clean = learner_after(events)
    poisoned = OnlineState()
    for event in events[:300]:
        poisoned.learn(event)
    before = poisoned.predict("a")["tokens_per_second"].points[0].value
    # A tokens/s a thousand times the usual, from a near-zero generation time.
    artefact = events[300]._replace(tokens_per_second=events[300].tokens_per_second * 1000, latency_ms=0.5)
    poisoned.learn(artefact)
    after = poisoned.predict("a")["tokens_per_second"].points[0].value
    assert after < 2.0 * before  # bounded: the value was winsorised, whatever its size
    for event in events[301:]:
        poisoned.learn(event)
    recovered = poisoned.agents["a"].stats().targets["tokens_per_second"]
    reference = clean.stats().targets["tokens_per_second"]
    final = poisoned.predict("a")["tokens_per_second"].points[0].value
    assert final == pytest.approx(clean.predict()["tokens_per_second"].points[0].value, rel=0.05)
    # Only the artefact's own error differs: nothing learned kept growing from it.
    assert recovered.answer_mae is not None and reference.answer_mae is not None
    assert recovered.answer_mae < reference.answer_mae + 2 * artefact.tokens_per_second / 99


def test_a_level_shift_is_learned_within_a_few_events() -> None:
    learner = learner_after(list(level_stream(600, shift_at=300, seed=1)))
    assert 1600 < learner.predict()["latency_ms"].points[0].value < 2500


def test_extreme_values_leave_every_reported_figure_finite() -> None:
    """The largest and smallest values validation accepts, alternating, after a normal history."""
    state = OnlineState()
    events = list(level_stream(100))
    for event in events:
        state.learn(event)
    for i in range(50):
        value = 1e9 if i % 2 else 0.0
        state.learn(
            events[0]._replace(event_id=f"x{i}", timestamp=START + 1e6 + i, latency_ms=value, tokens_per_second=value)
        )
    for horizon in (1, 48):
        for forecast in state.predict("a", horizon, 0.99).values():
            assert all(math.isfinite(v) for p in forecast.points for v in p)
            assert all(0.0 <= p.lower <= p.upper <= 1e9 for p in forecast.points)
    stats = state.stats("a")
    for target in stats.targets.values():
        assert target.answer_mae is not None and math.isfinite(target.answer_mae)
        assert all(
            e.mae is not None and math.isfinite(e.mae) and math.isfinite(e.weight) for e in target.baselines.values()
        )
    assert all(math.isfinite(v) for v in stats.features.values())


# -- intervals and drift ---------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 12])
def test_intervals_cover_their_nominal_share_of_held_back_outcomes(horizon: int) -> None:
    """Step h is the h-th observation of the target after the forecast: for latency and throughput
    the h-th successful outcome, for success the h-th outcome."""
    events = [e for e in generate_swarm(agents=3, events_per_agent=2500, seed=3) if e.agent_id == "coder"]
    observing = {
        "latency_ms": [i for i, e in enumerate(events) if e.succeeded],
        "success_rate": list(range(len(events))),
    }
    observing["tokens_per_second"] = observing["latency_ms"]
    for coverage, tolerance in ((0.8, 0.05), (0.95, 0.03)):
        learner = AgentLearner()
        hits = dict.fromkeys(observing, 0)
        totals = dict.fromkeys(observing, 0)
        for i, event in enumerate(events):
            if i >= 800 and i % 5 == 0:
                forecast = learner.predict(horizon, coverage)
                for target, positions in observing.items():
                    later = [events[j] for j in positions if j >= i][:horizon]
                    if len(later) < horizon:
                        continue
                    points = forecast[target].points
                    hits[target] += sum(
                        p.lower <= getattr(e, target) <= p.upper for p, e in zip(points, later, strict=True)
                    )
                    totals[target] += horizon
            learner.learn(event)
        for target in observing:
            assert hits[target] / totals[target] == pytest.approx(coverage, abs=tolerance), (target, coverage)


def test_coverage_recovers_after_a_level_shift() -> None:
    """80 % intervals, one step ahead: in the 100 events after a doubling of latency, most are covered."""
    for seed in range(4):
        state = OnlineState()
        hits = []
        for i, event in enumerate(level_stream(1200, shift_at=800, seed=seed)):
            if i:
                point = state.predict("a", 1, 0.8)["latency_ms"].points[0]
                if 800 <= i < 900:
                    hits.append(point.lower <= event.latency_ms <= point.upper)
            state.learn(event)
        assert sum(hits) / len(hits) >= 0.7, seed


def test_drift_found_soon_after_a_level_shift_and_not_without_one() -> None:
    for seed in (0, 1, 2, 11):
        shift_at, bound = 1500, 25
        shifted = OnlineState()
        found_after: int | None = None
        for i, event in enumerate(level_stream(3000, shift_at=shift_at, seed=seed)):
            drifted = shifted.learn(event)
            if found_after is None and drifted:
                assert drifted == ("latency_ms",)
                found_after = i - shift_at
        assert found_after is not None and 0 <= found_after <= bound, seed
        stats = shifted.stats("a").targets["latency_ms"]
        assert stats.last_drift_timestamp is not None and stats.last_drift_timestamp >= START + 60.0 * shift_at

        stationary = OnlineState()
        for event in level_stream(3000, seed=seed):
            stationary.learn(event)
        assert all(target.drift_count == 0 for target in stationary.stats("a").targets.values()), seed


# -- snapshots, first events, the swarm prior ------------------------------------------------------------


def test_restored_mid_stream_predicts_exactly_as_the_original() -> None:
    events = list(generate_swarm(agents=4, events_per_agent=600, seed=5))
    original = OnlineState()
    for seq, event in enumerate(events[:1200], start=1):
        original.learn(event, seq)
    snapshot = pickle.dumps(original)
    restored: OnlineState = pickle.loads(snapshot)
    assert restored.applied_seq == 1200
    # The replay may start before the snapshot's sequence; what it already holds is skipped.
    for seq, event in enumerate(events[1100:], start=1101):
        restored.learn(event, seq)
    for seq, event in enumerate(events[1200:], start=1201):
        original.learn(event, seq)
        if seq % 7 == 0:  # asking fills caches; what is answered must not depend on when it was asked
            original.predict(event.agent_id, 12, 0.95)
    assert restored.applied_seq == original.applied_seq == len(events)
    for agent_id in original.agents:
        for horizon, coverage in ((1, 0.8), (12, 0.95)):
            assert restored.predict(agent_id, horizon, coverage) == original.predict(agent_id, horizon, coverage)
        assert restored.stats(agent_id) == original.stats(agent_id)


def test_answers_from_the_first_event_with_finite_intervals() -> None:
    state = OnlineState()
    event = next(level_stream(1))
    state.learn(event)
    latency = state.predict("a", horizon=3, coverage=0.9)["latency_ms"]
    assert latency.kind == "online:aggregate"
    assert latency.mae is None
    assert [p.value for p in latency.points] == pytest.approx([event.latency_ms] * 3)
    assert all(0 < p.lower < p.value < p.upper < math.inf for p in latency.points)
    assert state.stats("a").events == 1


def test_a_new_agent_starts_from_the_swarms_prior() -> None:
    """After a swarm of agents with tight latencies, a newcomer's first intervals are about as tight."""
    state = OnlineState()
    for agent in range(8):
        for event in level_stream(300, seed=agent, agent=f"old-{agent}"):
            state.learn(event)
    newcomer = next(level_stream(1, seed=99, agent="new"))
    state.learn(newcomer)
    point = state.predict("new", 1, 0.8)["latency_ms"].points[0]
    old = state.predict("old-0", 1, 0.8)["latency_ms"].points[0]
    assert (point.upper - point.lower) / point.value < 1.5 * (old.upper - old.lower) / old.value
    fresh = OnlineState()
    fresh.learn(newcomer)
    alone = fresh.predict("new", 1, 0.8)["latency_ms"].points[0]
    assert (point.upper - point.lower) < (alone.upper - alone.lower)


def test_unknown_agent_and_bad_arguments() -> None:
    state = OnlineState()
    with pytest.raises(UnknownAgent):
        state.predict("nobody")
    state.learn(next(level_stream(1)))
    with pytest.raises(InvalidArgument, match="horizon"):
        state.predict("a", horizon=0)
    with pytest.raises(InvalidArgument, match="horizon"):
        state.predict("a", horizon=OnlineConfig().max_horizon + 1)
    with pytest.raises(InvalidArgument, match="coverage"):
        state.predict("a", coverage=1.0)

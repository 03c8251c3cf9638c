"""Windows, scaling, the training loop and evaluation, on real torch and numpy."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import swarmlearn.training as training
from swarmlearn.events import Event, EventType
from swarmlearn.features import FEATURE_NAMES, event_features
from swarmlearn.models import Forecaster, ForecastShape, LSTMConfig, NBEATSConfig, TCNConfig, build_model
from swarmlearn.names import TARGETS
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import (
    GlobalScaler,
    NotEnoughData,
    Progress,
    Scaling,
    Split,
    StreamDataLoader,
    TrainedModel,
    TrainingCancelled,
    TrainingConfig,
    TrainingPipeline,
    WindowScaler,
    evaluate,
    fit,
    scaler_from_state,
    seeded,
)
from swarmlearn.training._data import TARGET_CHANNELS
from swarmlearn.training._grid import history_start, last_window, resample, temporal
from swarmlearn.training._loop import uses_bfloat16

START = 1_767_225_600.0
TINY = LSTMConfig(hidden_size=16, num_layers=1)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def uneven_stream(seed: int = 0) -> list[Event]:
    """Three agents with different rates and spans, every latency distinct: one all along, one twice
    as often in the last tenth only, one with a few events early on."""
    rng = random.Random(seed)
    events = []
    for agent, start, step, count in (
        ("all-along", 0.0, 60.0, 600),
        ("late", 33_000.0, 30.0, 100),
        ("few", 9_000.0, 60.0, 40),
    ):
        for i in range(count):
            events.append(
                Event(
                    agent,
                    f"{agent}-{i}",
                    START + start + step * i,
                    EventType.PERFORMANCE_UPDATE,
                    rng.uniform(100, 1000),
                    rng.uniform(10, 50),
                    512.0,
                    30.0,
                    rng.uniform(0.8, 1.0),
                )
            )
    rng.shuffle(events)  # the loader sorts each agent's events by time
    return events


@pytest.fixture(scope="module")
def swarm() -> list[Event]:
    return list(generate_swarm(agents=3, events_per_agent=400, seed=2))


@pytest.fixture(scope="module")
def swarm_data(swarm: list[Event]) -> StreamDataLoader:
    return StreamDataLoader(swarm, TrainingConfig(window=20, horizon=2))


def test_public_names() -> None:
    assert sorted(training.__all__) == sorted(
        [
            "JOB_SETTINGS",
            "QUANTILE_LEVELS",
            "Comparison",
            "Evaluation",
            "GlobalScaler",
            "Loss",
            "ModelReport",
            "NotEnoughData",
            "PipelineResult",
            "Progress",
            "Replay",
            "ReplayLimits",
            "ReplaySource",
            "ScaledBatch",
            "Scaler",
            "Scaling",
            "Split",
            "StreamDataLoader",
            "TargetMetrics",
            "TrainResult",
            "TrainedModel",
            "TrainingCancelled",
            "TrainingConfig",
            "TrainingPipeline",
            "WindowScaler",
            "compare",
            "diebold_mariano",
            "evaluate",
            "fit",
            "forecast",
            "interval_coverage",
            "interval_offsets",
            "interval_quantiles",
            "read_replay",
            "resolve_device",
            "scaler_from_state",
            "seeded",
        ]
    )


def test_windows_are_views_of_the_rows() -> None:
    data = StreamDataLoader(uneven_stream(), TrainingConfig(window=10, horizon=3))
    assert np.shares_memory(data.windows, data.features)
    assert data.windows.shape == (len(data.features) - 13 + 1, 13, len(data.features[0]))
    assert data.windows.nbytes > 10 * data.features.nbytes  # what a copy would have cost
    for start in (0, 5, len(data.windows) - 1):
        assert np.array_equal(data.windows[start], data.features[start : start + 13])
    # Each agent's rows are in time order, so a window is consecutive events of one agent.
    for start in data.starts[Split.TRAIN]:
        assert len(set(data.row_agent[start : start + 13])) == 1
        assert np.all(np.diff(data.timestamps[start : start + 13]) > 0)


def test_the_split_never_leaks_the_future() -> None:
    window, horizon = 10, 3
    data = StreamDataLoader(uneven_stream(), TrainingConfig(window=window, horizon=horizon))
    first_validation, first_test = data.boundaries
    latency = data.features[:, 0]

    def rows(split: Split, part: slice) -> np.ndarray:
        offsets = np.arange(window + horizon)[part]
        return (data.starts[split][:, None] + offsets).ravel()

    everything = slice(None)
    targets = slice(window, None)
    # By time, across agents: every row a training window touches precedes every validation target...
    assert data.timestamps[rows(Split.TRAIN, everything)].max() < first_validation
    assert data.timestamps[rows(Split.VALIDATION, targets)].min() >= first_validation
    # ... and every row a validation window touches precedes every test target.
    assert data.timestamps[rows(Split.VALIDATION, everything)].max() < first_test
    assert data.timestamps[rows(Split.TEST, targets)].min() >= first_test
    # By value (every latency is distinct): no test target is an input or a target of a training or
    # validation window, and no validation target of a training window.
    test_targets = set(latency[rows(Split.TEST, targets)])
    assert test_targets.isdisjoint(latency[rows(Split.TRAIN, everything)])
    assert test_targets.isdisjoint(latency[rows(Split.VALIDATION, everything)])
    assert set(latency[rows(Split.VALIDATION, targets)]).isdisjoint(latency[rows(Split.TRAIN, everything)])
    # The late agent has no training windows (its events all come after the training period's end),
    # the short one only fits in training; every split has windows.
    late = data.agents.index("late")
    assert late not in set(data.window_agents(Split.TRAIN)) and late in set(data.window_agents(Split.TEST))
    assert all(len(s) for s in data.starts.values())


def test_too_few_events_are_refused() -> None:
    events = uneven_stream()[:30]
    with pytest.raises(NotEnoughData, match="windows"):
        StreamDataLoader(events, TrainingConfig(window=20, horizon=1))


@pytest.mark.parametrize("scaling", list(Scaling))
def test_batches_are_the_windows_scaled_as_numpy_does(swarm: list[Event], scaling: Scaling) -> None:
    """The batches (tensors gathered from the rows on the device, with centers and scales computed once
    per split) hold exactly what gathering each batch's windows and scaling them in numpy gives, in the
    order ``rng.permutation`` of the starts gives: the same steps, bit for bit, as before they were tensors."""
    window, horizon = 20, 2
    data = StreamDataLoader(swarm, TrainingConfig(window=window, horizon=horizon, scaling=scaling))
    targets = list(TARGET_CHANNELS)
    for split in Split:
        for shuffle in (None, 7):
            starts = (
                data.starts[split]
                if shuffle is None
                else np.random.default_rng(shuffle).permutation(data.starts[split])
            )
            rng = None if shuffle is None else np.random.default_rng(shuffle)
            batches = list(data.batches(split, batch_size=64, rng=rng))
            assert [len(b.x) for b in batches] == [len(starts[i : i + 64]) for i in range(0, len(starts), 64)]
            for begin, batch in zip(range(0, len(starts), 64), batches, strict=True):
                chosen = starts[begin : begin + 64]
                raw = np.stack([data.features[s : s + window + horizon] for s in chosen])  # [B, L+H, F]
                x, y = raw[:, :window], raw[:, window:, targets]
                center, scale = data.scaler.stats(x)  # [B|1, 1, F]
                np.testing.assert_array_equal(batch.x.numpy(), (x - center) / scale)
                np.testing.assert_array_equal(batch.y.numpy(), (y - center[:, :, targets]) / scale[:, :, targets])
                np.testing.assert_array_equal(
                    batch.center.numpy(), np.broadcast_to(center[:, :, targets], (len(x), 1, 3))
                )
                np.testing.assert_array_equal(
                    batch.scale.numpy(), np.broadcast_to(scale[:, :, targets], (len(x), 1, 3))
                )
                np.testing.assert_allclose(batch.x.numpy() * scale + center, x, rtol=1e-5, atol=1e-4)
        reference = data.scaler.stats(data.windows[data.starts[split], :window])[1][:, 0, targets]
        np.testing.assert_array_equal(
            data.target_scales(split), np.broadcast_to(reference, (len(data.starts[split]), 3))
        )
    # Computed once per split, then kept.
    assert data.window_stats(Split.TRAIN)[1] is data.window_stats(Split.TRAIN)[1]
    # The scaler's state rebuilds it.
    raw = data.windows[data.starts[Split.TEST][:100], :window]
    again = scaler_from_state(data.scaler.state())
    for mine, theirs in zip(again.stats(raw), data.scaler.stats(raw), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_window_scaler_is_robust_and_handles_flat_channels() -> None:
    x = np.zeros((1, 8, 3), dtype=np.float32)
    x[0, :, 0] = [100, 130, 70, 100, 100, 10_000, 100, 130]  # one spike: the median and MAD ignore it
    x[0, :, 1] = [0, 0, 0, 0, 0, 0, 40, 0]  # intermittent (prompt tokens): MAD 0, mean deviation not
    x[0, :, 2] = 7  # constant
    center, scale = WindowScaler([0, 1, 2]).stats(x)
    assert center[0, 0, 0] == 100 and scale[0, 0, 0] == pytest.approx(1.4826 * 15)
    assert center[0, 0, 1] == 0 and scale[0, 0, 1] == pytest.approx(1.2533 * 5)
    assert center[0, 0, 2] == 7 and scale[0, 0, 2] == pytest.approx(1.4)  # the floor, 20% of |median|
    center, scale = WindowScaler([0]).stats(x)
    assert (center[0, 0, 1:] == 0).all() and (scale[0, 0, 1:] == 1).all()
    # A window of zeros takes the channel's spread over the training rows, not 1 in raw units (a burst
    # of a million after zeros would be a million scales away).
    rows = np.zeros((100, 2), dtype=np.float32)
    rows[::10, 0] = 1e6  # intermittent: MAD 0, mean deviation 1e5
    fitted_window = WindowScaler.fit(rows, [0, 1])  # channel 1 is zero throughout: 1
    assert fitted_window.fallback_scale.ravel() == pytest.approx([1.2533e5, 1.0])
    zeros = np.zeros((1, 8, 2), dtype=np.float32)
    assert fitted_window.stats(zeros)[1].ravel() == pytest.approx([1.2533e5, 1.0])
    assert fitted_window.stats(zeros[:, :, ::-1] + 5)[1].ravel() == pytest.approx([1.0, 1.0])  # floor: 20% of 5
    again = scaler_from_state(fitted_window.state())
    assert isinstance(again, WindowScaler) and again.stats(zeros)[1].ravel() == pytest.approx([1.2533e5, 1.0])
    old_state = {"kind": "window", "scaled_channels": [0, 1]}  # written before fallback scales existed
    assert scaler_from_state(old_state).stats(zeros)[1].ravel() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="fallback_scale"):
        WindowScaler([0, 1], [1.0])
    rows = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    fitted = GlobalScaler.fit(rows)
    assert fitted.center.ravel().tolist() == [2.0, 5.0] and fitted.scale.ravel().tolist() == [1.0, 1.0]


def test_evaluation_is_exact_on_hand_computed_arrays() -> None:
    y_true = np.array([[[100, 10, 1.0]], [[110, 12, 0.9]], [[130, 9, 0.8]], [[120, 11, 0.95]]])
    y_pred = np.array([[[105, 10, 0.98]], [[100, 12, 0.9]], [[131, 11, 0.7]], [[120, 8, 0.96]]])
    result = evaluate(
        y_true,
        y_pred,
        targets=TARGETS,
        naive_scale=[8.0, 2.5, 0.065],
        thresholds={"latency_ms": 10.0, "success_rate": 0.05},
    )
    assert result.windows == 4
    latency, tokens, success = (result.targets[t] for t in TARGETS)
    # latency errors 5, -10, 1, 0; mean 115, total sum of squares 500
    assert latency.mse == pytest.approx(31.5) and latency.mae == pytest.approx(4.0)
    assert latency.r2 == pytest.approx(1 - 126 / 500) and latency.mase == pytest.approx(0.5)
    assert latency.accuracy == pytest.approx(0.75)  # |-10| is not below 10
    # tokens/s errors 0, 0, 2, -3; mean 10.5, total 5; no threshold
    assert tokens.mse == pytest.approx(3.25) and tokens.mae == pytest.approx(1.25)
    assert tokens.r2 == pytest.approx(1 - 13 / 5) and tokens.mase == pytest.approx(0.5) and tokens.accuracy is None
    # success errors -0.02, 0, -0.1, 0.01; mean 0.9125, total 0.021875
    assert success.mse == pytest.approx(0.0105 / 4) and success.mae == pytest.approx(0.0325)
    assert success.r2 == pytest.approx(1 - 0.0105 / 0.021875) and success.mase == pytest.approx(0.5)
    assert success.accuracy == pytest.approx(0.75)
    # Other thresholds; a constant target has no R², a zero scale no MASE.
    strict = evaluate(y_true, y_pred, targets=TARGETS, naive_scale=[8.0, 0.0, 0.065], thresholds={"latency_ms": 1.5})
    assert strict.targets["latency_ms"].accuracy == pytest.approx(0.5)
    assert strict.targets["success_rate"].accuracy is None
    assert math.isnan(strict.targets["tokens_per_second"].mase)
    # ... and the geometric MASE is over the targets that have one (as the promotion rule's ratio).
    assert strict.geometric_mase() == pytest.approx(0.5)
    flat = result.flat()
    assert flat["latency_ms.mae"] == pytest.approx(4.0) and "tokens_per_second.accuracy" not in flat
    assert result.geometric_mase() == pytest.approx(0.5)


def _tiny_model(data: StreamDataLoader, seed: int = 0) -> Forecaster:
    with seeded(seed):
        return build_model(TINY, ForecastShape(window=data.window, horizon=data.horizon))


def test_early_stopping_stops(swarm_data: StreamDataLoader) -> None:
    # No validation loss is ever min_delta below the best, so patience runs out after two epochs.
    config = TrainingConfig(max_epochs=50, patience=2, min_delta=1e9, max_steps=None, window=20, horizon=2)
    seen: list[Progress] = []
    result = fit(_tiny_model(swarm_data), swarm_data, config, progress=seen.append)
    assert result.stop_reason == "early_stopping" and result.epochs == 2 and result.best_epoch == 0
    assert [p.epoch for p in seen] == [1, 2] and all(p.kind == "lstm" and p.max_epochs == 50 for p in seen)
    assert [(p.epoch, p.train_loss, p.val_loss) for p in seen] == result.history


def test_a_step_budget_ends_training(swarm_data: StreamDataLoader) -> None:
    config = TrainingConfig(max_epochs=50, max_steps=7, batch_size=256, window=20, horizon=2)
    result = fit(_tiny_model(swarm_data), swarm_data, config)
    assert result.steps == 7 and result.stop_reason == "max_steps"
    assert result.epochs == math.ceil(7 / math.ceil(len(swarm_data.starts[Split.TRAIN]) / 256))


def test_the_cpu_trains_in_float32(swarm_data: StreamDataLoader) -> None:
    config = TrainingConfig(max_steps=3, window=20, horizon=2, device="cpu")
    assert config.mixed_precision and not uses_bfloat16(torch.device("cpu"), config)  # CUDA only
    assert not fit(_tiny_model(swarm_data), swarm_data, config).bfloat16


def test_cancellation_stops_within_a_step(swarm_data: StreamDataLoader) -> None:
    asked = 0

    def should_stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 3

    seen: list[Progress] = []
    with pytest.raises(TrainingCancelled, match="step 3"):
        fit(
            _tiny_model(swarm_data),
            swarm_data,
            TrainingConfig(window=20, horizon=2),
            should_stop=should_stop,
            progress=seen.append,
        )
    assert asked == 4 and seen == []


def test_warm_start_starts_from_the_given_weights(swarm_data: StreamDataLoader) -> None:
    config = TrainingConfig(window=20, horizon=2, max_steps=30)
    trained = _tiny_model(swarm_data, seed=1)
    first = fit(trained, swarm_data, config)
    weights = {name: t.clone() for name, t in trained.state_dict().items()}

    fresh = _tiny_model(swarm_data, seed=2)
    assert not all(torch.equal(fresh.state_dict()[n], weights[n]) for n in weights)
    # With no steps, it ends where it started: on the given weights, with their validation loss.
    result = fit(fresh, swarm_data, TrainingConfig(window=20, horizon=2, max_steps=0), initial_state=weights)
    assert all(torch.equal(fresh.state_dict()[n], weights[n]) for n in weights)
    assert result.best_val_loss == pytest.approx(first.best_val_loss) and result.best_epoch == 0
    # One AdamW step moves each weight by about the learning rate: training goes on from the given weights.
    stepped = _tiny_model(swarm_data, seed=2)
    keep_any = TrainingConfig(window=20, horizon=2, max_steps=1, min_delta=-1.0)  # every epoch counts as better
    fit(stepped, swarm_data, keep_any, initial_state=weights)
    moved = max(float((stepped.state_dict()[n] - weights[n]).abs().max()) for n in weights)
    assert 0 < moved <= 2 * config.learning_rate


def test_the_pipeline_returns_every_models_evaluation(swarm: list[Event]) -> None:
    config = TrainingConfig(
        models=(TINY, TCNConfig(num_channels=(8, 8)), NBEATSConfig(num_blocks=1, num_layers=1, layer_width=32)),
        window=20,
        horizon=2,
        max_epochs=2,
        batch_size=128,
    )
    seen: list[Progress] = []
    result = TrainingPipeline(config).run(swarm, progress=seen.append)
    assert list(result.reports) == ["lstm", "tcn", "nbeats"]
    assert {p.kind for p in seen} == {"lstm", "tcn", "nbeats"}
    assert result.best in [r.model for r in result.reports.values()]
    best = min(result.reports.values(), key=lambda r: r.validation.geometric_mase())
    assert result.best is best.model
    for report in [*result.reports.values()]:
        for evaluation in (report.validation, report.test, result.naive_test):
            assert list(evaluation.targets) == list(TARGETS)
            assert all(math.isfinite(m.mae) and math.isfinite(m.mase) for m in evaluation.targets.values())
        assert report.test.windows == result.naive_test.windows == result.windows["test"]
        assert set(report.test_by_agent) == set(result.naive_test_by_agent) == {e.agent_id for e in swarm}
        assert report.model.metrics["latency_ms.mase"] == report.test.targets["latency_ms"].mase
        assert report.training.epochs <= 2
    # The answer in original units, from an agent's last events.
    planner = [e for e in swarm if e.agent_id == "planner"]
    forecast = result.best.predict_events(planner)
    assert forecast.shape == (2, 3) and 300 < forecast[0, 0] < 3000

    # Fine-tuning: a warm start per kind (here with no steps) keeps the given weights.
    warm = {kind: report.model.state_dict() for kind, report in result.reports.items()}
    again = TrainingPipeline(dataclasses.replace(config, max_steps=0)).run(swarm, warm_start=warm)
    for kind, report in again.reports.items():
        assert all(torch.equal(report.model.state_dict()[n], t) for n, t in warm[kind].items())


# -- the regular time grid (TrainingConfig.grid_s) ----------------------------------------------


def _event(agent: str, i: int, at: float, latency: float, *, prompt: int | None = None, success: float = 1.0) -> Event:
    prompted = ("a prompt", prompt, 2 * prompt, 0.5) if prompt is not None else ()
    return Event(
        agent, f"{agent}-{i}", at, EventType.PERFORMANCE_UPDATE, latency, 10.0, 512.0, 30.0, success, *prompted
    )


def test_resampling_is_exact_on_hand_made_events() -> None:
    hour = START + 10 * 3600  # buckets of 60 s from 10:58 to 11:03, across the hour
    events = [
        _event("a", 0, hour - 115, 100.0, prompt=40),  # 10:58: two events
        _event("a", 1, hour - 70, 200.0, success=0.5),
        _event("a", 2, hour - 30, 300.0),  # 10:59: one
        # 11:00 and 11:01 empty
        _event("a", 3, hour + 150, 500.0),  # 11:02
        _event("a", 4, hour + 179.9, 700.0, prompt=10),
    ]
    rows = np.asarray([event_features(e) for e in events], dtype=np.float32)
    times = np.asarray([e.timestamp for e in events])
    grid = resample(times, rows, 60.0)
    assert grid.starts.tolist() == [hour - 120 + 60 * k for k in range(5)]
    assert grid.events.tolist() == [2, 1, 0, 0, 2]
    latency, success, prompt = (FEATURE_NAMES.index(n) for n in ("latency_ms", "success_rate", "prompt_tokens"))
    assert grid.rows[:, latency].tolist() == [150.0, 300.0, 300.0, 300.0, 600.0]  # empty: carried forward
    assert grid.rows[:, success].tolist() == [0.75, 1.0, 1.0, 1.0, 1.0]
    assert grid.rows[:, prompt].tolist() == [20.0, 0.0, 0.0, 0.0, 5.0]  # per event: no prompt counts as 0
    # The temporal angles are each bucket's start's, empty or not: 10:00 for the first two, then 11:00.
    hour_sin = FEATURE_NAMES.index("hour_sin")
    at = [event_features(_event("a", 0, start, 1.0))[hour_sin] for start in grid.starts]
    np.testing.assert_array_equal(grid.rows[:, hour_sin], np.float32(at))
    assert grid.rows[1, hour_sin] != grid.rows[2, hour_sin]
    # The vectorised angles agree with event_features at any time.
    stamps = np.random.default_rng(0).uniform(0, 4e9, 2000)
    expected = [event_features(_event("a", 0, t, 1.0))[9:] for t in stamps]
    np.testing.assert_array_equal(temporal(stamps), np.asarray(expected, dtype=np.float32))
    # One window back from the latest event: the window's first bucket is empty, so it needs the
    # last bucket with events before it, and no earlier event.
    assert history_start(times, 3, 60.0) == 2
    np.testing.assert_array_equal(last_window(times[2:], rows[2:], 3, 60.0), grid.rows[-3:])
    assert history_start(times, 4, 60.0) == 2 and history_start(times, 5, 60.0) == 0
    assert last_window(times, rows, 6, 60.0) is None


def gappy_stream(seed: int = 0) -> list[Event]:
    """The uneven stream with silent stretches, so that some buckets are empty."""
    return [e for e in uneven_stream(seed) if not 2_000 <= (e.timestamp - START) % 9_000 < 2_400]


def test_grid_windows_never_leak_and_never_target_an_empty_bucket() -> None:
    window, horizon, grid_s = 8, 2, 150.0
    events = gappy_stream()
    data = StreamDataLoader(events, TrainingConfig(window=window, horizon=horizon, grid_s=grid_s))
    assert (data.row_events == 0).any() and np.all(data.timestamps % grid_s == 0)
    first_validation, first_test = data.boundaries
    assert first_validation % grid_s == 0 and first_test % grid_s == 0
    span = np.arange(window + horizon)
    for split in Split:
        rows = data.starts[split][:, None] + span  # [W, L+H]
        # Targets and the last input are buckets with events; inputs may be carried forward.
        assert np.all(data.row_events[rows[:, window - 1 :]] > 0)
    assert (data.row_events[data.starts[Split.TRAIN][:, None] + span[:window]] == 0).any()

    # Every row a training window holds is what the events before the validation period alone give
    # (and a validation window's, before the test period): nothing of the future is in it.
    for split, cut in ((Split.TRAIN, first_validation), (Split.VALIDATION, first_test)):
        assert data.timestamps[data.starts[split][:, None] + span].max() + grid_s <= cut
        for start in data.starts[split]:
            agent = data.agents[data.row_agent[start]]
            past = sorted((e for e in events if e.agent_id == agent and e.timestamp < cut), key=lambda e: e.timestamp)
            grid = resample(
                np.asarray([e.timestamp for e in past]),
                np.asarray([event_features(e) for e in past], dtype=np.float32),
                grid_s,
            )
            first = int(np.searchsorted(grid.starts, data.timestamps[start]))
            np.testing.assert_array_equal(data.windows[start], grid.rows[first : first + window + horizon])
    for split in (Split.VALIDATION, Split.TEST):
        lower = first_validation if split is Split.VALIDATION else first_test
        assert data.timestamps[data.starts[split] + window].min() >= lower
    # The naive forecast's scale counts steps into buckets with events only.
    naive = data.naive(Split.TEST)
    np.testing.assert_array_equal(naive[:, 0], data.features[data.starts[Split.TEST] + window - 1][:, TARGET_CHANNELS])


def test_a_grid_model_records_its_grid_and_forecasts_from_events(tmp_path: Path) -> None:
    config = TrainingConfig(models=(TINY,), window=10, horizon=2, grid_s=300.0, max_epochs=1, batch_size=128)
    result = TrainingPipeline(config).run(gappy_stream(1))
    model = result.best
    assert model.grid_s == 300.0 and model.metadata["training"]["grid_s"] == 300.0
    model.save(tmp_path / "grid.pt")
    loaded = TrainedModel.load(tmp_path / "grid.pt")
    assert loaded.grid_s == 300.0
    agent = sorted((e for e in gappy_stream(1) if e.agent_id == "all-along"), key=lambda e: e.timestamp)
    rows = np.asarray([event_features(e) for e in agent], dtype=np.float32)
    times = np.asarray([e.timestamp for e in agent])
    window = resample(times, rows, 300.0).rows[-10:]
    np.testing.assert_array_equal(loaded.input_window(times, rows), window)
    np.testing.assert_array_equal(loaded.predict_events(agent[::-1]), model.predict(window))  # any order
    with pytest.raises(ValueError, match="buckets of 300 s"):
        loaded.predict_events(agent[:20])
    with pytest.raises(ValueError, match="time order"):
        resample(times[::-1], rows, 300.0)


def test_the_grid_is_a_training_setting_of_jobs() -> None:
    assert TrainingConfig.for_job("lstm", 3, {"training": {"grid_s": 60}}).grid_s == 60.0
    with pytest.raises(ValueError, match="unknown setting"):
        TrainingConfig.for_job("lstm", 3, {"training": {"epochs": 3}})
    assert TrainingConfig().grid_s is None
    for bad in (0, -5, float("nan")):
        with pytest.raises(ValueError, match="grid_s"):
            TrainingConfig(grid_s=bad)


def test_a_continued_fit_goes_on_with_the_optimizer_and_the_random_generators() -> None:
    """What a Hyperband rung continues from: Adam's moments are not restarted, and neither the
    shuffles nor the dropout masks replay from the seed."""
    from swarmlearn.training import fit

    config = TrainingConfig(window=12, horizon=1, max_epochs=1, models=(TINY,))
    data = StreamDataLoader(list(generate_swarm(agents=2, events_per_agent=200, seed=4)), config)
    shape = ForecastShape(window=12, horizon=1)
    model = build_model(TINY, shape)
    first = fit(model, data, config)
    assert first.resume is not None
    assert all(state["step"] == first.steps for state in first.resume["optimizer"]["state"].values())
    again = fit(model, data, config, initial_state=model.state_dict(), resume=first.resume)
    assert again.resume is not None
    assert all(state["step"] == first.steps + again.steps for state in again.resume["optimizer"]["state"].values())
    assert again.resume["shuffles"] != first.resume["shuffles"]
    fresh = fit(build_model(TINY, shape), data, config)
    assert fresh.resume is not None and fresh.resume["shuffles"] == first.resume["shuffles"]  # the seed's
    assert not torch.equal(again.resume["torch"], first.resume["torch"])

"""The tuner with real Ax: search spaces, the four methods, resuming, and one real training problem."""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from swarmlearn import names
from swarmlearn.errors import InvalidArgument
from swarmlearn.synthetic import generate_swarm
from swarmlearn.tuning import (
    Method,
    TrialRequest,
    TrialResult,
    Tuner,
    TunerConfig,
    TuningCancelled,
    default_space,
    parse_space,
    plan,
    total_epochs,
)
from swarmlearn.tuning._space import config_for

TWO_D = json.dumps(
    [
        {"name": "learning_rate", "type": "range", "bounds": [1e-4, 1e-2], "log": True},
        {"name": "dropout", "type": "range", "bounds": [0.1, 0.5]},
    ]
)
OPTIMUM = {"learning_rate": 10**-2.3, "dropout": 0.42}


def known_optimum(request: TrialRequest) -> TrialResult:
    """A smooth bowl with its minimum off the centre (0 at OPTIMUM), plus an error that shrinks with
    the budget, as validation losses do with epochs."""
    lr, dropout = request.params["learning_rate"], request.params["dropout"]
    value = (math.log10(lr) + 2.3) ** 2 + 4 * (dropout - 0.42) ** 2 + 0.5 / request.budget
    if request.save_to:  # "weights" for the next rung, so that one trains only the difference
        Path(request.save_to).write_text(json.dumps(request.params))
    return TrialResult(value, request.epochs)


def tune(tmp: Path, method: str, *, seed: int = 0, trials: int = 12, epochs: int = 9, **kw: object) -> Tuner:
    config = TunerConfig(method=method, max_trials=trials, seed=seed, max_epochs=epochs, **kw)  # type: ignore[arg-type]
    return Tuner(parse_space("lstm", TWO_D), config, known_optimum, ThreadPoolExecutor(2), tmp)


# -- search spaces ------------------------------------------------------------------------------


def test_the_tuners_methods_are_the_names_the_daemon_accepts() -> None:
    assert tuple(Method) == names.TUNING_METHODS


def test_the_default_space_is_derived_from_the_config_dataclasses() -> None:
    lstm = {p.name: p for p in default_space("lstm")}
    assert lstm["hidden_size"].values == (64, 128, 256, 512) and lstm["hidden_size"].type == "int"
    assert (lstm["learning_rate"].low, lstm["learning_rate"].high, lstm["learning_rate"].log) == (1e-4, 1e-2, True)
    assert (lstm["dropout"].low, lstm["dropout"].high, lstm["dropout"].type) == (0.1, 0.5, "float")
    assert set(lstm) == {"hidden_size", "num_layers", "dropout", "learning_rate", "window"}
    tcn = {p.name: p for p in default_space("tcn")}
    assert set(tcn) == {"channels", "levels", "kernel_size", "dropout", "learning_rate", "window"}
    assert (tcn["levels"].low, tcn["levels"].high, tcn["levels"].type) == (2, 7, "int")
    assert {p.name for p in default_space("nbeats")} == {"num_blocks", "layer_width", "learning_rate", "window"}
    # Model fields at the top level, training fields under "training".
    assert config_for("tcn", {"channels": 32, "levels": 4, "window": 25}) == {
        "channels": 32,
        "levels": 4,
        "training": {"window": 25},
    }


@pytest.mark.parametrize(
    ("space", "reason"),
    [
        ([{"name": "dropout", "type": "range", "bounds": [0.5, 0.1]}], "min 0.5 > max 0.1"),
        ([{"name": "hidden_size", "type": "choice", "values": []}], "non-empty list"),
        ([{"name": "colour", "type": "choice", "values": [1]}], "unknown parameter 'colour'"),
        ([{"name": "learning_rate", "type": "range", "bounds": [0, 0.1], "log": True}], "positive min"),
        ([{"name": "hidden_size", "type": "choice", "values": [64.5]}], "must be a int"),
        ([{"name": "dropout", "type": "range", "bounds": [0.1, 1.0]}], "1.0 is not allowed"),
        ([{"name": "dropout", "type": "cube"}], "range or choice"),
        ({"name": "dropout"}, "non-empty JSON list"),
    ],
)
def test_a_bad_search_space_is_refused_naming_the_parameter(space: object, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_space("lstm", json.dumps(space))
    assert refused.value.field == "search_space_json" and reason in refused.value.reason


def test_grid_values_of_ranges() -> None:
    (lr, dropout) = parse_space("lstm", TWO_D)
    assert lr.grid(3) == pytest.approx((1e-4, 1e-3, 1e-2)) and lr.grid(3)[-1] == 1e-2
    assert dropout.grid(5) == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5))
    (layers,) = parse_space("lstm", '[{"name": "num_layers", "bounds": [1, 3]}]')
    assert layers.grid(10) == (1, 2, 3)


# -- the methods --------------------------------------------------------------------------------


def test_hyperband_brackets_follow_li_et_al() -> None:
    # R = 81, eta = 3: table 1 of the paper (n_i, r_i per bracket).
    brackets = plan(81, 3)
    assert [[(r.configs, r.epochs) for r in rungs] for rungs in brackets] == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]
    assert [rungs[0].configs for rungs in plan(27, 3, max_configs=30)] == [27, 3]
    assert total_epochs(plan(9)) == 9 * 1 + 3 * 2 + 1 * 6 + 5 * 3 + 1 * 6 + 3 * 9


def test_bayesian_beats_random_at_equal_trials_on_a_known_optimum(tmp_path: Path) -> None:
    # 8 trials each: the centre and 3 Sobol points, then 4 from BoTorch (a few seconds each here).
    floor = 0.5 / 8  # the value at the optimum with the full budget
    gaps = []
    for seed in (1, 2, 3):
        bayesian = tune(tmp_path / f"b{seed}", "bayesian", seed=seed, trials=8, epochs=8, initialization_trials=4)
        random = tune(tmp_path / f"r{seed}", "random", seed=seed, trials=8, epochs=8)
        gaps.append((bayesian.run().best_value - floor, random.run().best_value - floor))
    assert all(b < r for b, r in gaps), gaps
    assert statistics.median(b for b, _ in gaps) < 0.3 * statistics.median(r for _, r in gaps), gaps


def test_grid_evaluates_every_combination_exactly_once(tmp_path: Path) -> None:
    tuner = tune(tmp_path, "grid", trials=0, grid_points=4)
    result = tuner.run()
    seen = [json.dumps(sorted(t.params.items())) for t in result.trials]
    assert len(seen) == 16 and len(set(seen)) == 16
    assert all(t.status == "completed" and t.epochs == 9 for t in result.trials)
    assert len(tuner.client.summarize()) == 16  # each one an Ax trial


def test_a_grid_over_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as refused:
        tune(tmp_path, "grid", trials=0, grid_points=20, max_grid=100)
    assert "400 combinations" in refused.value.reason


def test_hyperband_spends_far_fewer_epochs_and_finds_as_good(tmp_path: Path) -> None:
    # R = 9 epochs, 13 configurations: brackets of 9 (at 1, 3, 9 epochs) and 4 (at 3, 9).
    full = tune(tmp_path / "random", "random", seed=4, trials=13, epochs=9).run()
    hyperband = tune(tmp_path / "hyperband", "hyperband", seed=4, trials=13, epochs=9).run()
    assert full.total_epochs == 13 * 9
    assert hyperband.total_epochs == total_epochs(plan(9, 3, 13)) == 39
    assert hyperband.best_value <= full.best_value * 1.05, (hyperband.best_value, full.best_value)
    statuses = [t.status for t in hyperband.trials]
    assert statuses.count("early_stopped") == 13 - 2 and statuses.count("completed") == 2
    # The rungs are in Ax as progressions of one trial.
    best = hyperband.trials[hyperband.best_trial]
    assert sorted(best.values) in ([1, 3, 9], [3, 9])


@pytest.mark.parametrize("method", ["random", "grid", "hyperband"])
def test_a_stopped_run_resumes_the_same_experiment(tmp_path: Path, method: str) -> None:
    trials = 0 if method == "grid" else 9
    reference = tune(tmp_path / "reference", method, seed=5, trials=trials).run()
    calls = []

    def stop_after_four() -> bool:
        return len(calls) >= 4

    def counting(request: TrialRequest) -> TrialResult:
        calls.append(request.index)
        return known_optimum(request)

    config = TunerConfig(method=method, max_trials=trials, seed=5, max_epochs=9)  # type: ignore[arg-type]
    space = parse_space("lstm", TWO_D)
    first = Tuner(space, config, counting, ThreadPoolExecutor(1), tmp_path / "run", should_stop=stop_after_four)
    with pytest.raises(TuningCancelled):
        first.run()
    done_before = {t.index: t.params for t in first.trials.values() if t.status == "completed" or t.values}
    assert done_before
    resumed = Tuner(space, config, counting, ThreadPoolExecutor(1), tmp_path / "run")
    result = resumed.run()
    # Nothing done before is redone, and earlier trials keep their parameters.
    for index, params in done_before.items():
        assert result.trials[index].params == params
    completed = [t for t in result.trials if t.status == "completed"]
    assert len(completed) == len([t for t in reference.trials if t.status == "completed"])
    assert result.best_value == pytest.approx(reference.best_value) or method == "random"
    if method != "random":  # fixed plans: the same trials, the same answer
        assert result.best_params == reference.best_params
        assert len(calls) <= len([1 for t in reference.trials for _ in t.values]) + 1


# -- a real training problem ----------------------------------------------------------------------


def test_a_real_training_search_in_worker_processes(tmp_path: Path) -> None:
    from swarmlearn.store import EventStore
    from swarmlearn.training import ReplaySource
    from swarmlearn.tuning import TrialSetup
    from swarmlearn.tuning._trial import make_executor, train_trial

    db = tmp_path / "events.sqlite3"
    store = EventStore(db)
    try:
        upto = store.submit(list(generate_swarm(agents=2, events_per_agent=300, seed=3))).result(30).durable_sequence
    finally:
        store.close()
    space = parse_space(
        "lstm",
        json.dumps(
            [
                {"name": "hidden_size", "type": "choice", "values": [8, 16]},
                {"name": "learning_rate", "type": "range", "bounds": [1e-3, 1e-2], "log": True},
                {"name": "window", "type": "choice", "values": [10, 20]},
            ]
        ),
    )
    setup = TrialSetup(ReplaySource(db, "", upto), "lstm")
    cancel = multiprocessing.get_context("spawn").Event()
    config = TunerConfig(method="hyperband", max_trials=4, concurrency=2, max_epochs=3, seed=1)
    with make_executor(setup, 2, cancel) as executor:
        result = Tuner(space, config, train_trial, executor, tmp_path / "tuning").run()
    assert 0 < result.best_value < 10 and math.isfinite(result.best_value)
    assert {"val.latency_ms.mase", "val_loss"} <= set(result.trials[result.best_trial].metrics)
    assert result.total_epochs <= 4 * 3
    assert not list((tmp_path / "tuning" / "trials").glob("*.state"))  # weights between rungs, cleaned up


def test_a_trial_on_a_stream_that_never_failed_has_a_finite_objective(tmp_path: Path) -> None:
    """Real streams often report success 1 on every event: that target has no naive scale and no MASE,
    and the trial's objective is the geometric MASE of the others (it was NaN: every trial failed)."""
    from swarmlearn.store import EventStore
    from swarmlearn.training import ReplaySource
    from swarmlearn.tuning import TrialSetup
    from swarmlearn.tuning._trial import init_worker, train_trial

    db = tmp_path / "events.sqlite3"
    events = [e._replace(success_rate=1.0) for e in generate_swarm(agents=1, events_per_agent=300, seed=3)]
    store = EventStore(db)
    try:
        upto = store.submit(events).result(30).durable_sequence
    finally:
        store.close()
    init_worker(TrialSetup(ReplaySource(db, "", upto), "lstm"))
    params = {"hidden_size": 8, "num_layers": 1, "window": 10}
    result = train_trial(TrialRequest(0, params, epochs=1, budget=1, resume_from="", save_to=""))
    assert math.isfinite(result.value) and result.value > 0
    assert "val.success_rate.mase" not in result.metrics and "val.latency_ms.mase" in result.metrics

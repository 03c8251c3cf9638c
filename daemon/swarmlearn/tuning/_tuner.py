"""The tuner: an Ax experiment driven by one of four methods, trials run concurrently, saved after each.

Every method keeps its experiment in an Ax ``Client`` (``from ax import Client``) whose objective is
the trial's value (minimised):

- ``bayesian``: Ax's generation strategy (``method="fast"``: the centre and Sobol points first, then
  BoTorch);
- ``random``: Ax's ``random_search`` (Sobol, quasi-random);
- ``grid``: every combination of the space's grid values attached as an Ax trial (``attach_trial``),
  each evaluated once; a grid larger than ``max_grid`` is refused;
- ``hyperband``: the brackets of ``_hyperband.plan`` over the epoch budget, with configurations
  proposed by Ax's Sobol generator (Hyperband samples at random), every rung's validation value
  attached to its Ax trial as a progression (epochs), the losers marked early-stopped and the
  survivors continuing from their weights.

Trials run through an ``Executor`` (threads for cheap objectives, processes for training), at most
``concurrency`` at once. The objective gets a ``TrialRequest`` and answers a ``TrialResult``; between
hyperband's rungs it saves its weights to ``request.save_to`` and resumes from ``request.resume_from``.

Persistence: after every trial result the Ax experiment is written to ``<directory>/experiment.json``
(``Client.save_to_json_file``) and the tuner's journal (each trial's results by budget, epochs
spent) to ``journal.json``, both atomically. A ``Tuner`` built on a directory that holds them goes
on with the same experiment: completed work is never redone, a trial that was running when the
process stopped is marked failed in Ax (bayesian, random) or run again (grid, hyperband, whose
plans are fixed), and hyperband replays its brackets from the journal.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmlearn._durable import write_durably
from swarmlearn.errors import InvalidArgument
from swarmlearn.names import TUNING_GRID_POINTS, TUNING_MAX_EPOCHS, TUNING_MAX_GRID
from swarmlearn.tuning import _hyperband
from swarmlearn.tuning._space import SearchSpace, ax_parameters

log = logging.getLogger(__name__)

_POLL_S = 0.5


class Method(enum.StrEnum):
    BAYESIAN = "bayesian"
    RANDOM = "random"
    GRID = "grid"
    HYPERBAND = "hyperband"


class TuningCancelled(Exception):
    """``should_stop`` said so; the experiment is saved as it was."""


@dataclass(frozen=True, kw_only=True)
class TunerConfig:
    method: Method = Method.BAYESIAN
    max_trials: int = 20
    """Configurations evaluated at most (bayesian, random, hyperband); a grid's limit when it is set."""
    concurrency: int = 1
    """Trials running at once."""
    max_epochs: int = TUNING_MAX_EPOCHS
    """Each configuration's full budget of epochs (hyperband's R)."""
    eta: int = 3
    """Hyperband's halving rate: each rung keeps the best 1/eta."""
    grid_points: int = TUNING_GRID_POINTS
    """Values a grid takes from each continuous range."""
    max_grid: int = TUNING_MAX_GRID
    """The largest grid accepted when ``max_trials`` is 0."""
    initialization_trials: int = 0
    """Bayesian: quasi-random trials before BoTorch (0: Ax decides)."""
    seed: int = 0
    objective: str = "val_mase"
    """The metric's name in Ax (its value is minimised)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TunerConfig:
        """The config from a request to check (``main_check``): the keys that name fields (others ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", Method(self.method))
        if self.max_trials < 0 or self.concurrency < 1 or self.max_epochs < 1 or self.grid_points < 1:
            raise ValueError("max_trials must be >= 0; concurrency, max_epochs and grid_points >= 1")


@dataclass(frozen=True)
class TrialRequest:
    index: int
    """The Ax trial index."""
    params: dict[str, Any]
    epochs: int
    """Epochs to train in this call."""
    budget: int
    """The trial's total epochs after this call (its progression)."""
    resume_from: str
    """Weights to continue from (a later hyperband rung), or "" to start afresh."""
    save_to: str
    """Where to save the weights it ends with, for a later rung."""


@dataclass(frozen=True)
class TrialResult:
    value: float
    """The objective on the validation split (lower is better)."""
    epochs: int
    """Epochs trained in this call (early stopping may end it sooner)."""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrialRecord:
    index: int
    params: dict[str, Any]
    status: str = "running"
    """running, completed, early_stopped, failed, or interrupted (running when the process stopped:
    failed in Ax, and suggested or run again)."""
    values: dict[int, float] = field(default_factory=dict)
    """The objective at each budget (epochs) it reached."""
    epochs: int = 0
    """Epochs trained in all."""
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def value(self) -> float:
        """The objective at the largest budget it reached (inf without one)."""
        return self.values[max(self.values)] if self.values else math.inf


@dataclass(frozen=True)
class TuningProgress:
    trials_done: int
    total_trials: int
    best_value: float
    record: TrialRecord


@dataclass(frozen=True)
class TuningResult:
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    trials: list[TrialRecord]
    total_epochs: int


Objective = Callable[[TrialRequest], TrialResult]


class Tuner:
    def __init__(
        self,
        space: SearchSpace,
        config: TunerConfig,
        objective: Objective,
        executor: Executor,
        directory: Path,
        *,
        on_progress: Callable[[TuningProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """``should_stop`` is polled while trials run; when it says so ``run`` raises ``TuningCancelled``
        with the experiment saved and its running trials left as they were: ``abandon_running`` marks
        them failed for good (a cancel), or a new ``Tuner`` on the directory resumes them (a stop)."""
        self.space, self.config, self.objective, self.executor = space, config, objective, executor
        self.directory = directory
        self._on_progress = on_progress
        self._should_stop = should_stop or (lambda: False)
        check_grid(space, config)
        self.grid = space.grid(config.grid_points) if config.method == Method.GRID else []
        self.brackets = (
            _hyperband.plan(config.max_epochs, config.eta, config.max_trials or None)
            if config.method == Method.HYPERBAND
            else []
        )
        (directory / "trials").mkdir(parents=True, exist_ok=True)
        self.trials: dict[int, TrialRecord] = {}
        self.client = self._load() or self._create()

    # -- the experiment and the journal ------------------------------------------------------------

    @property
    def total_trials(self) -> int:
        return total_trials(self.space, self.config)

    def _create(self) -> Any:
        from ax import Client

        client = Client(random_seed=self.config.seed)
        client.configure_experiment(parameters=ax_parameters(self.space), name=f"swarmlearn-{self.space.kind}")
        client.configure_optimization(objective=f"-{self.config.objective}")
        if self.config.method == Method.BAYESIAN:
            client.configure_generation_strategy(
                method="fast",
                initialization_budget=self.config.initialization_trials or None,
                initialization_random_seed=self.config.seed,
            )
        else:
            client.configure_generation_strategy(method="random_search", initialization_random_seed=self.config.seed)
        self._save(client)
        return client

    def _load(self) -> Any:
        experiment, journal = self.directory / "experiment.json", self.directory / "journal.json"
        if not experiment.exists():
            return None
        from ax import Client

        client = Client.load_from_json_file(str(experiment))
        if journal.exists():
            for raw in json.loads(journal.read_text())["trials"]:
                raw["values"] = {int(k): v for k, v in raw["values"].items()}
                record = TrialRecord(**raw)
                self.trials[record.index] = record
        log.info("resuming the experiment in %s: %d trial(s) recorded", self.directory, len(self.trials))
        return client

    def _save(self, client: Any = None) -> None:
        client = client or self.client
        write_durably(self.directory / "experiment.json", lambda path: client.save_to_json_file(str(path)))
        journal = {"format": 1, "trials": [vars(r) for r in self.trials.values()]}
        write_durably(self.directory / "journal.json", json.dumps(journal))

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> TuningResult:
        method = self.config.method
        if method == Method.GRID:
            self._run_grid()
        elif method == Method.HYPERBAND:
            self._run_hyperband()
        else:
            self._run_generated()
        return self.result()

    def result(self) -> TuningResult:
        full = [r for r in self.trials.values() if self.config.max_epochs in r.values]
        scored = full or [r for r in self.trials.values() if r.values]
        if not scored:
            raise RuntimeError("no trial finished: " + "; ".join({r.error for r in self.trials.values()} - {""}))
        best = min(scored, key=lambda r: (r.value, r.index))
        return TuningResult(
            best.params, best.value, best.index, sorted(self.trials.values(), key=lambda r: r.index),
            sum(r.epochs for r in self.trials.values()),
        )  # fmt: skip

    def _run_generated(self) -> None:
        """Bayesian and random: ask Ax for trials while fewer than ``max_trials`` are done or running."""
        self._interrupted()
        running: dict[Future[TrialResult], TrialRequest] = {}
        while True:
            done = sum(r.status in ("completed", "failed") for r in self.trials.values())
            free = min(self.config.concurrency - len(running), self.config.max_trials - done - len(running))
            if free > 0:
                for index, params in self.client.get_next_trials(max_trials=free).items():
                    request = self._request(index, dict(params), self.config.max_epochs, 0)
                    running[self.executor.submit(self.objective, request)] = request
            if not running:
                return
            for request, outcome in self._wait_first(running):
                self._record(request, outcome, final=True)

    def _run_grid(self) -> None:
        evaluated = {_key(r.params) for r in self.trials.values() if r.status in ("completed", "failed")}
        self._interrupted()
        queue = [params for params in self.grid if _key(params) not in evaluated]
        running: dict[Future[TrialResult], TrialRequest] = {}
        while queue or running:
            while queue and len(running) < self.config.concurrency:
                params = queue.pop(0)
                index = self.client.attach_trial(params)
                request = self._request(index, params, self.config.max_epochs, 0)
                running[self.executor.submit(self.objective, request)] = request
            for request, outcome in self._wait_first(running):
                self._record(request, outcome, final=True)

    def _run_hyperband(self) -> None:
        """Each bracket's rungs in turn; replays what the journal holds, so a resumed run picks up
        where it stopped (a rung's unfinished trials continue from their last saved weights)."""
        next_index = 0
        for rungs in self.brackets:
            indices = []
            for _ in range(rungs[0].configs):
                if next_index not in self.trials:
                    (index, params), *_ = self.client.get_next_trials(max_trials=1).items()
                    self.trials[index] = TrialRecord(index, dict(params))
                    self._save()
                indices.append(next_index)
                next_index += 1
            alive, previous = indices, 0
            for i, rung in enumerate(rungs):
                final = i == len(rungs) - 1
                pending = [
                    self._request(j, self.trials[j].params, rung.epochs, previous)
                    for j in alive
                    if rung.epochs not in self.trials[j].values and self.trials[j].status == "running"
                ]
                self._run_all(pending, final=final)
                ranked = sorted(alive, key=lambda j: (self.trials[j].values.get(rung.epochs, math.inf), j))
                keep = ranked if final else ranked[: max(1, rung.configs // self.config.eta)]
                for j in ranked:
                    record = self.trials[j]
                    if j not in keep and record.status == "running":
                        self.client.mark_trial_early_stopped(j)
                        record.status = "early_stopped"
                self._save()
                alive = [j for j in keep if self.trials[j].status == "running"]
                previous = rung.epochs
            for j in indices:
                for path in (self.directory / "trials").glob(f"{j}@*.state"):
                    path.unlink()

    def _run_all(self, requests: list[TrialRequest], *, final: bool) -> None:
        queue = list(requests)
        running: dict[Future[TrialResult], TrialRequest] = {}
        while queue or running:
            while queue and len(running) < self.config.concurrency:
                request = queue.pop(0)
                running[self.executor.submit(self.objective, request)] = request
            for request, outcome in self._wait_first(running):
                self._record(request, outcome, final=final)

    def _request(self, index: int, params: dict[str, Any], budget: int, previous: int) -> TrialRequest:
        """Train to ``budget`` epochs, continuing from the weights at ``previous`` where they were saved."""
        record = self.trials.setdefault(index, TrialRecord(index, params))
        record.status = "running"
        weights = self._weights(index, previous)
        resume = previous > 0 and weights.exists()
        epochs = budget - previous if resume else budget
        save_to = str(self._weights(index, budget)) if self.config.method == Method.HYPERBAND else ""
        return TrialRequest(index, params, epochs, budget, str(weights) if resume else "", save_to)

    def _weights(self, index: int, budget: int) -> Path:
        return self.directory / "trials" / f"{index}@{budget}.state"

    def _interrupted(self) -> None:
        """Trials a stopped process left running: failed in Ax (which may suggest them again)."""
        for record in self.trials.values():
            if record.status == "running":
                self.client.mark_trial_failed(record.index, failed_reason="interrupted: the tuning process stopped")
                record.status = "interrupted"
        self._save()

    def abandon_running(self, reason: str = "cancelled") -> None:
        """After a cancel: the trials it cut short are failed for good."""
        for record in self.trials.values():
            self._fail(record, reason)
        self._save()

    def _wait_first(
        self, running: dict[Future[TrialResult], TrialRequest]
    ) -> list[tuple[TrialRequest, TrialResult | BaseException]]:
        """Wait until at least one trial ends (checking ``should_stop`` meanwhile); remove and return them."""
        while True:
            if self._should_stop():
                for future in running:
                    future.cancel()
                raise TuningCancelled("the tuning job was stopped")
            done, _ = wait(running, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            if done:
                break
        out: list[tuple[TrialRequest, TrialResult | BaseException]] = []
        for future in done:
            request = running.pop(future)
            error = future.exception()
            out.append((request, error if error is not None else future.result()))
        return out

    def _record(self, request: TrialRequest, outcome: TrialResult | BaseException, *, final: bool) -> None:
        record = self.trials[request.index]
        if isinstance(outcome, BaseException) or not math.isfinite(outcome.value):
            reason = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else "not finite"
            log.warning("trial %d failed: %s", request.index, reason)
            self._fail(record, reason)
        else:
            record.values[request.budget] = outcome.value
            record.epochs += outcome.epochs
            record.metrics = outcome.metrics
            data = {self.config.objective: outcome.value}
            if final:
                self.client.complete_trial(request.index, raw_data=data, progression=request.budget)
                record.status = "completed"
            else:
                self.client.attach_data(request.index, raw_data=data, progression=request.budget)
        self._save()
        if self._on_progress is not None:
            finished = [r for r in self.trials.values() if r.status in ("completed", "early_stopped", "failed")]
            scored = [r.value for r in self.trials.values() if self.config.max_epochs in r.values]
            self._on_progress(TuningProgress(len(finished), self.total_trials, min(scored, default=math.nan), record))

    def _fail(self, record: TrialRecord, reason: str) -> None:
        if record.status == "running":
            self.client.mark_trial_failed(record.index, failed_reason=reason[:500])
        record.status, record.error = "failed", reason[:500]


def check_grid(space: SearchSpace, config: TunerConfig) -> None:
    """A grid over the limit (``max_trials``, else ``max_grid``) is refused, naming its size."""
    limit = config.max_trials or config.max_grid
    if config.method == Method.GRID and space.grid_size(config.grid_points) > limit:
        raise InvalidArgument(
            "search_space_json",
            f"the grid has {space.grid_size(config.grid_points)} combinations, over the limit of {limit}; "
            "use fewer values, fewer grid points or another method",
        )


def total_trials(space: SearchSpace, config: TunerConfig) -> int:
    """Configurations the run evaluates: the grid's size, hyperband's plan, or ``max_trials``."""
    if config.method == Method.GRID:
        return space.grid_size(config.grid_points)
    if config.method == Method.HYPERBAND:
        brackets = _hyperband.plan(config.max_epochs, config.eta, config.max_trials or None)
        return sum(rungs[0].configs for rungs in brackets)
    return config.max_trials


def main_check() -> None:
    """Command-line entry for the daemon, which never imports torch: a request's JSON on stdin
    (``kind``, ``space`` (text), ``method``, ``max_trials``, ``max_epochs``, ``grid_points``,
    ``max_grid``); prints ``{"space": [...], "total_trials": n}`` (the default space for an empty
    one) or ``{"field": ..., "reason": ...}``."""
    import sys

    from swarmlearn.tuning._space import parse_space

    request = json.loads(sys.stdin.read())
    try:
        space = parse_space(request["kind"], request["space"])
        config = TunerConfig.from_mapping(request)
        check_grid(space, config)
        print(json.dumps({"space": json.loads(space.to_json()), "total_trials": total_trials(space, config)}))
    except InvalidArgument as exc:
        print(json.dumps({"field": exc.field, "reason": exc.reason}))


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(sorted(params.items()))

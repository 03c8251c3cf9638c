"""What a job is: its request (kept in its record), the settings jobs run with, and the spec its
process is given, one frozen dataclass each, so mypy checks every use.

A request is what was asked for, checked and with its defaults filled in, built when the job is
submitted (``training_request``; a tuning request after its search space is checked) and stored in
the job's record (``_records``, the one place it is turned into JSON and back). A spec is built
from the request when the job starts, once the durable sequence, the champion, the checkpoint's
path and the tuned configuration are known, and sent to the job's process pickled, as its first
message (``_channel``). This module imports neither torch nor numpy: the daemon builds the specs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmlearn.config import Settings
from swarmlearn.errors import InvalidArgument
from swarmlearn.names import MAX_EPOCHS, MAX_HORIZON

if TYPE_CHECKING:
    from swarmlearn.training import ReplaySource


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What ``Settings`` says about background jobs, typed (``from_settings``); its defaults are
    ``Settings``' own."""

    threads: int
    """CPU threads a job's processes may use (``training_threads``)."""
    promotion_margin: float
    promotion_alpha: float
    tuning_concurrency: int
    """Trials a tuning job runs at once when its request says 0."""
    tuning_max_epochs: int
    tuning_grid_points: int
    tuning_max_grid: int
    ray_address: str
    """Empty: jobs and trials run in local processes."""
    ray_num_cpus: float
    ray_num_gpus: float
    replay_recent: int
    replay_older: int
    default_epochs: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> JobSettings:
        return cls(
            threads=settings.training_threads,
            promotion_margin=settings.promotion_margin,
            promotion_alpha=settings.promotion_alpha,
            tuning_concurrency=settings.tuning_concurrency,
            tuning_max_epochs=settings.tuning_max_epochs,
            tuning_grid_points=settings.tuning_grid_points,
            tuning_max_grid=settings.tuning_max_grid,
            ray_address=settings.ray_address,
            ray_num_cpus=settings.ray_num_cpus_per_trial,
            ray_num_gpus=settings.ray_num_gpus_per_trial,
            replay_recent=settings.replay_recent_events,
            replay_older=settings.replay_older_events,
        )

    def tuning(self) -> dict[str, int]:
        """What a tuning request is checked with (``TunerConfig``'s fields)."""
        return {
            "concurrency": self.tuning_concurrency, "max_epochs": self.tuning_max_epochs,
            "grid_points": self.tuning_grid_points, "max_grid": self.tuning_max_grid,
        }  # fmt: skip


# -- requests: what was asked for, kept in the job's record ------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    max_epochs: int = 0
    """0: the settings' default (``JobSettings.default_epochs``)."""
    horizon: int = 1
    config: dict[str, Any] = field(default_factory=dict)
    """The request's ``config_json``: model settings and ``training``; empty: the scope's tuned
    configuration, if any, else the defaults."""
    scheduled: str = ""
    """Why the scheduler submitted it (``""``: a client did)."""


@dataclass(frozen=True, slots=True)
class TuningRequest:
    method: str
    max_trials: int
    """0 for a grid: every combination."""
    concurrency: int
    space: list[dict[str, Any]]
    """The search space as checked (``tuning.parse_space``'s JSON form)."""
    objective: str
    horizon: int = 1
    upto: int | None = None
    """The durable sequence at the job's first start, so that a resumed job reads the same events."""


JobRequest = TrainingRequest | TuningRequest


def training_request(max_epochs: int, horizon: int, config_json: str) -> TrainingRequest:
    """A StartTraining's settings, checked: every problem is an ``InvalidArgument`` naming the field."""
    if horizon > MAX_HORIZON:
        raise InvalidArgument("horizon", f"at most {MAX_HORIZON}, got {horizon}")
    if max_epochs > MAX_EPOCHS:
        raise InvalidArgument("max_epochs", f"at most {MAX_EPOCHS}, got {max_epochs}")
    config: dict[str, Any] = {}
    if config_json:
        try:
            config = json.loads(config_json)
        except ValueError as exc:
            raise InvalidArgument("config_json", f"not JSON: {exc}") from None
        if not isinstance(config, dict):
            raise InvalidArgument("config_json", "must be a JSON object of model settings")
        if "training" in config:
            _check_training(config["training"])
    return TrainingRequest(max_epochs=max_epochs, horizon=horizon or 1, config=config)


# The training settings a config_json may give: (integer only, what a value must satisfy, what that is).
_TRAINING_BOUNDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "window": (True, lambda v: 2 <= v <= 10_000, "an integer from 2 to 10000"),
    "batch_size": (True, lambda v: 1 <= v <= 65_536, "an integer from 1 to 65536"),
    "max_steps": (True, lambda v: v >= 1, "an integer of at least 1, or null for no limit"),
    "patience": (True, lambda v: v >= 1, "an integer of at least 1"),
    "learning_rate": (False, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "weight_decay": (False, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "grid_s": (False, lambda v: 0 < v < math.inf, "a finite number above 0, or null for no grid"),
    "fine_tune_epochs": (True, lambda v: 1 <= v <= MAX_EPOCHS, f"an integer from 1 to {MAX_EPOCHS}"),
    "fine_tune_lr_scale": (False, lambda v: 0 < v <= 1, "a number in (0, 1]"),
}
_NULLABLE_TRAINING = frozenset({"max_steps", "grid_s"})
_BOOLEAN_TRAINING = frozenset({"fine_tune", "mixed_precision"})


def _check_training(training: Any) -> None:
    """Bound the ``training`` settings of a StartTraining config_json here, where a bad one is an
    ``InvalidArgument`` naming it, rather than in the job process, where it fails the job after
    torch has loaded, or runs one for ever (a window of a million, a batch no memory holds).
    Settings not named here are checked by the job (``training.TrainingConfig.for_job``)."""
    if not isinstance(training, dict):
        raise InvalidArgument("config_json.training", "must be a JSON object of training settings")
    for name, (integer, allowed, what) in _TRAINING_BOUNDS.items():
        if name in training and not _within(training[name], integer, allowed, name in _NULLABLE_TRAINING):
            raise InvalidArgument(f"config_json.training.{name}", f"must be {what}, got {training[name]!r:.64}")
    for name in _BOOLEAN_TRAINING:
        if name in training and not isinstance(training[name], bool):
            raise InvalidArgument(f"config_json.training.{name}", f"must be true or false, got {training[name]!r:.64}")


def _within(value: Any, integer: bool, allowed: Callable[[Any], bool], nullable: bool) -> bool:
    if value is None:
        return nullable
    # bool is an int to Python, never to a reader of the JSON; NaN fails every comparison.
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        return False
    return allowed(value)


# -- specs: what a job's process is given ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """A training job's process's work (``_train.run``)."""

    db: Path
    """The event log, read-only."""
    scope: str
    kind: str
    upto: int
    """The durable sequence when the job started: the last event it reads."""
    settings: JobSettings
    horizon: int
    max_epochs: int
    config: dict[str, Any]
    """The request's own, else the scope's tuned configuration, else empty (the defaults)."""
    checkpoint: Path
    """Where the new model goes."""
    champion: Path | None = None
    """The checkpoint of the champion that serves the scope now: the rival, and maybe the start."""
    tuned_by: str = ""
    """The tuning job whose configuration ``config`` is, if it is one."""


@dataclass(frozen=True, slots=True)
class TuningSpec:
    """A tuning job's process's work (``_tune.run``)."""

    db: Path
    scope: str
    kind: str
    upto: int
    settings: JobSettings
    request: TuningRequest
    directory: Path
    """The experiment's directory (``<data_dir>/tuning/<job id>``): resumed when it holds one."""


def replay_source(spec: TrainingSpec | TuningSpec) -> ReplaySource:
    """The events a job reads: its scope's, up to ``upto``, within the settings' replay buffer. In the
    job's process only (``training`` is torch's side)."""
    from swarmlearn.training import ReplayLimits, ReplaySource

    limits = ReplayLimits(recent=spec.settings.replay_recent, older=spec.settings.replay_older)
    return ReplaySource(spec.db, spec.scope, spec.upto, limits)

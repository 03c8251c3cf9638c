"""Background jobs: a queue, one job process at a time, progress, cancellation, and their records.

Jobs run in child processes (``_train`` and ``_tune``: torch and Ax never enter the daemon), one at a
time so training never takes more than ``training_threads`` cores from ingest and Predict; more
wait as PENDING. A job's record (state, progress, metrics, the model it made, what became of it,
a tuning job's trials) is kept in ``<data_dir>/jobs.json``, rewritten durably on every change,
so ``GetJob``/``ListJobs`` answer after a restart. A training job that was pending or running when
the daemon stopped is recorded as FAILED ("the daemon stopped"), never silently lost; a tuning job
is queued again and resumes its saved experiment (``<data_dir>/tuning/<job id>``).

When a training job's process reports, the daemon registers the checkpoint in the registry (its
only writer) and promotes it only if ``registry.decide`` says it beats every rival evaluated on the
same test split: the scope's champion, the online baselines and the naive forecast. A training job
without a config of its own uses the best configuration tuned for its scope and kind, if any; a
tuning job records its best configuration in the registry when it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import math
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmlearn._channel import encode, read_message, spawn
from swarmlearn._durable import write_durably
from swarmlearn.config import Settings
from swarmlearn.errors import InvalidArgument, NotFound
from swarmlearn.jobs._messages import (
    Cancel,
    Cancelled,
    Done,
    EpochDone,
    JobFailed,
    Outcome,
    Paused,
    Stop,
    TrialDone,
)
from swarmlearn.names import MAX_EPOCHS, MAX_HORIZON, MAX_TRIALS, MODEL_KINDS, OBJECTIVES, TUNING_METHODS
from swarmlearn.registry import ModelRegistry, TunedConfig, decide

log = logging.getLogger(__name__)

_TRAIN_MAIN = "from swarmlearn.jobs._train import main; main()"
_TUNE_MAIN = "from swarmlearn.jobs._tune import main; main()"
_KEEP_FINISHED = 1000  # records of finished jobs kept in jobs.json
_CANCEL_GRACE_S = 10.0
_STOPPED = "the daemon stopped before it finished; start it again"


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class Job:
    job_id: str
    kind: str
    """``training`` or ``tuning``."""
    scope: str
    model_kind: str
    state: JobState = JobState.PENDING
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    epoch: int = 0
    total_epochs: int = 0
    train_loss: float = 0.0
    val_loss: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    """Test-split metrics of the model it made, ``<target>.<metric>``."""
    model_version: str = ""
    """``<kind>-v<version>`` of the model it registered."""
    error: str = ""
    note: str = ""
    """What became of the model: promoted or not, and why; for tuning, the best configuration."""
    request: dict[str, Any] = field(default_factory=dict)
    trials_done: int = 0
    total_trials: int = 0
    best_objective: float | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    """A tuning job's trials: index, status, value, epochs, params, error."""
    config: dict[str, Any] = field(default_factory=dict)
    """A tuning job's best configuration (a training job's ``config_json``)."""

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "state": self.state.value}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Job:
        return cls(**{**raw, "state": JobState(raw["state"])})


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

    def ray(self) -> dict[str, Any]:
        """The spec's ``ray`` for a job's process: empty where no cluster is set."""
        if not self.ray_address:
            return {}
        return {"address": self.ray_address, "num_cpus": self.ray_num_cpus, "num_gpus": self.ray_num_gpus}

    def replay(self) -> dict[str, int]:
        """The spec's ``replay`` (``training.ReplayLimits``' fields)."""
        return {"recent": self.replay_recent, "older": self.replay_older}

    def tuning(self) -> dict[str, int]:
        """What a tuning request is checked with (``TunerConfig``'s fields)."""
        return {
            "concurrency": self.tuning_concurrency, "max_epochs": self.tuning_max_epochs,
            "grid_points": self.tuning_grid_points, "max_grid": self.tuning_max_grid,
        }  # fmt: skip


class JobManager:
    def __init__(
        self,
        data_dir: Path,
        db_path: Path,
        registry: ModelRegistry,
        settings: JobSettings,
        *,
        durable_sequence: Callable[[], int],
        knows_agent: Callable[[str], bool],
    ) -> None:
        self.path = data_dir / "jobs.json"
        self.tuning_dir = data_dir / "tuning"
        self.settings = settings
        self.db_path = db_path
        self.registry = registry
        self._durable = durable_sequence
        self._knows = knows_agent
        self.jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._runner: asyncio.Task[None] | None = None
        self._current: tuple[str, asyncio.StreamWriter, asyncio.subprocess.Process] | None = None
        self._stopping = False
        self._every_events, self._every_s, self._on_drift, self._scheduled_kind = 0, 0.0, False, "lstm"
        self._last_scheduled_seq = 0
        self._timer: asyncio.Task[None] | None = None
        self._load()

    # -- records ----------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text())
            jobs = [Job.from_json(item) for item in raw["jobs"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("job records %s unreadable (%s); starting with none", self.path, exc)
            return
        for job in jobs:
            if job.kind == "tuning" and not job.state.finished:  # resumes its saved experiment
                job.state, job.note = JobState.PENDING, "resumed after a restart of the daemon"
                self._queue.put_nowait(job.job_id)
            elif not job.state.finished:
                job.state, job.error, job.finished_at = (
                    JobState.FAILED,
                    "the daemon stopped before it finished",
                    time.time(),
                )
            self.jobs[job.job_id] = job
        self._save()

    def _save(self) -> None:
        finished = sorted((j for j in self.jobs.values() if j.state.finished), key=lambda j: j.created_at)
        for old in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self.jobs[old.job_id]
        write_durably(self.path, json.dumps({"format": 1, "jobs": [j.to_json() for j in self.jobs.values()]}))

    async def _update(self, job: Job, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(job, name, value)
        self._save()
        async with self._changed:
            self._changed.notify_all()

    # -- the API ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="swarmlearn-jobs")

    async def submit_training(
        self, scope: str, model_kind: str, *, max_epochs: int = 0, horizon: int = 0, config_json: str = ""
    ) -> Job:
        if model_kind not in MODEL_KINDS:
            raise InvalidArgument("model_kind", f"one of {', '.join(MODEL_KINDS)}, got {model_kind!r}")
        if scope and not self._knows(scope):
            raise NotFound(f"unknown agent {scope[:128]!r}: no event of it is stored")
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
        request = {"max_epochs": max_epochs, "horizon": horizon or 1, "config": config}
        job = Job(f"train-{uuid.uuid4().hex[:12]}", "training", scope, model_kind, request=request)
        self.jobs[job.job_id] = job
        self._save()
        self._queue.put_nowait(job.job_id)
        return job

    async def submit_tuning(
        self,
        scope: str,
        model_kind: str,
        *,
        method: str,
        max_trials: int = 0,
        concurrency: int = 0,
        search_space_json: str = "",
        objective: str = "",
    ) -> Job:
        """Check the request (the search space in a child process: it needs the configs, hence torch)
        and queue the job. Every problem is an ``InvalidArgument`` naming the field."""
        method = method or "bayesian"
        if method not in TUNING_METHODS:
            raise InvalidArgument("method", f"one of {', '.join(TUNING_METHODS)}, got {method[:64]!r}")
        if model_kind not in MODEL_KINDS:
            raise InvalidArgument("model_kind", f"one of {', '.join(MODEL_KINDS)}, got {model_kind[:64]!r}")
        objective = objective or "val_mase"
        if objective not in OBJECTIVES:
            raise InvalidArgument("objective", f"one of {', '.join(OBJECTIVES)}, got {objective[:64]!r}")
        if max_trials > MAX_TRIALS:
            raise InvalidArgument("max_trials", f"at most {MAX_TRIALS}, got {max_trials}")
        if concurrency > 64:
            raise InvalidArgument("concurrency", f"at most 64, got {concurrency}")
        if scope and not self._knows(scope):
            raise NotFound(f"unknown agent {scope[:128]!r}: no event of it is stored")
        checked = await check_space(
            model_kind, search_space_json, method, max_trials or (0 if method == "grid" else 20), self.settings.tuning()
        )
        request = {
            "method": method,
            "max_trials": max_trials or (0 if method == "grid" else 20),
            "concurrency": concurrency or self.settings.tuning_concurrency,
            "space": checked["space"],
            "objective": objective,
            "horizon": 1,
        }
        job = Job(f"tune-{uuid.uuid4().hex[:12]}", "tuning", scope, model_kind, request=request)
        job.total_trials = checked["total_trials"]
        self.jobs[job.job_id] = job
        self._save()
        self._queue.put_nowait(job.job_id)
        return job

    # -- the scheduler ------------------------------------------------------------------------------

    def configure_schedule(self, *, every_events: int, every_s: float, on_drift: bool, model_kind: str) -> None:
        """Retrain the swarm's model (scope ``""``) every ``every_events`` new events, every
        ``every_s`` seconds, and/or on drift (0 / False: not on that trigger). A trigger while a
        scheduled job is pending or running does nothing, so triggers never pile up jobs."""
        self._every_events, self._every_s, self._on_drift, self._scheduled_kind = (
            every_events, every_s, on_drift, model_kind
        )  # fmt: skip
        self._last_scheduled_seq = self._durable()
        if every_s > 0:
            self._timer = asyncio.create_task(self._every(every_s), name="swarmlearn-retrain-timer")

    def committed(self, seq: int) -> None:
        if self._every_events and seq - self._last_scheduled_seq >= self._every_events:
            self._schedule(f"{seq - self._last_scheduled_seq} new events")

    def drifted(self, drift: Any) -> None:
        if self._on_drift:
            self._schedule(f"drift in {drift.target} of agent {drift.agent_id!r}")

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if self._durable() > self._last_scheduled_seq:  # only when something new arrived
                self._schedule(f"{seconds:.0f} s passed")

    def _schedule(self, reason: str) -> None:
        if any(j.request.get("scheduled") and not j.state.finished for j in self.jobs.values()):
            return
        self._last_scheduled_seq = self._durable()
        job = Job(f"train-{uuid.uuid4().hex[:12]}", "training", "", self._scheduled_kind)
        job.request = {"max_epochs": 0, "horizon": 1, "config": {}, "scheduled": reason}
        self.jobs[job.job_id] = job
        self._save()
        self._queue.put_nowait(job.job_id)
        log.info("scheduled training job %s (%s): %s", job.job_id, self._scheduled_kind, reason)

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id[:128]!r}")
        return job

    def list(self, *, state: JobState | None = None, kind: str | None = None, limit: int = 0) -> list[Job]:
        jobs = [j for j in self.jobs.values() if (state is None or j.state == state) and (kind in (None, j.kind))]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit] if limit else jobs

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """The job now, then after every change, until it has finished."""
        job = self.get(job_id)
        seen: dict[str, Any] | None = None
        while True:
            current = job.to_json()
            if current != seen:
                seen = current
                yield Job.from_json(current)
            if job.state.finished:
                return
            async with self._changed:
                await self._changed.wait()

    async def cancel(self, job_id: str) -> Job:
        """A pending job ends at once; a running one is asked to stop and ends as CANCELLED when it has."""
        job = self.get(job_id)
        if job.state == JobState.PENDING:
            await self._update(job, state=JobState.CANCELLED, finished_at=time.time())
        elif job.state == JobState.RUNNING and self._current is not None and self._current[0] == job_id:
            self._current[1].write(encode(Cancel()))
        return job

    async def stop(self) -> None:
        """Cancel the running job (killed if it does not stop within 10 s) and stop the runner."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._current is not None:
            _, writer, process = self._current
            with contextlib.suppress(ConnectionError):  # a tuning job keeps its experiment to resume
                writer.write(encode(Stop()))
            try:
                await asyncio.wait_for(process.wait(), _CANCEL_GRACE_S)
            except TimeoutError:
                process.kill()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for job in self.jobs.values():
            if job.kind == "tuning" and not job.state.finished:
                job.state, job.note = JobState.PENDING, "the daemon stopped; it resumes when the daemon starts"
            elif not job.state.finished:
                job.state, job.error, job.finished_at = (
                    JobState.FAILED,
                    "the daemon stopped before it finished",
                    time.time(),
                )
        self._save()

    # -- running ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            job = self.jobs.get(await self._queue.get())
            if job is None or job.state != JobState.PENDING:
                continue
            try:
                await (self._run_tuning(job) if job.kind == "tuning" else self._run_training(job))
            except Exception as exc:  # the runner must survive whatever one job does
                log.exception("%s job %s failed", job.kind, job.job_id)
                await self._update(
                    job, state=JobState.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=time.time()
                )

    async def _run_training(self, job: Job) -> None:
        version = self.registry.next_version(job.scope, job.model_kind)
        # The rival is what serves the scope now: an agent without a champion of its own is served
        # by the swarm's (and a compatible one is also where training may start from).
        champion = self.registry.champion(job.scope) or (self.registry.champion("") if job.scope else None)
        scope_dir = job.scope or "_swarm"
        checkpoint = self.registry.root / _safe(scope_dir) / f"{job.model_kind}-v{version}.pt"
        config, tuned = job.request["config"], None
        if not config:
            tuned = self.registry.tuned(job.scope, job.model_kind)
            config = tuned.config if tuned is not None else {}
        spec = {
            "db": str(self.db_path),
            "scope": job.scope,
            "kind": job.model_kind,
            "upto": self._durable(),
            "replay": self.settings.replay(),
            "horizon": job.request["horizon"],
            "max_epochs": job.request["max_epochs"] or self.settings.default_epochs,
            "config": config,
            "tuned_by": tuned.job_id if tuned is not None else "",
            "champion": str(self.registry.checkpoint_path(champion)) if champion is not None else "",
            "checkpoint": str(checkpoint),
            "threads": self.settings.threads,
            "ray": self.settings.ray(),
        }
        await self._update(job, state=JobState.RUNNING, started_at=time.time(), total_epochs=spec["max_epochs"])

        async def progress(message: EpochDone | TrialDone) -> None:
            assert isinstance(message, EpochDone)
            await self._update(
                job, epoch=message.epoch, total_epochs=message.max_epochs, train_loss=message.train_loss,
                val_loss=message.val_loss,
            )  # fmt: skip

        outcome = await self._converse(job, _TRAIN_MAIN, spec, progress)
        if isinstance(outcome, Done):
            await self._finish(job, version, outcome.result)

    async def _run_tuning(self, job: Job) -> None:
        request = job.request
        spec = {
            "db": str(self.db_path),
            "scope": job.scope,
            "kind": job.model_kind,
            "upto": request.setdefault("upto", self._durable()),  # a resumed job sees the same events
            "replay": self.settings.replay(),
            "horizon": request["horizon"],
            "method": request["method"],
            "max_trials": request["max_trials"],
            "concurrency": request["concurrency"],
            "space": request["space"],
            "objective": request["objective"],
            "max_epochs": self.settings.tuning_max_epochs,
            "grid_points": self.settings.tuning_grid_points,
            "max_grid": self.settings.tuning_max_grid,
            "directory": str(self.tuning_dir / job.job_id),
            "threads": self.settings.threads,
            "ray": self.settings.ray(),
        }
        await self._update(job, state=JobState.RUNNING, started_at=job.started_at or time.time())

        async def progress(message: EpochDone | TrialDone) -> None:
            assert isinstance(message, TrialDone)
            trial = message.trial
            trials = [t for t in job.trials if t["index"] != trial["index"]] + [trial]
            trials.sort(key=lambda t: t["index"])
            await self._update(
                job, trials_done=message.trials_done, total_trials=message.total_trials,
                best_objective=message.best_value, trials=trials,
            )  # fmt: skip

        outcome = await self._converse(job, _TUNE_MAIN, spec, progress)
        if isinstance(outcome, Paused):
            await self._update(job, state=JobState.PENDING, note="the daemon stopped; it resumes when it starts")
        elif isinstance(outcome, Done):
            result = outcome.result
            self.registry.record_tuned(
                TunedConfig(job.scope, job.model_kind, result["config"], request["objective"], result["best_value"],
                            job.job_id, time.time())
            )  # fmt: skip
            note = (
                f"best {request['objective']} {result['best_value']:.4g} (trial {result['best_trial']}, "
                f"{result['total_epochs']} epochs in all); the next training of {job.model_kind} for "
                f"{'the swarm' if not job.scope else repr(job.scope)} uses it"
            )
            log.info("tuning job %s: %s", job.job_id, note)
            await self._update(
                job,
                state=JobState.SUCCEEDED,
                finished_at=time.time(),
                trials=result["trials"],
                best_objective=result["best_value"],
                config=result["config"],
                metrics={f"best.{request['objective']}": result["best_value"], "epochs": result["total_epochs"]},
                note=note,
            )

    async def _converse(
        self,
        job: Job,
        main: str,
        spec: dict[str, Any],
        on_progress: Callable[[EpochDone | TrialDone], Awaitable[None]],
    ) -> Outcome:
        """Run the job's process, passing its progress messages on until its outcome, and end the job
        when that is a failure or a cancel. Returns the outcome."""
        process, reader, writer = await spawn(main, json.dumps(spec))
        self._current = (job.job_id, writer, process)
        outcome: Outcome = JobFailed("")
        try:
            while True:
                message = await read_message(reader)
                if isinstance(message, EpochDone | TrialDone):
                    await on_progress(message)
                else:
                    outcome = message
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._current = None
            writer.close()
            code = await process.wait()
        if isinstance(outcome, Cancelled) and self._stopping:
            await self._update(job, state=JobState.FAILED, error=_STOPPED, finished_at=time.time())
        elif isinstance(outcome, Cancelled):
            await self._update(job, state=JobState.CANCELLED, finished_at=time.time())
        elif isinstance(outcome, JobFailed):
            reason = outcome.reason or f"the job process exited with {code} without a result"
            if not outcome.reason and spec.get("ray"):
                reason += f" (was the Ray cluster at {spec['ray']['address']!r} lost?)"
            log.error("%s job %s failed: %s", job.kind, job.job_id, reason)
            await self._update(
                job, state=JobState.FAILED, error=reason.strip().splitlines()[-1], finished_at=time.time()
            )
        return outcome

    async def _finish(self, job: Job, version: int, result: dict[str, Any]) -> None:
        entry = self.registry.register(
            job.scope, job.model_kind, version, Path(result["checkpoint"]),
            metrics=result["metrics"], config=result["config"], job_id=job.job_id,
        )  # fmt: skip
        decision = decide(
            result["comparisons"], margin=self.settings.promotion_margin, alpha=self.settings.promotion_alpha
        )
        if decision.promote:
            self.registry.promote(entry.scope, entry.kind, entry.version)  # its listeners reload the champions
        note = f"{'promoted: ' if decision.promote else 'kept as a challenger: '}{decision.reason}"
        if result.get("start"):
            note += f"; {result['start']}"
        log.info("training job %s made %s-v%d of scope %r; %s", job.job_id, job.model_kind, version, job.scope, note)
        await self._update(
            job,
            state=JobState.SUCCEEDED,
            finished_at=time.time(),
            metrics=result["metrics"],
            model_version=f"{job.model_kind}-v{version}",
            note=note,
        )


async def check_space(
    kind: str, space_json: str, method: str, max_trials: int, tuning: Mapping[str, int]
) -> dict[str, Any]:
    """The search space parsed and checked by ``tuning.check_request`` in a child process (the configs
    it is checked against import torch, which the daemon never does): ``{"space": [...],
    "total_trials": n}``, or an ``InvalidArgument`` naming the field."""
    request = {"kind": kind, "space": space_json, "method": method, "max_trials": max_trials, **tuning}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from swarmlearn.tuning import main_check; main_check()",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(json.dumps(request).encode())
    if process.returncode != 0:
        raise RuntimeError(f"checking the search space failed: {err.decode(errors='replace')[-500:]}")
    answer: dict[str, Any] = json.loads(out)
    if "field" in answer:
        raise InvalidArgument(answer["field"], answer["reason"])
    return answer


# The training settings a config_json may give: (integer only, what a value must satisfy, what that is).
_TRAINING_BOUNDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "window": (True, lambda v: 2 <= v <= 10_000, "an integer from 2 to 10000"),
    "batch_size": (True, lambda v: 1 <= v <= 65_536, "an integer from 1 to 65536"),
    "max_steps": (True, lambda v: v >= 1, "an integer of at least 1, or null for no limit"),
    "patience": (True, lambda v: v >= 1, "an integer of at least 1"),
    "learning_rate": (False, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "weight_decay": (False, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "grid_s": (False, lambda v: 0 < v < math.inf, "a finite number above 0, or null for no grid"),
}
_NULLABLE_TRAINING = frozenset({"max_steps", "grid_s"})


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


def _within(value: Any, integer: bool, allowed: Callable[[Any], bool], nullable: bool) -> bool:
    if value is None:
        return nullable
    # bool is an int to Python, never to a reader of the JSON; NaN fails every comparison.
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        return False
    return allowed(value)


def _safe(scope: str) -> str:
    """A directory name for a scope: agent ids may hold any character."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in scope)[:64]
    return f"{keep}-{uuid.uuid5(uuid.NAMESPACE_URL, scope).hex[:8]}"

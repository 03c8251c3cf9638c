"""Background jobs: a queue, one job process at a time, progress, cancellation, and their records.

Jobs run in child processes (``_train`` and ``_tune``: torch and Ax never enter the daemon), one at a
time so training never takes more than ``training_threads`` cores from ingest and Predict; more
wait as PENDING. A job's record (state, progress, metrics, the model it made, what became of it,
a tuning job's trials, its typed request) is a row of ``<data_dir>/jobs.sqlite3`` (``_records``),
written on every change of that job, so ``GetJob``/``ListJobs`` answer after a restart. A training
job that was pending or running when the daemon stopped is recorded as FAILED ("the daemon
stopped"), never silently lost; a tuning job is queued again and resumes its saved experiment
(``<data_dir>/tuning/<job id>``). A job's process gets a typed spec (``_spec``), built when it starts.

When a training job's process reports, the daemon registers the checkpoint in the registry (its
only writer) and promotes it only if ``registry.decide`` says it beats every rival evaluated on the
same test split: the scope's champion, the online baselines and the naive forecast. A training job
without a config of its own uses the best configuration tuned for its scope and kind, if any; a
tuning job records its best configuration in the registry when it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from swarmlearn._channel import encode, read_message, spawn
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
from swarmlearn.jobs._records import Job, JobRecords, JobState
from swarmlearn.jobs._spec import (
    JobSettings,
    TrainingRequest,
    TrainingSpec,
    TuningRequest,
    TuningSpec,
    training_request,
)
from swarmlearn.layout import DataDir
from swarmlearn.names import MAX_TRIALS, MODEL_KINDS, OBJECTIVES, TUNING_METHODS
from swarmlearn.registry import ModelRegistry, TunedConfig, decide

log = logging.getLogger(__name__)

_TRAIN_MAIN = "from swarmlearn.jobs._train import main; main()"
_TUNE_MAIN = "from swarmlearn.jobs._tune import main; main()"
_KEEP_FINISHED = 1000
"""Records of finished jobs kept: the oldest beyond it are deleted when a job is submitted."""
_CANCEL_GRACE_S = 10.0
_STOPPED = "the daemon stopped before it finished; start it again"


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
        self.tuning_dir = DataDir(data_dir).tuning
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
        self.records = JobRecords(DataDir(data_dir).jobs)
        try:
            self.records.import_legacy(data_dir)
            self._load()
        except BaseException:
            self.records.close()
            raise

    # -- records ----------------------------------------------------------------------------------

    def _load(self) -> None:
        cut = []
        for job in self.records.load():
            if job.kind == "tuning" and not job.state.finished:  # resumes its saved experiment
                job.state, job.note = JobState.PENDING, "resumed after a restart of the daemon"
                self._queue.put_nowait(job.job_id)
                cut.append(job)
            elif not job.state.finished:
                job.state, job.error, job.finished_at = (
                    JobState.FAILED,
                    "the daemon stopped before it finished",
                    time.time(),
                )
                cut.append(job)
            self.jobs[job.job_id] = job
        self.records.update(cut)

    def _add(self, job: Job) -> None:
        """Record a new job (one row) and queue it; forget the oldest finished ones beyond the limit."""
        self.records.insert(job)
        self.jobs[job.job_id] = job
        self._queue.put_nowait(job.job_id)
        finished = sorted((j for j in self.jobs.values() if j.state.finished), key=lambda j: j.created_at)
        old = [j.job_id for j in finished[: max(0, len(finished) - _KEEP_FINISHED)]]
        if old:
            self.records.delete(old)
            for job_id in old:
                del self.jobs[job_id]

    async def _update(self, job: Job, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(job, name, value)
        self.records.update([job])
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
        request = training_request(max_epochs, horizon, config_json)
        job = Job(f"train-{uuid.uuid4().hex[:12]}", scope, model_kind, request)
        self._add(job)
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
        request = TuningRequest(
            method=method,
            max_trials=max_trials or (0 if method == "grid" else 20),
            concurrency=concurrency or self.settings.tuning_concurrency,
            space=checked["space"],
            objective=objective,
        )
        job = Job(f"tune-{uuid.uuid4().hex[:12]}", scope, model_kind, request, total_trials=checked["total_trials"])
        self._add(job)
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
        scheduled = (j for j in self.jobs.values() if isinstance(j.request, TrainingRequest) and j.request.scheduled)
        if any(not j.state.finished for j in scheduled):
            return
        self._last_scheduled_seq = self._durable()
        job = Job(f"train-{uuid.uuid4().hex[:12]}", "", self._scheduled_kind, TrainingRequest(scheduled=reason))
        self._add(job)
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
        seen: Job | None = None
        while True:
            if job != seen:
                seen = copy.deepcopy(job)
                yield copy.deepcopy(job)
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
        cut = [job for job in self.jobs.values() if not job.state.finished]
        for job in cut:
            if job.kind == "tuning":
                job.state, job.note = JobState.PENDING, "the daemon stopped; it resumes when the daemon starts"
            else:
                job.state, job.error, job.finished_at = (
                    JobState.FAILED,
                    "the daemon stopped before it finished",
                    time.time(),
                )
        self.records.update(cut)
        self.records.close()

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
        request = job.request
        assert isinstance(request, TrainingRequest)
        config, tuned = request.config, None
        if not config:
            tuned = self.registry.tuned(job.scope, job.model_kind)
            config = tuned.config if tuned is not None else {}
        spec = TrainingSpec(
            db=self.db_path,
            scope=job.scope,
            kind=job.model_kind,
            upto=self._durable(),
            settings=self.settings,
            horizon=request.horizon,
            max_epochs=request.max_epochs or self.settings.default_epochs,
            config=config,
            checkpoint=checkpoint,
            champion=self.registry.checkpoint_path(champion) if champion is not None else None,
            tuned_by=tuned.job_id if tuned is not None else "",
        )
        await self._update(job, state=JobState.RUNNING, started_at=time.time(), total_epochs=spec.max_epochs)

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
        assert isinstance(request, TuningRequest)
        if request.upto is None:  # its first start: a resumed job reads the same events
            request = dataclasses.replace(request, upto=self._durable())
        assert request.upto is not None
        spec = TuningSpec(
            db=self.db_path,
            scope=job.scope,
            kind=job.model_kind,
            upto=request.upto,
            settings=self.settings,
            request=request,
            directory=self.tuning_dir / job.job_id,
        )
        await self._update(job, state=JobState.RUNNING, started_at=job.started_at or time.time(), request=request)

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
                TunedConfig(job.scope, job.model_kind, result["config"], request.objective, result["best_value"],
                            job.job_id, time.time())
            )  # fmt: skip
            note = (
                f"best {request.objective} {result['best_value']:.4g} (trial {result['best_trial']}, "
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
                metrics={f"best.{request.objective}": result["best_value"], "epochs": result["total_epochs"]},
                note=note,
            )

    async def _converse(
        self,
        job: Job,
        main: str,
        spec: TrainingSpec | TuningSpec,
        on_progress: Callable[[EpochDone | TrialDone], Awaitable[None]],
    ) -> Outcome:
        """Run the job's process, give it its spec, pass its progress messages on until its outcome,
        and end the job when that is a failure or a cancel. Returns the outcome."""
        process, reader, writer = await spawn(main)
        writer.write(encode(spec))
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
            if not outcome.reason and spec.settings.ray_address:
                reason += f" (was the Ray cluster at {spec.settings.ray_address!r} lost?)"
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


def _safe(scope: str) -> str:
    """A directory name for a scope: agent ids may hold any character."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in scope)[:64]
    return f"{keep}-{uuid.uuid5(uuid.NAMESPACE_URL, scope).hex[:8]}"

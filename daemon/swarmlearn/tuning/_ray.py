"""Trials on a Ray cluster: a ``concurrent.futures.Executor`` whose tasks are Ray tasks.

``RayExecutor`` is what the tuning job's process hands the ``Tuner`` instead of its local process pool
when ``ray_address`` is set; Ax and the tuner stay in that process, only the trials travel. Each
``submit`` is one Ray task with the declared resources (``num_cpus``, ``num_gpus``) and
``max_retries=1``: a trial whose worker dies (killed, out of memory, its node lost) runs once more,
and a second death reaches the tuner as ``WorkerCrashedError``, which fails the trial in Ax.
Exceptions the trial itself raises are not retried (they would raise again). An error that says the
cluster itself is gone (the local raylet died, a system or RPC error) fails that trial, and the next
``submit`` raises ``ClusterUnavailable``, which ends the search (the job fails with that reason)
rather than failing every remaining trial one by one. A driver that loses the GCS for 60 s is ended by
Ray itself; the daemon then records the job failed.

Data travels once: ``shipped`` values go to the cluster's object store with ``ray.put`` when the
executor starts; a worker process resolves the references the first time it runs one of this
executor's tasks and calls ``initializer(*initargs, *shipped)`` (as ``ProcessPoolExecutor`` does with
its initializer), so a remote node never reads the daemon's SQLite. ``submit_then`` lets the caller
finish a task's value in this process before the future has it (``tuning._trial.RayTrials`` writes
hyperband's weights, sent back as bytes, to the job's directory).

Cancelling a future (the tuner does it to every running trial when its job is cancelled or stopped)
cancels the Ray task with ``force=True``: the worker running it is killed at once, and a cancelled
task is never retried. A cooperative ``KeyboardInterrupt`` (``force=False``) is not delivered while a
trial sits in torch's C++ code.

Ray is imported here only (``pip install 'swarmlearn[ray]'``); nothing imports this module unless
``ray_address`` is set.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, InvalidStateError
from typing import Any

_CONNECT_TIMEOUT_S = 10.0

_initialised: list[str] = []
"""The executor whose initializer last ran in this worker process (Ray reuses a job's workers)."""


class ClusterUnavailable(RuntimeError):
    """The Ray cluster cannot be reached, or was lost; the message names the address."""


def connect_ray(address: str) -> bool:
    """Join the cluster at ``address`` (``auto``, ``host:port`` or ``ray://host:port``) unless this
    process already is in one. True when this call connected (so the caller disconnects)."""
    import ray

    if ray.is_initialized():
        return False
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # ConnectionError, or Ray's own for a refused handshake
        raise ClusterUnavailable(f"cannot join the Ray cluster at {address!r}: {type(exc).__name__}: {exc}") from exc
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable GCS for minutes before it gives up; a plain TCP connect says at once."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {address!r}: {exc}") from None


class _TaskFuture(Future[Any]):
    """A Ray task's future whose ``cancel`` cancels the task (``ObjectRef.future()``'s does not)."""

    def __init__(self, ref: Any) -> None:
        super().__init__()
        self.ref = ref

    def cancel(self) -> bool:
        import ray

        with contextlib.suppress(Exception):  # finished already, or the cluster is gone
            ray.cancel(self.ref, force=True)
        return super().cancel()


def _run_task(key: str, setup: tuple[Any, ...] | None, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """The body of every task: the executor's initializer once per worker process, then ``fn``."""
    if setup is not None and _initialised[-1:] != [key]:
        import ray

        initializer, initargs, refs = setup
        initializer(*initargs, *ray.get(refs))
        _initialised[:] = [key]
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    def __init__(
        self,
        address: str,
        *,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_retries: int = 1,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        shipped: Iterable[Any] = (),
    ) -> None:
        """Join the cluster at ``address`` (``ClusterUnavailable`` if it cannot) unless this process is
        in one already, and put ``shipped`` in its object store. Each task asks for ``num_cpus`` CPUs
        and ``num_gpus`` GPUs and is retried ``max_retries`` times if its worker dies."""
        import ray

        self.address = address
        self._owns_connection = connect_ray(address)
        try:
            refs = [ray.put(value) for value in shipped]
        except Exception as exc:
            self._disconnect()
            raise ClusterUnavailable(f"cannot ship the data to the Ray cluster at {address!r}: {exc}") from exc
        self._setup = (initializer, tuple(initargs), refs) if initializer is not None else None
        # The references are inside a tuple, so Ray passes them unresolved: a worker fetches them once.
        self._task = ray.remote(_run_task).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False
        )
        self._key = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._running: set[_TaskFuture] = set()
        self._shutdown = False
        # What says the cluster, not the trial, failed: a later submit raises ClusterUnavailable.
        self._lost_types = (ray.exceptions.LocalRayletDiedError, ray.exceptions.RaySystemError, ray.exceptions.RpcError)
        self._lost: BaseException | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.submit_then(None, fn, *args, **kwargs)

    def submit_then(
        self, finish: Callable[[Any], Any] | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """``submit``, with ``finish`` applied here, in this process, to the task's value before the
        future has it (what only this machine can do: write a file the task sent back)."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            if self._lost is not None:
                raise ClusterUnavailable(
                    f"lost the Ray cluster at {self.address!r}: {type(self._lost).__name__}: {self._lost}"[:1000]
                )
            try:
                ref = self._task.remote(self._key, self._setup, fn, args, kwargs)
            except Exception as exc:
                raise ClusterUnavailable(f"lost the Ray cluster at {self.address!r}: {exc}") from exc
            future = _TaskFuture(ref)
            self._running.add(future)
        future.add_done_callback(self._forget)
        ref.future().add_done_callback(lambda source: self._settle(future, source, finish))
        return future

    def _settle(self, target: Future[Any], source: Future[Any], finish: Callable[[Any], Any] | None) -> None:
        error = source.exception()
        if isinstance(error, self._lost_types):  # before the tuner can see it and submit again
            self._lost = error
        if target.cancelled():
            return
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
            if error is None:
                try:
                    value = source.result() if finish is None else finish(source.result())
                except Exception as exc:
                    error = exc
            if error is not None:
                target.set_exception(error)
            else:
                target.set_result(value)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)  # type: ignore[arg-type]

    def cancel_all(self) -> None:
        """Cancel every task not finished yet."""
        with self._lock:
            running = list(self._running)
        for future in running:
            future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            running = list(self._running)
        if cancel_futures:
            self.cancel_all()
        if wait:
            from concurrent.futures import wait as wait_for

            wait_for(running)
        self._setup = None  # the shipped data's references: released while the cluster is still there
        self._disconnect()

    def _disconnect(self) -> None:
        if self._owns_connection:
            import ray

            self._owns_connection = False
            # An ObjectRef freed after ray.shutdown() calls into a core worker that is gone (a crash of
            # the process, not an exception): free the unreachable ones now, while it is alive.
            gc.collect()
            ray.shutdown()

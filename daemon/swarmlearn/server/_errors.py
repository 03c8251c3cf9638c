"""The one table from domain errors to gRPC status codes (and retry hints), and the wrapper that applies it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from swarmlearn.errors import (
    Disabled,
    InvalidArgument,
    NotFound,
    NotReady,
    Overloaded,
    ShuttingDown,
    SwarmLearnDaemonError,
)
from swarmlearn.store import StoreClosed, WriteFailed

log = logging.getLogger(__name__)

STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    Disabled: grpc.StatusCode.FAILED_PRECONDITION,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    StoreClosed: grpc.StatusCode.UNAVAILABLE,
    WriteFailed: grpc.StatusCode.UNAVAILABLE,
}

RETRY_AFTER_MS = 1000
"""The hint sent with a refused stream and a failed write (as trailing metadata ``retry-after-ms``
and in the message); while writes fail, the daemon probes the disk this often."""
_HINTED = (Overloaded, WriteFailed)


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    for kind in type(exc).__mro__:
        code = STATUS_OF.get(kind)  # type: ignore[call-overload]
        if code is not None:
            return code
    return None


async def abort_for(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    """End the RPC with the status ``exc`` maps to; unknown errors are logged and become INTERNAL."""
    code = status_of(exc)
    if code is None or not isinstance(exc, (SwarmLearnDaemonError, StoreClosed, WriteFailed)):
        log.error("%s failed", method, exc_info=exc)
        await context.abort(
            grpc.StatusCode.INTERNAL, f"{method}: internal error ({type(exc).__name__}); see the daemon log"
        )
    log.debug("%s answered %s: %s", method, code.name, exc)
    message = str(exc)
    if isinstance(exc, _HINTED):
        context.set_trailing_metadata((("retry-after-ms", str(RETRY_AFTER_MS)),))
        message += f"; retry in {RETRY_AFTER_MS} ms"
    await context.abort(code, message)


R = TypeVar("R")


def mapped(fn: Callable[[Any, Any, Any], Awaitable[R]]) -> Callable[[Any, Any, Any], Awaitable[R]]:
    """Apply the table to a unary handler."""

    @functools.wraps(fn)
    async def handler(self: Any, request: Any, context: Any) -> R:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await abort_for(exc, context, fn.__name__)
            raise  # unreachable: abort raises

    return handler

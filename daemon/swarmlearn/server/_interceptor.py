"""One server interceptor for what every RPC shares: request ids, bearer tokens and their roles,
timing, and malformed requests (INVALID_ARGUMENT, not grpc's UNKNOWN with a traceback)."""

from __future__ import annotations

import contextlib
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from swarmlearn.errors import MalformedRequest
from swarmlearn.server._logging import request_id
from swarmlearn.server._metrics import Metrics
from swarmlearn.server._security import TokenChecker, denying_handler

# grpc-stubs types handlers for the sync server; the aio ones are the same objects with coroutine
# behaviours, so they are Any here.
Handler = Any
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


class _Unparsed:
    """Stands in for a unary request that could not be parsed: grpc parses it before the handler
    runs, where an error could only become UNKNOWN, so the handler's wrapper aborts instead."""

    __slots__ = ("details",)

    def __init__(self, error: DecodeError) -> None:
        self.details = str(MalformedRequest(str(error)))


class RequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,type-arg]
    """Sets the request id (the ``x-request-id`` metadata, or a new one), refuses calls when tokens
    are configured and the caller's token is missing or invalid (UNAUTHENTICATED; health stays
    open) or its role may not call the RPC (PERMISSION_DENIED), times unary RPCs into
    ``swarmlearn_rpc_seconds``, and answers requests that cannot be parsed with INVALID_ARGUMENT."""

    def __init__(self, metrics: Metrics, tokens: TokenChecker | None) -> None:
        self._metrics = metrics
        self._tokens = tokens

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method  # type: ignore[attr-defined]
        metadata = details.invocation_metadata  # type: ignore[attr-defined]
        rid = next((str(v) for k, v in metadata or () if k == "x-request-id"), "") or uuid.uuid4().hex[:16]
        refusal = None if self._tokens is None else self._tokens.refusal(method, metadata)
        if refusal is not None:
            return denying_handler(handler, *refusal)
        return _wrap(handler, method.rsplit("/", 1)[-1], rid, self._metrics)


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return _Unparsed(exc)

    return parse


def _strict(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Raises where the handler reads the request stream, so Ingest maps it like any other bad
    argument, after acknowledging the batches before it."""
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            raise MalformedRequest(str(exc)) from None

    return parse


async def _refuse_unparsed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if type(request) is _Unparsed:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)


def _wrap(handler: Handler, name: str, rid: str, metrics: Metrics) -> Handler:
    # A single request is parsed before the handler runs (a failure becomes an _Unparsed request),
    # a request stream as the handler reads it (a failure raises MalformedRequest there).
    streamed_requests = handler.stream_unary is not None or handler.stream_stream is not None
    deserializer = (_strict if streamed_requests else _tolerant)(handler.request_deserializer)
    if handler.unary_unary is not None:
        behaviour: Any = handler.unary_unary
        seconds = metrics.rpc_seconds.labels(name)

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id.set(rid)
            start = time.perf_counter()
            try:
                await _refuse_unparsed(request, context)
                return await behaviour(request, context)
            finally:
                seconds.observe(time.perf_counter() - start)
                code = context.code()
                if code is not None and code != grpc.StatusCode.OK:
                    metrics.rpc_errors.labels(name, code.name).inc()

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=deserializer, response_serializer=handler.response_serializer
        )
    if handler.unary_stream is not None or handler.stream_stream is not None:
        stream_behaviour: Any = handler.unary_stream or handler.stream_stream
        make = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream is not None
            else grpc.stream_stream_rpc_method_handler
        )

        async def generating(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id.set(rid)
            await _refuse_unparsed(request, context)
            try:
                # aclosing: a cancelled call closes the handler's generator now (its finally blocks
                # run), not whenever the garbage collector gets to it.
                async with contextlib.aclosing(stream_behaviour(request, context)) as responses:
                    async for response in responses:
                        yield response
            except MalformedRequest as exc:  # a handler that does not map errors itself (reflection)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        async def writing(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id.set(rid)  # handlers that call context.write() (grpc_health's Watch) stay so
            await _refuse_unparsed(request, context)
            return await stream_behaviour(request, context)

        wrapper = generating if inspect.isasyncgenfunction(stream_behaviour) else writing
        return make(wrapper, request_deserializer=deserializer, response_serializer=handler.response_serializer)
    return handler

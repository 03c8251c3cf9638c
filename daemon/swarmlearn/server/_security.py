"""Who may talk to the daemon: TLS and mutual TLS credentials, bearer tokens, exposure rules."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from swarmlearn.config import Settings

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
# Health stays open: load balancers, systemd and container runtimes probe it without secrets.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


class SecurityError(RuntimeError):
    """The daemon must not start as configured; the message says what to change."""


def is_loopback(listen: str) -> bool:
    """True for unix sockets and loopback hosts (127.0.0.0/8, ::1, localhost)."""
    if listen.startswith("unix:"):
        return True
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback address without TLS or a token, unless explicitly allowed."""
    if is_loopback(settings.listen) or settings.tls or settings.auth_token_file or settings.allow_insecure:
        return
    raise SecurityError(
        f"refusing to listen on {settings.listen} without TLS (tls_cert/tls_key) or a token file "
        "(auth_token_file); set allow_insecure (--insecure) to do it anyway"
    )


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        chain = settings.tls_cert.read_bytes()
        key = settings.tls_key.read_bytes()
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    except OSError as exc:
        raise SecurityError(f"cannot read TLS material {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=bool(client_ca))


def load_tokens(path: Path) -> list[bytes]:
    """Tokens of a token file: one per line, blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecurityError(f"cannot read auth_token_file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("auth_token_file %s is readable by others than its owner; chmod 600 it", path)
    tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not tokens:
        raise SecurityError(f"auth_token_file {path} holds no token")
    short = [t for t in tokens if len(t) < MIN_TOKEN_CHARS]
    if short:
        raise SecurityError(f"auth_token_file {path}: tokens must be at least {MIN_TOKEN_CHARS} characters")
    return [t.encode() for t in tokens]


class TokenChecker:
    """Compares a presented bearer token with every configured one in constant time."""

    def __init__(self, tokens: list[bytes]) -> None:
        self._tokens = tokens

    def allows(self, metadata: Any) -> bool:
        presented = b""
        for key, value in metadata or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                if text.startswith("Bearer "):
                    presented = text[len("Bearer ") :].encode()
        matched = False
        for token in self._tokens:  # no early exit: timing must not tell which token is close
            matched |= hmac.compare_digest(presented, token)
        return matched and bool(presented)


def denying_handler(handler: Any, code: grpc.StatusCode, details: str) -> Any:
    """A handler of the same shape as ``handler`` that ends the call with ``code``.

    It never reads the request, so it does not parse it either: a malformed request from a caller
    without a token is refused like any other, not turned into an error with a traceback."""

    async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, details)

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, details)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    kinds: list[tuple[Any, Callable[..., Any], Callable[..., Any]]] = [
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, deny),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, deny_stream),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, deny),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, deny_stream),
    ]
    for behaviour, make, replacement in kinds:
        if behaviour is not None:
            return make(replacement, request_deserializer=None, response_serializer=handler.response_serializer)
    raise ValueError("handler has no behaviour")

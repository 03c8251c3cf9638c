"""Who may talk to the daemon: TLS and mutual TLS credentials, bearer tokens and their roles,
exposure rules."""

from __future__ import annotations

import enum
import hmac
import ipaddress
import logging
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import grpc

from swarmlearn.config import Settings

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16


class Role(enum.StrEnum):
    """What a bearer token may do; a token file line names one (a bare token is ``admin``)."""

    AGENT = "agent"
    """Send events and ask for forecasts, prompt scores and statistics."""
    ADMIN = "admin"
    """Everything: also jobs (training, tuning) and the model registry (promote, rollback)."""


_SERVICE = "/swarmlearn.v1.SwarmLearn/"
RPC_ROLES: Mapping[str, Role | None] = MappingProxyType(
    {
        # Open (None): load balancers, systemd and container runtimes probe health without secrets.
        "/grpc.health.v1.Health/Check": None,
        "/grpc.health.v1.Health/List": None,
        "/grpc.health.v1.Health/Watch": None,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Role.AGENT,
        _SERVICE + "Ingest": Role.AGENT,
        _SERVICE + "Predict": Role.AGENT,
        _SERVICE + "ScorePrompts": Role.AGENT,
        _SERVICE + "GetAgentStats": Role.AGENT,
        _SERVICE + "ListAgents": Role.AGENT,
        _SERVICE + "GetStatus": Role.AGENT,
        _SERVICE + "StartTraining": Role.ADMIN,
        _SERVICE + "StartTuning": Role.ADMIN,
        _SERVICE + "GetJob": Role.ADMIN,
        _SERVICE + "WatchJob": Role.ADMIN,
        _SERVICE + "CancelJob": Role.ADMIN,
        _SERVICE + "ListJobs": Role.ADMIN,
        _SERVICE + "ListModels": Role.ADMIN,
        _SERVICE + "PromoteModel": Role.ADMIN,
        _SERVICE + "RollbackModel": Role.ADMIN,
    }
)
"""The role each RPC needs when tokens are configured (``admin`` may call them all). A method not
listed is refused to every token, so a new RPC stays closed until it is given a role here."""


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
    """Refuse a non-loopback address where clients are not authenticated (by a token or a client
    certificate), unless explicitly allowed. TLS alone encrypts, but lets anyone in."""
    if is_loopback(settings.listen) or settings.auth_token_file or settings.tls_client_ca:
        return
    if settings.allow_insecure:
        log.warning(
            "listening on %s without client authentication (allow_insecure): anyone who reaches it may "
            "train and promote models",
            settings.listen,
        )
        return
    tls_alone = "; TLS alone (tls_cert, tls_key) does not say who the client is" if settings.tls else ""
    raise SecurityError(
        f"refusing to listen on {settings.listen} without client authentication: set auth_token_file "
        f"(bearer tokens) or tls_client_ca (mutual TLS, with tls_cert and tls_key){tls_alone}; "
        "set allow_insecure (--insecure) to do it anyway (not recommended)"
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


def parse_tokens(text: str, source: str) -> dict[str, Role]:
    """The tokens of a token file's ``text``, in file order, with their roles.

    A line is ``TOKEN`` or ``ROLE TOKEN`` (``agent`` or ``admin``, then whitespace); a bare token is
    ``admin``, as every token was before roles. Blank lines and ``#`` comments are ignored.
    ``source`` names the file in errors."""
    tokens: dict[str, Role] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{source} line {number}"
        if len(fields) > 2:
            raise SecurityError(f"{where}: expected TOKEN or ROLE TOKEN, found {len(fields)} words")
        role_name, token = fields if len(fields) == 2 else (Role.ADMIN.value, fields[0])
        try:
            role = Role(role_name)
        except ValueError:
            raise SecurityError(f"{where}: unknown role {role_name!r}; roles are {', '.join(Role)}") from None
        if len(token) < MIN_TOKEN_CHARS:
            raise SecurityError(f"{where}: tokens must be at least {MIN_TOKEN_CHARS} characters")
        if token in tokens:
            raise SecurityError(f"{where}: the token is listed twice")
        tokens[token] = role
    if not tokens:
        raise SecurityError(f"{source} holds no token")
    return tokens


def load_tokens(path: Path) -> dict[str, Role]:
    """The tokens of ``auth_token_file`` (see ``parse_tokens``)."""
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecurityError(f"cannot read auth_token_file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("auth_token_file %s is readable by others than its owner; chmod 600 it", path)
    return parse_tokens(text, f"auth_token_file {path}")


class TokenChecker:
    """Finds the role of a presented bearer token, comparing it with every configured one in
    constant time, and decides whether that role may call an RPC (``RPC_ROLES``)."""

    def __init__(self, tokens: Mapping[str, Role]) -> None:
        self._tokens = [(token.encode(), role) for token, role in tokens.items()]

    def refusal(self, method: str, metadata: Any) -> tuple[grpc.StatusCode, str] | None:
        """None if the caller may call ``method``, else the status code and details to end it with."""
        listed = method in RPC_ROLES
        needed = RPC_ROLES.get(method)
        if listed and needed is None:
            return None
        role = self._role(metadata)
        if role is None:
            return grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
        name = method.rsplit("/", 1)[-1]
        if not listed:
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"{name} has no role in the daemon's RPC table; no token may call it",
            )
        if role is Role.ADMIN or role is needed:
            return None
        return grpc.StatusCode.PERMISSION_DENIED, f"{name} needs the {needed} role; this token has the {role} role"

    def _role(self, metadata: Any) -> Role | None:
        presented = b""
        for key, value in metadata or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                if text.startswith("Bearer "):
                    presented = text[len("Bearer ") :].encode()
        found: Role | None = None
        for token, role in self._tokens:  # no early exit: timing must not tell which token is close
            if hmac.compare_digest(presented, token):
                found = role
        return found if presented else None


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

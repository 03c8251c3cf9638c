"""Errors the daemon's services raise; the server maps each to one gRPC status code.

SwarmLearnDaemonError
├── InvalidArgument      -> INVALID_ARGUMENT (names the field)
│   └── MalformedRequest (the request's bytes do not parse)
├── NotFound             -> NOT_FOUND
│   └── UnknownAgent
├── Overloaded           -> RESOURCE_EXHAUSTED
├── NotReady             -> UNAVAILABLE
├── Disabled             -> FAILED_PRECONDITION
└── ShuttingDown         -> UNAVAILABLE
"""

from __future__ import annotations


class SwarmLearnDaemonError(Exception):
    """Base of the errors a request can end with."""


class InvalidArgument(SwarmLearnDaemonError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class MalformedRequest(InvalidArgument):
    """The bytes of a request are not the message the RPC takes (raised by the server's parsing)."""

    def __init__(self, detail: str) -> None:
        super().__init__("request", f"could not be parsed ({detail})")


class NotFound(SwarmLearnDaemonError):
    """What the request names does not exist; the message says what."""


class UnknownAgent(NotFound):
    def __init__(self, agent_id: str) -> None:
        shown = agent_id if len(agent_id) <= 128 else agent_id[:128] + "..."  # error details are metadata
        super().__init__(f"unknown agent {shown!r}: no event of it is stored")
        self.agent_id = agent_id


class Overloaded(SwarmLearnDaemonError):
    """Too much at once; the message says when to retry."""


class NotReady(SwarmLearnDaemonError):
    """A part of the daemon cannot answer yet (the online learner is catching up or restarting)."""


class Disabled(SwarmLearnDaemonError):
    """The operator turned the feature off; the message names the setting."""


class ShuttingDown(SwarmLearnDaemonError):
    """The daemon is stopping; reconnect and resend what was not acknowledged."""

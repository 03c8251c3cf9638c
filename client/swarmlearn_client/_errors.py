"""Errors raised by swarmlearn_client.

Every failed RPC surfaces as one exception type, whatever the transport said::

    Exception
     +-- SwarmLearnError      a gRPC call failed: .code (grpc.StatusCode), .details (str)

Bad arguments raise ``ValueError`` / ``TypeError`` before anything is sent, and using a closed
stream or client raises ``RuntimeError``; those are programming errors, not RPC outcomes.
"""

from __future__ import annotations

import grpc

__all__ = ["SwarmLearnError", "from_rpc_error"]


class SwarmLearnError(Exception):
    """A gRPC call to the swarmlearn daemon failed."""

    code: grpc.StatusCode
    details: str

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details

    def __reduce__(self) -> tuple[type[SwarmLearnError], tuple[grpc.StatusCode, str]]:
        # Exception pickles args, which here is the formatted message, not (code, details).
        return (type(self), (self.code, self.details))


def from_rpc_error(exc: grpc.RpcError) -> SwarmLearnError:
    """The one place transport errors become SwarmLearnError (aio and sync calls alike)."""
    code_fn = getattr(exc, "code", None)
    details_fn = getattr(exc, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return SwarmLearnError(code, details or "")

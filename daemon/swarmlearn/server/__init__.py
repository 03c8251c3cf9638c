"""The gRPC server: thin servicers over the daemon's services, health, reflection, lifecycle."""

from swarmlearn.server._app import SERVICE_NAME, AddressUnavailable, DaemonServer, DataDirLocked, serve
from swarmlearn.server._embedded import Daemon
from swarmlearn.server._logging import configure_logging
from swarmlearn.server._security import Role, SecurityError, parse_tokens

__all__ = [
    "SERVICE_NAME",
    "AddressUnavailable",
    "Daemon",
    "DaemonServer",
    "DataDirLocked",
    "Role",
    "SecurityError",
    "configure_logging",
    "parse_tokens",
    "serve",
]

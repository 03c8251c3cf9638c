"""``swarmlearn`` command line: serve the daemon, or talk to one.

Every command that talks to a daemon takes ``--target`` (default: ``listen`` from the same
settings the daemon would load) and every command that reports takes ``--json``. Errors go to
stderr with exit code 1; usage errors exit 2.
"""

from swarmlearn.cli._output import _jsonable as _jsonable
from swarmlearn.cli._parser import main

__all__ = ["main"]

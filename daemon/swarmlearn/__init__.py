"""swarmlearn: the online-learning sidecar daemon for LLM-agent swarms."""

from swarmlearn._version import __version__
from swarmlearn.config import Settings, load_settings
from swarmlearn.server import Daemon

__all__ = ["Daemon", "Settings", "__version__", "load_settings"]

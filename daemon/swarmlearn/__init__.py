"""swarmlearn: the online-learning sidecar daemon for LLM-agent swarms."""

from swarmlearn.config import Settings, load_settings
from swarmlearn.server import Daemon

__all__ = ["Daemon", "Settings", "load_settings"]
__version__ = "0.1.0"

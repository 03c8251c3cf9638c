"""systemd's service notification protocol (sd_notify(3)): one datagram to ``$NOTIFY_SOCKET``.

Hand-written rather than a dependency: the protocol is a single ``sendto`` and the PyPI
``sdnotify`` package has not been maintained since 2017.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Tell the service manager ``state`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``).

    Returns True when the datagram was sent; False when no manager listens (``NOTIFY_SOCKET``
    unset) or the socket cannot be reached. Never raises: a daemon must not fail because its
    supervisor went away.
    """
    name = os.environ.get("NOTIFY_SOCKET", "")
    if not name:
        return False
    if name.startswith("@"):  # Linux abstract namespace: a leading NUL byte instead of "@"
        address = "\0" + name[1:]
    elif name.startswith("/"):
        address = name
    else:  # e.g. vsock:CID:PORT, which systemd uses for virtual machines only
        log.debug("sd_notify: unsupported NOTIFY_SOCKET %r", name)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.debug("sd_notify: cannot send %r to %s: %s", state, name, exc)
        return False
    return True

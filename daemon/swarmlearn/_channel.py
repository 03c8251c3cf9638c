"""The daemon's side of a socket pair to one of its child processes, in ``multiprocessing.connection``
framing (a 4-byte big-endian length, then a pickle), which the child reads with a plain ``Connection``.

Only the daemon's own children are unpickled: nothing a client sends travels this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import struct
import subprocess
import sys
from typing import Any


async def spawn(main: str, *args: str) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, asyncio.StreamWriter]:
    """Start ``python -c MAIN FD ARGS...`` with FD its end of a socket pair; our end as asyncio
    streams. A plain subprocess, not ``multiprocessing``'s spawn, which would re-import the host
    program's main module (embedding hosts need no ``if __name__ == "__main__"`` guard). OSError
    (out of processes, descriptors or memory) propagates, with both ends closed."""
    ours, theirs = socket.socketpair()
    try:
        with theirs:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", main, str(theirs.fileno()), *args,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # The host may have found swarmlearn through sys.path edits, not PYTHONPATH.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )  # fmt: skip
    except BaseException:
        ours.close()
        raise
    try:
        reader, writer = await asyncio.open_unix_connection(sock=ours)
    except BaseException:  # cancelled (the daemon stopping while it starts): the child must not outlive it
        ours.close()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(asyncio.CancelledError):
            await process.wait()
        raise
    return process, reader, writer


def encode(message: object) -> bytes:
    data = pickle.dumps(message, protocol=5)
    return struct.pack("!i", len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> Any:
    (size,) = struct.unpack("!i", await reader.readexactly(4))
    if size == -1:  # Connection's header for messages of 2 GiB or more
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return pickle.loads(await reader.readexactly(size))

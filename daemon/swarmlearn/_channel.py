"""The daemon's side of a socket pair to one of its child processes, in ``multiprocessing.connection``
framing (a 4-byte big-endian length, then a pickle), which the child reads with a plain ``Connection``.

Only the daemon's own children are unpickled: nothing a client sends travels this way.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any


def encode(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=5)
    return struct.pack("!i", len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    (size,) = struct.unpack("!i", await reader.readexactly(4))
    if size == -1:  # Connection's header for messages of 2 GiB or more
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    return message

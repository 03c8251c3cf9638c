"""Who may hold an Ingest stream: the daemon's limit, and each connection's share of it."""

from __future__ import annotations

from collections import Counter

from swarmlearn.errors import Overloaded

# context.peer() of a TCP connection names its address and port, so it tells connections apart; a
# unix-socket peer is just "unix:", the same for every client, and is held to the daemon's limit only.
_CONNECTION_PEERS = ("ipv4:", "ipv6:")


class StreamSlots:
    """The Ingest streams open now, in all and per connection (``context.peer()``)."""

    def __init__(self, limit: int, per_connection: int) -> None:
        self.limit = limit
        self.per_connection = per_connection
        self.open = 0
        self._by_peer: Counter[str] = Counter()

    def take(self, peer: str) -> None:
        """Count a new stream of ``peer``, or raise ``Overloaded`` naming the limit it would pass."""
        if self.open >= self.limit:
            raise Overloaded(
                f"{self.open} ingest streams open, the limit is {self.limit} (setting max_concurrent_streams)"
            )
        if peer.startswith(_CONNECTION_PEERS):
            held = self._by_peer[peer]
            if held >= self.per_connection:
                raise Overloaded(
                    f"{held} ingest streams open on this connection, the limit is {self.per_connection} "
                    "(setting max_streams_per_connection); one stream carries the events of any number of agents"
                )
            self._by_peer[peer] = held + 1
        self.open += 1

    def give_back(self, peer: str) -> None:
        self.open -= 1
        if peer in self._by_peer:
            self._by_peer[peer] -= 1
            if not self._by_peer[peer]:
                del self._by_peer[peer]

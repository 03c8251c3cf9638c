"""The whole daemon in-process, on a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from swarmlearn.config import Settings
from swarmlearn.server._app import DaemonServer


class Daemon:
    """Embed the daemon: ``with Daemon(settings) as d: ...`` or ``start()`` / ``stop()``.

    ``address`` is the bound address once started (with the real port when ``listen`` ends in :0).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.address = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: DaemonServer | None = None

    def start(self, timeout: float = 30.0) -> str:
        if self._thread is not None:
            raise RuntimeError("daemon already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = DaemonServer(self.settings)
            try:
                self.address = loop.run_until_complete(server.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._server = server
            ready.set()
            loop.run_until_complete(server.wait_stopped())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="swarmlearn-daemon", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"daemon did not start within {timeout} s")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self.address

    @property
    def failure(self) -> str | None:
        """Why the daemon can no longer store events (its writer process died), or None.

        An embedded daemon then stays up NOT_SERVING and answers UNAVAILABLE; the host decides
        whether to ``stop()`` and start a new one."""
        return None if self._server is None else self._server.failure

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (as on SIGTERM) and wait for the thread."""
        if self._thread is None or self._server is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout)
        self._thread.join(timeout)
        self._thread = None
        self._server = None

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""sd_notify against real AF_UNIX datagram sockets: a path in a temporary directory and an abstract name."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmlearn.server._sdnotify import notify


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, Path]]:
    # Socket paths are limited to ~100 bytes and pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="swl-notify-", dir="/tmp") as directory:
        path = Path(directory) / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(5.0)
        with sock:
            yield sock, path


def test_unset_socket_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert notify("READY=1") is False


def test_path_socket_receives_exact_bytes(
    listener: tuple[socket.socket, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    for state in ("READY=1", "STATUS=serving on 127.0.0.1:50051, 12 events stored", "STOPPING=1"):
        assert notify(state) is True
        assert sock.recv(4096) == state.encode()


def test_multi_line_and_non_ascii_state_is_one_datagram(
    listener: tuple[socket.socket, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert notify("READY=1\nSTATUS=prêt") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=pr\xc3\xaat"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"swarmlearn-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize("name", ["/nonexistent/swarmlearn/notify.sock", "@swarmlearn-nobody-listens", "vsock:2:1"])
def test_unreachable_socket_returns_false_and_logs(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    with caplog.at_level(logging.DEBUG, logger="swarmlearn.server._sdnotify"):
        assert notify("READY=1") is False
    assert any(name in record.getMessage() for record in caplog.records)


def test_socket_that_went_away(listener: tuple[socket.socket, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    sock.close()
    path.unlink()
    assert notify("STOPPING=1") is False

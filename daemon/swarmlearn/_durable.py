"""Durable writes: a file is replaced whole or not at all, and once replaced it stays so after a crash.

``write_durably`` writes a temporary file beside the target, fsyncs it, renames it over the target
and fsyncs the directory. The rename is atomic, so readers and a crash see the old content or the
new, never part of either; the first fsync makes sure the rename never lands before the data, the
second that the rename itself survives a power loss. Every file the daemon rewrites goes through it:
the learner snapshots, checkpoints, the model registry, a tuning job's experiment and journal, a
backup's manifest. (The event log and the job records are SQLite's, which has its own journal.)

Each write has a temporary file of its own (``.<name>.<pid>-<random>.tmp``), so two writers of one
path never write into the same file: the last rename wins, and the target is always one whole version.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

_SUFFIX = ".tmp"
# What opening or fsyncing a directory fails with where the platform or file system cannot do it
# (Windows cannot open a directory; some network and FUSE file systems refuse to fsync one).
_UNSUPPORTED = frozenset({errno.EACCES, errno.EBADF, errno.EINVAL, errno.EISDIR, errno.ENOTSUP, errno.EOPNOTSUPP})


def write_durably(path: Path, content: bytes | str | Callable[[Path], object], *, mode: int = 0o666) -> None:
    """Replace ``path`` with ``content``: bytes, text (written as UTF-8), or a function that writes
    the file at the path it is given (``torch.save``, Ax's ``save_to_json_file``).

    Missing parent directories are created, durably too. ``mode`` is the new file's, less the umask,
    as for ``open`` (whose default it is); a function that writes keeps it, as long as it writes into
    the file rather than replacing it. On any failure the target is left as it was and the temporary
    file is removed.
    """
    _make_directory(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}")
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as out:
            if isinstance(content, str):
                out.write(content.encode())
            elif isinstance(content, bytes):
                out.write(content)
        if callable(content):
            content(temporary)
        fsync_path(temporary)  # by path, not through ``out``: the function writes through handles of its own
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a rename into it) durable, where the platform can."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return
        raise
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:  # EIO and the like mean the write may be lost: never hidden
            raise
    finally:
        os.close(descriptor)


def remove_temporaries(directory: Path, name: str = "*") -> None:
    """Remove the temporary files left in ``directory`` by writers of ``name`` (a glob) that died
    mid-write. Only while no such writer runs: a live writer's temporary file would go too."""
    for stale in directory.glob(f".{name}.*{_SUFFIX}"):
        stale.unlink(missing_ok=True)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of ``write_durably`` (in flight, or left by a crash)."""
    return path.name.startswith(".") and path.name.endswith(_SUFFIX)


def _make_directory(directory: Path) -> None:
    """``mkdir -p``, each new directory's entry in its parent made durable, as a renamed file's is."""
    if directory.is_dir():
        return
    _make_directory(directory.parent)
    directory.mkdir(exist_ok=True)
    fsync_directory(directory.parent)


def fsync_path(path: Path) -> None:
    """fsync the file (or directory) at ``path``: its data, or its entries, reach the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

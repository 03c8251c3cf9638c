"""Consistent backup and restore of a data directory, while a daemon is serving and writing.

A backup is a directory::

    events.sqlite3   the event log as one self-contained SQLite file (rollback-journal mode, no WAL)
    jobs.sqlite3     the job records, copied the same way, when the data directory has them
    *.snapshot       the online learners' snapshots, copied before the log (see below)
    *.agents.sqlite3 the learners' stores (baselines and prompts: their incremental snapshots), copied the same way
    models/ ...      copies of the data directory's DATA_SUBDIRS that exist, file by file
    manifest.json    written last, so a directory without it is an incomplete backup

Every copied file, in the backup and when restored, keeps its source's permission bits (``_create_like``):
the learners' snapshots and stores and the checkpoints are 0600.

How the snapshot is taken
-------------------------
SQLite's online backup API copies the log page by page from a read-only connection. Left to
itself, each ``backup_step`` opens and closes its own read transaction, and when another
connection (here: the writer process) commits between two steps the copy starts over. Whether it
ever finishes depends on the load: measured on the 2-core machine, with one client ingesting
(about 20,000 events/s) a 36 MB log was copied in 4,096-page steps after one restart; with two clients
(about 27,000 events/s) it restarted 554 times in 30 s on a 169 MB log and never finished, and so
did 256-page steps, or 4,096-page steps to a slow disk (50 ms a step).

So the copy runs inside one read transaction, opened (``BEGIN`` plus a read) before the first step.
In WAL mode that transaction pins a snapshot: the writer keeps appending to the WAL and is never
blocked (a WAL reader does not block writers), every page the backup reads is from that one
snapshot, and nothing restarts (``_RestartGuard`` fails the backup if that ever changes). The cost
is that checkpoints cannot pass the snapshot, so the WAL grows by what is written during the copy
and is checkpointed afterwards. Under the two-client load the copy took 0.15 s for a 130,000-event
(34 MB) log and 0.36 s for 430,000 events (109 MB), without a restart, also at 50 ms a step.
``VACUUM INTO`` is consistent too, but rebuilds every table and index through SQL: 0.81 s for
153 MB, about 1.6 times slower per MB, and it cannot be stepped. ``backup()`` as a whole, with
``PRAGMA integrity_check`` of the copy and its SHA-256, took 0.7 s for 130,000 events under load.
The job records (``jobs.sqlite3``) are copied the same way, after the log, so a job that changed in
between is in the backup as it was then. The learners' snapshots are copied *before* the log: each
was taken at an event the log already held then, so the restored log holds its anchor, and a daemon
started on the restored directory replays only the log after each snapshot instead of all of it (a
snapshot that does not fit is refused at load and its learner rebuilt from the log, as ever). A
baselines learner's store is SQLite, written while the backup runs: it is copied as the log is (one
read transaction, hence the state of one committed snapshot, whose anchor the log then held).

Restore
-------
``restore`` verifies the backup completely (manifest format, sizes and SHA-256 of every file,
``PRAGMA integrity_check``, the manifest's counts against the copy) before it touches the data
directory; takes the daemon's own lock on ``daemon.lock`` so a daemon can neither be running nor
start midway; stages every file in a temporary directory inside the data directory; and then
swaps. The event log is swapped with one ``os.replace``, so a crash leaves either the old log or
the new one. Before that, the old log is checkpointed so it no longer needs its WAL, and its
``-wal`` / ``-shm`` files are moved aside with it: a stale WAL beside the new file would be
replayed into it. The job records and the subdirectories are swapped after it, each with one
``os.replace`` (the job records' ``-wal`` and ``-shm`` go aside with them). The old files are kept
under ``pre-restore-<UTC time>``, never deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from swarmlearn import layout
from swarmlearn._durable import fsync_path, is_temporary, write_durably
from swarmlearn._version import __version__
from swarmlearn.store._schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

FORMAT_VERSION = 4
"""Version of the backup layout and manifest. 2: ``files`` may list ``jobs.sqlite3``, at the top;
3: and the learners' ``*.snapshot`` files, at the top; 4: and the baselines learners' stores
(``*.agents.sqlite3``), at the top."""
READABLE_FORMATS = (1, 2, 3, 4)
"""What ``restore`` reads (a format-1 backup has no job records, format 1 and 2 no snapshots,
format 3 no stores)."""
MANIFEST_NAME = "manifest.json"
# The names are the data directory's (``swarmlearn.layout``). The subdirectories' files are copied
# as they are, so whoever writes them should write a temporary file and rename it into place.
DB_NAME = layout.EVENTS
JOBS_DB_NAME = layout.JOBS
LOCK_NAME = layout.LOCK
DATA_SUBDIRS = layout.SUBDIRECTORIES
_SIDE_SUFFIXES = layout.SQLITE_SIDE_SUFFIXES
_STEP_PAGES = 4096
_MAX_RESTARTS = 10
_CHUNK = 1 << 20
_T = TypeVar("_T")


class BackupError(Exception):
    """A backup or restore was refused or failed; the message names the path and the reason."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One file of a backed-up subdirectory."""

    path: str
    """Relative to the backup directory, with ``/`` separators (``models/forecaster.pt``)."""
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """What ``manifest.json`` records about a backup."""

    format_version: int
    swarmlearn_version: str
    created_utc: str
    """ISO 8601 time, UTC, at which the snapshot was complete."""
    schema_version: int
    """``PRAGMA user_version`` of the copied event log."""
    event_count: int
    highest_seq: int
    agent_count: int
    database_size: int
    database_sha256: str
    directories: tuple[str, ...]
    """The DATA_SUBDIRS that existed in the data directory and were copied."""
    files: tuple[BackupFile, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: Path) -> BackupManifest:
        """Parse a manifest; ``source`` only names it in errors."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BackupError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise BackupError(f"{source} is not a backup manifest (not a JSON object)")
        version = raw.get("format_version")
        if version not in READABLE_FORMATS or isinstance(version, bool):
            raise BackupError(
                f"{source} has backup format {version!r}; this release reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))}"
            )
        directories = _field(raw, "directories", list, source)
        if not all(isinstance(d, str) and d in DATA_SUBDIRS for d in directories):
            raise BackupError(f"{source}: directories {directories} are not all among {list(DATA_SUBDIRS)}")
        return cls(
            format_version=version,
            swarmlearn_version=_field(raw, "swarmlearn_version", str, source),
            created_utc=_field(raw, "created_utc", str, source),
            schema_version=_field(raw, "schema_version", int, source),
            event_count=_field(raw, "event_count", int, source),
            highest_seq=_field(raw, "highest_seq", int, source),
            agent_count=_field(raw, "agent_count", int, source),
            database_size=_field(raw, "database_size", int, source),
            database_sha256=_field(raw, "database_sha256", str, source),
            directories=tuple(directories),
            files=tuple(_file_entry(item, source, directories) for item in _field(raw, "files", list, source)),
        )


def _field(raw: dict[str, Any], name: str, kind: type[_T], source: Path) -> _T:
    value = raw.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BackupError(f"{source}: field {name!r} is missing or not a {kind.__name__}")
    return value


def _file_entry(item: Any, source: Path, directories: list[str]) -> BackupFile:
    if not isinstance(item, dict):
        raise BackupError(f"{source}: a files entry is not an object: {item!r}")
    path, size, digest = item.get("path"), item.get("size"), item.get("sha256")
    if not (isinstance(path, str) and isinstance(size, int) and isinstance(digest, str)):
        raise BackupError(f"{source}: files entry {item!r} needs a path, a size and a sha256")
    parts = PurePosixPath(path).parts
    # The manifest decides where restore writes: the job records, a snapshot at the top, or inside
    # the listed subdirectories.
    inside = len(parts) >= 2 and parts[0] in directories and ".." not in parts and not PurePosixPath(path).is_absolute()
    if path != JOBS_DB_NAME and not layout.is_learner_file(path) and not inside:
        learner = f"*{layout.SNAPSHOT_SUFFIX} or *{layout.STORE_SUFFIX}"
        raise BackupError(
            f"{source}: file path {path!r} is neither {JOBS_DB_NAME}, a {learner} file nor inside a backed-up directory"
        )
    return BackupFile(path, size, digest)


# -- backup ---------------------------------------------------------------------------------------


def backup(data_dir: Path, dest: Path) -> BackupManifest:
    """Copy ``data_dir`` into ``dest`` (new, or an empty directory) as a consistent snapshot.

    Safe while a daemon serves and writes ``data_dir``; it does not block the daemon. Raises
    ``BackupError`` if there is no event log, if ``dest`` is not new or empty, or if the copy fails
    its integrity check; what it wrote into ``dest`` is removed again then.
    """
    source = data_dir / DB_NAME
    if not source.is_file():
        raise BackupError(f"nothing to back up: {source} does not exist")
    if dest.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError(f"backup destination {dest} is inside the data directory {data_dir} it would copy")
    created = _prepare_dest(dest)
    try:
        # The learners' snapshots first: each is anchored at an event the log then held.
        files: list[BackupFile] = [
            _copy_learner_file(path, dest / path.name) for path in layout.DataDir(data_dir).learner_files()
        ]
        target = dest / DB_NAME
        _snapshot(source, target)
        fsync_path(target)
        schema_version, event_count, highest_seq, agent_count = _inspect(target)
        directories: list[str] = []
        if (data_dir / JOBS_DB_NAME).is_file():
            _snapshot(data_dir / JOBS_DB_NAME, dest / JOBS_DB_NAME)
            fsync_path(dest / JOBS_DB_NAME)
            _check_database(dest / JOBS_DB_NAME)
            files.append(BackupFile(JOBS_DB_NAME, *_hash_file(dest / JOBS_DB_NAME)))
        for name in DATA_SUBDIRS:
            if (data_dir / name).is_dir():
                directories.append(name)
                files.extend(_copy_tree(data_dir / name, dest / name, dest))
        size, digest = _hash_file(target)
        manifest = BackupManifest(
            format_version=FORMAT_VERSION,
            swarmlearn_version=__version__,
            created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            schema_version=schema_version,
            event_count=event_count,
            highest_seq=highest_seq,
            agent_count=agent_count,
            database_size=size,
            database_sha256=digest,
            directories=tuple(directories),
            files=tuple(files),
        )
        write_durably(dest / MANIFEST_NAME, manifest.to_json())
    except BaseException:
        _discard(dest, created)
        raise
    log.info("backed up %s to %s: %d events, %d agents", data_dir, dest, event_count, agent_count)
    return manifest


def _copy_learner_file(source: Path, target: Path) -> BackupFile:
    """A snapshot file as it is; a store through SQLite's backup, as the log (it changes meanwhile)."""
    if source.name.endswith(layout.SNAPSHOT_SUFFIX):
        return BackupFile(source.name, *_copy_file(source, target))
    _snapshot(source, target)
    fsync_path(target)
    _check_database(target)
    return BackupFile(source.name, *_hash_file(target))


def _prepare_dest(dest: Path) -> bool:
    """Check ``dest`` is usable; create it if missing. Returns whether it was created."""
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise BackupError(f"backup destination {dest} exists and is not a directory")
        if any(dest.iterdir()):
            raise BackupError(f"backup destination {dest} is not empty; give a new or an empty directory")
        return False
    try:
        dest.mkdir(parents=True)
    except OSError as exc:
        raise BackupError(f"cannot create backup destination {dest}: {exc.strerror}") from None
    return True


def _discard(dest: Path, created: bool) -> None:
    # dest was new or empty, so everything in it is ours.
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _snapshot(source: Path, target: Path) -> None:
    src = sqlite3.connect(_uri(source, "mode=ro"), uri=True, isolation_level=None, timeout=30.0)
    try:
        # One read transaction around every step: a consistent snapshot, and no restart when the
        # writer commits between steps (see the module docstring).
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        os.close(_create_like(source, target))  # SQLite writes into it, keeping its mode
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst, pages=_STEP_PAGES, progress=_RestartGuard(source))
            # The copy carries the source's WAL flag; a single file with no -wal is what gets hashed
            # and what restores to read-only media. The daemon turns WAL back on when it opens it.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}") from None
    finally:
        src.close()


class _RestartGuard:
    """Backup progress callback: fails the backup if SQLite keeps restarting the copy.

    Inside one read transaction no step ever restarts; this turns a regression into an error
    instead of a backup that never ends.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self.restarts = 0
        self._remaining: int | None = None

    def __call__(self, status: int, remaining: int, total: int) -> None:
        if self._remaining is not None and remaining > self._remaining:
            self.restarts += 1
            if self.restarts > _MAX_RESTARTS:
                raise BackupError(
                    f"cannot copy {self.source}: the copy restarted {self.restarts} times because it changed under it"
                )
        self._remaining = remaining


def _copy_tree(source: Path, target: Path, root: Path) -> list[BackupFile]:
    """Copy the regular files under ``source`` (symlinks followed) into ``target``, except a durable
    write's temporary files (``write_durably``): one may be renamed away while the copy runs, and
    what it holds is not a state the daemon ever had."""
    files = []
    for directory, subdirs, names in os.walk(source):
        subdirs.sort()
        out_dir = target / Path(directory).relative_to(source)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(names):
            path = Path(directory) / name
            if is_temporary(path) or not path.is_file():
                continue
            out = out_dir / name
            size, digest = _copy_file(path, out)
            files.append(BackupFile(out.relative_to(root).as_posix(), size, digest))
    return files


# -- verification ---------------------------------------------------------------------------------


def verify_backup(src: Path) -> BackupManifest:
    """Check a backup completely without changing anything; return its manifest.

    Raises ``BackupError`` naming the first problem: no manifest, an unknown format, a file whose
    size or SHA-256 differs from the manifest, a log that fails ``PRAGMA integrity_check``, or
    counts that differ from the manifest's.
    """
    if not src.is_dir():
        raise BackupError(f"{src} is not a backup directory")
    manifest_path = src / MANIFEST_NAME
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(f"{src} has no {MANIFEST_NAME}: not a swarmlearn backup, or an incomplete one") from None
    manifest = BackupManifest.from_json(text, manifest_path)
    db = src / DB_NAME
    _check_file(db, manifest.database_size, manifest.database_sha256)
    if manifest.schema_version > SCHEMA_VERSION:
        raise BackupError(
            f"{db} has schema {manifest.schema_version}, newer than this release's {SCHEMA_VERSION}; "
            "restore it with a newer swarmlearn"
        )
    found = _inspect(db, immutable=True)
    recorded = (manifest.schema_version, manifest.event_count, manifest.highest_seq, manifest.agent_count)
    if found != recorded:
        raise BackupError(f"{db} holds (schema, events, highest seq, agents) = {found}, its manifest says {recorded}")
    for entry in manifest.files:
        _check_file(src / entry.path, entry.size, entry.sha256)
        if entry.path == JOBS_DB_NAME:
            _check_database(src / JOBS_DB_NAME, immutable=True)
    return manifest


def _check_file(path: Path, size: int, digest: str) -> None:
    try:
        found_size, found_digest = _hash_file(path)
    except FileNotFoundError:
        raise BackupError(f"{path} is listed in the manifest but missing") from None
    if (found_size, found_digest) != (size, digest):
        raise BackupError(
            f"{path} does not match the manifest: SHA-256 {found_digest} ({found_size} bytes), "
            f"expected {digest} ({size} bytes); the backup is damaged or was modified"
        )


def _inspect(db: Path, *, immutable: bool = False) -> tuple[int, int, int, int]:
    """``PRAGMA integrity_check`` on ``db``, then (schema version, events, highest seq, agents)."""
    try:
        conn = _connect_read_only(db, immutable)
        try:
            _check_integrity(conn, db)
            schema_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            count, highest = conn.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchone()
            agents = conn.execute("SELECT count(*) FROM agents").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{db} is not a readable swarmlearn event log: {exc}") from None
    return schema_version, int(count), int(highest), int(agents)


def _check_database(db: Path, *, immutable: bool = False) -> None:
    """``PRAGMA integrity_check`` on a database other than the log (the job records)."""
    try:
        conn = _connect_read_only(db, immutable)
        try:
            _check_integrity(conn, db)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{db} is not a readable SQLite database: {exc}") from None


def _connect_read_only(db: Path, immutable: bool) -> sqlite3.Connection:
    options = "mode=ro&immutable=1" if immutable else "mode=ro"
    return sqlite3.connect(_uri(db, options), uri=True, isolation_level=None)


def _check_integrity(conn: sqlite3.Connection, db: Path) -> None:
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    if problems != ["ok"]:
        raise BackupError(f"{db} fails PRAGMA integrity_check: {'; '.join(problems[:5])}")


# -- restore --------------------------------------------------------------------------------------


def restore(src: Path, data_dir: Path, *, force: bool = False) -> BackupManifest:
    """Make ``data_dir`` hold the backup in ``src``; return the backup's manifest.

    The backup is verified (``verify_backup``) before anything is touched. Refused with
    ``BackupError`` while a daemon runs on ``data_dir``, and, unless ``force``, when ``data_dir``
    already holds an event log, job records, learner snapshots or backed-up subdirectories; with ``force`` those are
    moved to ``data_dir / "pre-restore-<UTC time>"``, not deleted (job records too when the backup has
    none: they belong to the log they were kept beside).
    """
    manifest = verify_backup(src)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
    with _locked(data_dir):
        ours = [db + suffix for db in (DB_NAME, JOBS_DB_NAME) for suffix in ("", *_SIDE_SUFFIXES)] + [*DATA_SUBDIRS]
        present = [name for name in ours if os.path.lexists(data_dir / name)]
        for path in layout.DataDir(data_dir).learner_files():  # a store's -wal and -shm go aside with it
            names = [path.name + side for side in ("", *_SIDE_SUFFIXES)]
            present += [name for name in names if (data_dir / name).exists()]
        if present and not force:
            raise BackupError(
                f"cannot restore into {data_dir}: it already holds {', '.join(present)}; "
                "force moves them aside to pre-restore-<time> in it"
            )
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
        try:
            _stage(src, staging, manifest)
            if present:
                aside = _move_aside(data_dir, present)
                log.warning("restore: moved the previous %s of %s to %s", ", ".join(present), data_dir, aside)
            os.replace(staging / DB_NAME, data_dir / DB_NAME)
            for entry in manifest.files:
                if entry.path == JOBS_DB_NAME or layout.is_learner_file(entry.path):
                    os.replace(staging / entry.path, data_dir / entry.path)
            for name in manifest.directories:
                os.replace(staging / name, data_dir / name)
            fsync_path(data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("restored %s into %s: %d events, %d agents", src, data_dir, manifest.event_count, manifest.agent_count)
    return manifest


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Hold the daemon's own lock (see ``server._app._lock_data_dir``) on ``data_dir``."""
    # "a", not "w": if a daemon holds the lock, its pid in the file stays readable.
    with open(data_dir / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"cannot restore into {data_dir}: a swarmlearn daemon is running on it "
                f"(it holds {data_dir / LOCK_NAME}); stop it first"
            ) from None
        yield


def _stage(src: Path, staging: Path, manifest: BackupManifest) -> None:
    """Copy the backup into ``staging``, checking each file's hash again as it is written."""
    copies = [(DB_NAME, manifest.database_size, manifest.database_sha256)]
    copies += [(f.path, f.size, f.sha256) for f in manifest.files]
    for name in manifest.directories:
        (staging / name).mkdir()
    for name, size, digest in copies:
        out = staging / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if _copy_file(src / name, out) != (size, digest):
            raise BackupError(f"{src / name} changed while it was being restored; nothing was restored")


def _move_aside(data_dir: Path, present: list[str]) -> Path:
    """Move the old log and subdirectories into a new ``pre-restore-*`` directory of ``data_dir``.

    The old log keeps its name in ``data_dir`` (it is hard-linked aside) until the new one replaces
    it, so at every moment ``data_dir`` holds a complete log.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir / f"pre-restore-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = data_dir / f"pre-restore-{stamp}-{n}"
    aside.mkdir()
    db = data_dir / DB_NAME
    if DB_NAME in present:
        _checkpoint(db)
        try:
            os.link(db, aside / DB_NAME)
        except OSError:  # a file system without hard links
            _copy_file(db, aside / DB_NAME)
    for name in present:
        # Closing the checkpoint's connection may have removed the -wal and -shm.
        if name != DB_NAME and os.path.lexists(data_dir / name):
            os.replace(data_dir / name, aside / name)
    fsync_path(aside)
    fsync_path(data_dir)
    return aside


def _checkpoint(db: Path) -> None:
    """Fold the old log's WAL into its main file, so it stands alone once its -wal is moved aside."""
    try:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        busy, reason = 1, str(exc)
    else:
        reason = "checkpoint busy"
    if busy:
        # Still kept whole in pre-restore-*; only the copy left in place until the swap is partial.
        log.warning("restore: could not checkpoint the previous log %s (%s)", db, reason)


# -- files ----------------------------------------------------------------------------------------


def _uri(path: Path, options: str) -> str:
    return f"{path.resolve().as_uri()}?{options}"


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _create_like(source: Path, target: Path) -> int:
    """Create ``target``, new and empty, with ``source``'s permission bits, and return its descriptor: a
    learner's store or snapshot and a checkpoint (pickles and weights the daemon loads) stay 0600 in the
    backup and once restored (they became 0644 through the umask)."""
    return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(source.stat().st_mode))


def _copy_file(source: Path, target: Path) -> tuple[int, str]:
    """Copy ``source`` to a new ``target``, fsynced; return the size and SHA-256 of what was written."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as f, os.fdopen(_create_like(source, target), "wb") as out:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()

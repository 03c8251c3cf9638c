"""Backup while a real daemon ingests, and restore that a real daemon then serves."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swarmlearn.config import Settings
from swarmlearn.importer import event_to_proto
from swarmlearn.jobs import Job, JobRecords, JobState, TrainingRequest
from swarmlearn.server import Daemon, DataDirLocked
from swarmlearn.store import BackupError, BackupManifest, EventStore, backup, restore, verify_backup
from swarmlearn.store import _backup as backup_module
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client import BatchAck, Client
from swarmlearn_client.v1 import events_pb2


def iter_swarm(n_per_agent: int, *, seed: int = 0, prefix: str = "") -> Iterator[events_pb2.StreamEvent]:
    """Four agents' events; ``prefix`` makes their ids differ from another seed's."""
    for event in generate_swarm(agents=4, events_per_agent=n_per_agent, seed=seed):
        pb = event_to_proto(event)
        if prefix:
            pb.event_id = f"{prefix}-{pb.event_id}"
        yield pb


def swarm(n_per_agent: int, *, seed: int = 0, prefix: str = "") -> list[events_pb2.StreamEvent]:
    return list(iter_swarm(n_per_agent, seed=seed, prefix=prefix))


def start_daemon(data_dir: Path) -> Daemon:
    return Daemon(
        Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data_dir, grace_period_s=2.0, log_level="WARNING")
    )


def read_log(db: Path) -> tuple[int, int, int, set[tuple[str, str]]]:
    """(events, highest seq, sum of the agent summaries' counts, every (agent_id, event_id))."""
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        count, highest = conn.execute("SELECT count(*), max(seq) FROM events").fetchone()
        summed = conn.execute("SELECT sum(event_count) FROM agents").fetchone()[0]
        ids = set(conn.execute("SELECT agent_id, event_id FROM events").fetchall())
    conn.close()
    return count, highest, summed, ids


@pytest.fixture
def backed_up(tmp_path: Path) -> Iterator[tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]]:
    """A backup of a stopped daemon's data directory holding 2,000 events and a models/ file."""
    data = tmp_path / "source"
    events = swarm(500, seed=1)
    with start_daemon(data) as daemon, Client(daemon.address) as client:
        assert client.ingest(events, batch_size=250).accepted == 2_000
    (data / "models" / "forecaster").mkdir(parents=True)
    (data / "models" / "forecaster" / "weights.pt").write_bytes(b"\x00weights" * 1000)
    manifest = backup(data, tmp_path / "backup")
    yield tmp_path / "backup", manifest, events


def test_backup_while_ingesting_is_a_consistent_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small, slow steps (as to a slow disk), so the writer commits between most of them: a SQLite
    # backup outside one read transaction restarts on each such commit and never finishes.
    monkeypatch.setattr(backup_module, "_STEP_PAGES", 32)
    guard = backup_module._RestartGuard.__call__

    def slow_step(self: backup_module._RestartGuard, status: int, remaining: int, total: int) -> None:
        time.sleep(0.01)
        guard(self, status, remaining, total)

    monkeypatch.setattr(backup_module._RestartGuard, "__call__", slow_step)
    data = tmp_path / "data"
    before = swarm(2_500, seed=1)
    acked: list[BatchAck] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def keep_ingesting(address: str) -> None:
        try:
            with Client(address) as client, client.ingest_stream(batch_size=200, on_ack=acked.append) as stream:
                for i, event in enumerate(iter_swarm(100_000, seed=2, prefix="live")):
                    if stop.is_set():
                        break
                    stream.send(event)
                    if i % 200 == 0:
                        time.sleep(0.002)  # keep committing for the whole backup, not just its start
        except BaseException as exc:
            failure.append(exc)

    with start_daemon(data) as daemon:
        with Client(daemon.address) as client:
            assert client.ingest(before, batch_size=1_000).accepted == 10_000
        ingester = threading.Thread(target=keep_ingesting, args=(daemon.address,))
        ingester.start()
        try:
            while len(acked) < 20 and ingester.is_alive():
                time.sleep(0.01)
            acked_before = max(ack.durable_sequence for ack in acked)
            acks_at_start = len(acked)
            started = time.monotonic()
            manifest = backup(data, tmp_path / "backup")
            elapsed = time.monotonic() - started
            acks_during = len(acked) - acks_at_start
        finally:
            stop.set()
            ingester.join(60)
    assert not failure
    assert acks_during > 0, "nothing was committed while the backup ran"
    assert elapsed < 30

    count, highest, summed, ids = read_log(tmp_path / "backup" / "events.sqlite3")
    assert manifest.event_count == count == highest == manifest.highest_seq == summed
    assert manifest.highest_seq >= acked_before
    assert {(e.agent_id, e.event_id) for e in before} <= ids
    assert manifest.agent_count == 4
    assert verify_backup(tmp_path / "backup") == manifest


def test_restore_into_an_empty_directory_serves_the_backup(
    tmp_path: Path, backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]
) -> None:
    src, manifest, events = backed_up
    assert (manifest.event_count, manifest.highest_seq, manifest.agent_count) == (2_000, 2_000, 4)
    assert manifest.directories == ("models",)
    assert [f.path for f in manifest.files] == ["jobs.sqlite3", "models/forecaster/weights.pt"]

    target = tmp_path / "restored"
    assert restore(src, target) == manifest
    assert (target / "models" / "forecaster" / "weights.pt").read_bytes() == b"\x00weights" * 1000
    assert not [p.name for p in target.iterdir() if p.name.startswith((".restore", "pre-restore"))]

    with start_daemon(target) as daemon, Client(daemon.address) as client:
        agents = client.list_agents(page_size=100).agents
        assert len(agents) == manifest.agent_count
        assert sum(client.get_agent_stats(a.agent_id).event_count for a in agents) == manifest.event_count
        again = client.ingest(events, batch_size=500)
    assert (again.accepted, again.duplicates) == (0, 2_000)


def test_the_learners_snapshots_are_backed_up_and_load_against_the_restored_log(tmp_path: Path) -> None:
    """A restored daemon's learners start from their snapshots (the forecaster's file, and the baselines'
    and the prompt learner's stores), not from a replay of the whole log."""
    from swarmlearn.online import OnlineState, _snapshot
    from swarmlearn.online._agentstore import AgentStore
    from swarmlearn.online._config import WorkerSettings
    from swarmlearn.online._promptstore import load_prompts
    from swarmlearn.store import event_at, open_reader

    data = tmp_path / "source"
    events = swarm(300, seed=2)
    with start_daemon(data) as daemon, Client(daemon.address) as client:
        client.ingest(events, batch_size=300)
        for agent in {e.agent_id for e in events}:  # each waits for the learners to reach the log's end
            client.predict(agent)
            client.score_prompts(agent, ["summarise the report"])
    # Stopped gracefully: each learner that applied events wrote its snapshot.
    roles = {
        "online-0-of-2.agents.sqlite3": WorkerSettings(role="baselines", shard=0, shards=2),
        "online-1-of-2.agents.sqlite3": WorkerSettings(role="baselines", shard=1, shards=2),
        "prompts.agents.sqlite3": WorkerSettings(role="prompts"),
        "forecaster.snapshot": WorkerSettings(role="forecaster"),
    }
    written = sorted(p.name for p in [*data.glob("*.snapshot"), *data.glob("*.agents.sqlite3")])
    assert set(written) >= set(list(roles)[:3])
    manifest = backup(data, tmp_path / "backup")
    assert sorted(f.path for f in manifest.files if f.path != "jobs.sqlite3" and "/" not in f.path) == written

    target = tmp_path / "restored"
    restore(tmp_path / "backup", target)
    for name in written:  # pickles of the daemon's own state, 0600 as the learners wrote them
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "backup" / name).stat().st_mode) == 0o600
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600
    conn = open_reader(target / "events.sqlite3")
    try:

        def anchor_at(seq: int) -> _snapshot.Anchor | None:
            found = event_at(conn, seq)
            return None if found is None else _snapshot.Anchor(seq, *found)

        for name in written:  # every check a learner makes at start, as it makes it
            settings = roles[name]
            fingerprint = _snapshot.fingerprint(settings.identity())
            if name.endswith(".snapshot"):
                _, anchor = _snapshot.load(target / name, fingerprint=fingerprint, anchor_at=anchor_at)
                seq = anchor.seq
            elif settings.role == "prompts":
                store = AgentStore(target / name)
                learner = load_prompts(store, resident=10, fingerprint=fingerprint, anchor_at=anchor_at)
                agents = learner.agents
                assert len(agents) > 0 and all(agents.get(agent) for agent in agents)  # type: ignore[attr-defined]
                seq = learner.applied_seq
                store.close()
            else:
                store = AgentStore(target / name)
                state = OnlineState.load(
                    store, config=settings.config, resident=10, fingerprint=fingerprint, anchor_at=anchor_at
                )
                assert len(state.agents) > 0 and all(state.agents.get(agent) for agent in state.agents)
                seq = state.applied_seq
                store.close()
            assert 0 < seq <= manifest.highest_seq
    finally:
        conn.close()
    # A restore over them moves them aside with the log they belonged to.
    restore(tmp_path / "backup", target, force=True)
    (aside,) = target.glob("pre-restore-*")
    assert sorted(p.name for p in [*aside.glob("*.snapshot"), *aside.glob("*.agents.sqlite3")]) == written


def test_restore_is_refused_while_a_daemon_runs_on_the_target(
    tmp_path: Path, backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]
) -> None:
    src, _, _ = backed_up
    target = tmp_path / "busy"
    with start_daemon(target) as daemon, Client(daemon.address) as client:
        client.ingest(swarm(10, seed=5, prefix="mine"), batch_size=10)
        with pytest.raises(BackupError, match=r"daemon is running on it"):
            restore(src, target, force=True)
        assert sum(a.event_count for a in client.list_agents().agents) == 40
    assert not list(target.glob("pre-restore-*"))


def test_a_daemon_cannot_start_while_a_restore_holds_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    with backup_module._locked(target), pytest.raises(DataDirLocked):
        start_daemon(target).start()


def write_crashed_log(data_dir: Path, n: int) -> None:
    """A log whose last commits are only in its WAL, as a daemon killed with SIGKILL leaves it."""
    script = f"""
import os, sqlite3
from swarmlearn.store._schema import INSERT_EVENT, SCHEMA, UPDATE_AGENTS
conn = sqlite3.connect({str(data_dir / "events.sqlite3")!r}, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.executescript(SCHEMA)
conn.execute("PRAGMA user_version=1")
conn.execute("BEGIN")
conn.executemany(INSERT_EVENT, [("old", f"o-{{i}}", 1.0, 2, 1.0, 1.0, 1.0, 1.0, 1.0) + (None,) * 5 for i in range({n})])
conn.execute(UPDATE_AGENTS, (0,))
conn.execute("COMMIT")
os._exit(0)
"""
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", script], check=True)
    assert (data_dir / "events.sqlite3-wal").stat().st_size > 0


def test_backup_of_a_crashed_log_includes_what_is_only_in_its_wal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_crashed_log(data, 300)
    manifest = backup(data, tmp_path / "backup")
    assert (manifest.event_count, manifest.agent_count, manifest.directories) == (300, 1, ())
    assert read_log(tmp_path / "backup" / "events.sqlite3")[:3] == (300, 300, 300)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["events.sqlite3", "manifest.json"]


def test_a_durable_writes_temporary_file_is_not_backed_up(tmp_path: Path) -> None:
    """One may be renamed away while the copy runs (FileNotFoundError), and it is no state the daemon had."""
    data = tmp_path / "data"
    write_crashed_log(data, 10)
    (data / "models").mkdir()
    (data / "models" / "registry.json").write_text("{}")
    (data / "models" / ".registry.json.123-0a1b2c3d.tmp").write_text("{half")
    manifest = backup(data, tmp_path / "backup")
    assert [f.path for f in manifest.files if f.path.startswith("models/")] == ["models/registry.json"]


def add_job(data_dir: Path, job_id: str) -> JobRecords:
    """A finished job's record in ``data_dir``'s job records, left open (in their WAL) as a daemon would."""
    records = JobRecords(data_dir / "jobs.sqlite3")
    records.insert(Job(job_id, "", "lstm", TrainingRequest(), state=JobState.SUCCEEDED, model_version="lstm-v1"))
    return records


def test_the_job_records_are_backed_up_and_restored_with_the_log(tmp_path: Path) -> None:
    data, target = tmp_path / "data", tmp_path / "target"
    store = EventStore(data / "events.sqlite3")
    store.submit(list(generate_swarm(agents=1, events_per_agent=10))).result(30)
    store.close()
    records = add_job(data, "train-backed-up")
    try:
        manifest = backup(data, tmp_path / "backup")
    finally:
        records.close()
    assert [f.path for f in manifest.files] == ["jobs.sqlite3"]
    write_crashed_log(target, 5)
    add_job(target, "train-replaced").close()

    with pytest.raises(BackupError, match=r"already holds events\.sqlite3.*jobs\.sqlite3"):
        restore(tmp_path / "backup", target)
    restore(tmp_path / "backup", target, force=True)
    (aside,) = target.glob("pre-restore-*")
    old = JobRecords(aside / "jobs.sqlite3")
    assert [job.job_id for job in old.load()] == ["train-replaced"]
    old.close()
    with start_daemon(target) as daemon, Client(daemon.address) as client:
        (job,) = client.list_jobs()
    assert (job.job_id, job.model_version) == ("train-backed-up", "lstm-v1")

    # A backup of the earlier format has no job records: the restored directory then has none either.
    edited = tmp_path / "format-1"
    shutil.copytree(tmp_path / "backup", edited)
    (edited / "jobs.sqlite3").unlink()
    edited_manifest = dataclasses.replace(manifest, format_version=1, files=())
    (edited / "manifest.json").write_text(edited_manifest.to_json())
    assert restore(edited, target, force=True) == edited_manifest
    assert not (target / "jobs.sqlite3").exists()


def test_restore_over_an_existing_log_needs_force_and_keeps_the_old_files(
    tmp_path: Path, backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]
) -> None:
    src, manifest, _ = backed_up
    target = tmp_path / "target"
    write_crashed_log(target, 300)
    (target / "models").mkdir()
    (target / "models" / "old.pt").write_bytes(b"old")
    before = sorted(p.name for p in target.iterdir())

    with pytest.raises(BackupError, match=r"already holds events\.sqlite3.*force"):
        restore(src, target)
    assert sorted(p.name for p in target.iterdir() if p.name != "daemon.lock") == before

    assert restore(src, target, force=True) == manifest
    (aside,) = target.glob("pre-restore-*")
    # The old log is whole aside (its WAL folded in) and nothing of it is left beside the new one.
    count, _, summed, _ = read_log(aside / "events.sqlite3")
    assert count == summed == 300
    assert (aside / "models" / "old.pt").read_bytes() == b"old"
    assert not (target / "events.sqlite3-wal").exists()
    assert not (target / "events.sqlite3-shm").exists()
    assert not (target / "models" / "old.pt").exists()
    count, highest, summed, _ = read_log(target / "events.sqlite3")
    assert count == highest == summed == manifest.event_count
    with start_daemon(target) as daemon, Client(daemon.address) as client:
        assert sum(a.event_count for a in client.list_agents().agents) == manifest.event_count


def test_a_tampered_backup_is_refused_before_anything_is_touched(
    tmp_path: Path, backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]
) -> None:
    src, _, _ = backed_up
    db = src / "events.sqlite3"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0x01
    db.write_bytes(bytes(data))
    target = tmp_path / "target"
    with pytest.raises(BackupError, match=r"events\.sqlite3 does not match the manifest: SHA-256"):
        restore(src, target)
    assert not target.exists()


def test_a_damaged_log_with_a_matching_manifest_fails_the_integrity_check(
    tmp_path: Path, backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]
) -> None:
    src, manifest, _ = backed_up
    db = src / "events.sqlite3"
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size] = 0xFF  # page 2's b-tree page type: not a valid one
    db.write_bytes(bytes(data))
    size, digest = backup_module._hash_file(db)
    (src / "manifest.json").write_text(
        dataclasses.replace(manifest, database_sha256=digest, database_size=size).to_json()
    )
    with pytest.raises(BackupError, match=r"integrity_check|not a readable swarmlearn event log"):
        verify_backup(src)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace('"format_version": 4', '"format_version": 5'), r"backup format 5"),
        (lambda text: text.replace('"models/forecaster', '"../forecaster'), r"nor inside a backed-up directory"),
        (lambda text: text.replace('"path": "jobs.sqlite3"', '"path": "events.sqlite3"'), r"nor inside"),
        (lambda text: text.replace('"path": "jobs.sqlite3"', '"path": "../online-0-of-2.snapshot"'), r"nor inside"),
        (lambda text: "", r"not valid JSON"),
    ],
)
def test_a_bad_manifest_is_refused(
    tmp_path: Path,
    backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]],
    edit: Callable[[str], str],
    message: str,
) -> None:
    src, _, _ = backed_up
    manifest = src / "manifest.json"
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(BackupError, match=message):
        restore(src, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_a_backup_without_manifest_is_incomplete(
    tmp_path: Path, backed_up: tuple[Path, BackupManifest, list[events_pb2.StreamEvent]]
) -> None:
    src, _, _ = backed_up
    (src / "manifest.json").unlink()
    with pytest.raises(BackupError, match=r"has no manifest\.json"):
        restore(src, tmp_path / "target")


def test_backup_refuses_a_destination_that_is_not_new_or_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_daemon(data) as daemon, Client(daemon.address) as client:
        client.ingest(swarm(10), batch_size=40)
        full = tmp_path / "full"
        full.mkdir()
        (full / "keep.txt").write_text("mine")
        with pytest.raises(BackupError, match=rf"{full} is not empty"):
            backup(data, full)
        assert [p.name for p in full.iterdir()] == ["keep.txt"]

        a_file = tmp_path / "file"
        a_file.write_text("x")
        with pytest.raises(BackupError, match=r"exists and is not a directory"):
            backup(data, a_file)
        with pytest.raises(BackupError, match=r"inside the data directory"):
            backup(data, data / "models" / "b")

        empty = tmp_path / "empty"
        empty.mkdir()
        assert backup(data, empty).event_count == 40
    with pytest.raises(BackupError, match=r"nothing to back up: .*nowhere"):
        backup(tmp_path / "nowhere", tmp_path / "b2")

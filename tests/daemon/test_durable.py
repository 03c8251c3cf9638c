"""``write_durably``, the one way the daemon rewrites a file: on real files, no mocks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from swarmlearn._durable import fsync_directory, remove_temporaries, write_durably


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00binary\xff", b"\x00binary\xff"),
        ('{"caf\u00e9": 1}', '{"caf\u00e9": 1}'.encode()),
        (lambda path: path.write_bytes(b"written by a function"), b"written by a function"),
    ],
    ids=["bytes", "text", "function"],
)
def test_the_content_lands_whole_and_nothing_else_stays(tmp_path: Path, content: object, expected: bytes) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old " * 1000)
    write_durably(target, content)  # type: ignore[arg-type]
    assert target.read_bytes() == expected
    assert _names(tmp_path) == ["state.json"]


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    target = tmp_path / "models" / "scope" / "m.pt"
    write_durably(target, b"weights")
    assert target.read_bytes() == b"weights" and _names(target.parent) == ["m.pt"]


def test_the_mode_is_opens_by_default_and_can_be_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_durably(tmp_path / "shared", "x")
        write_durably(tmp_path / "private", b"x", mode=0o600)
        write_durably(tmp_path / "private-by-function", lambda path: path.write_text("x"), mode=0o600)
    finally:
        os.umask(previous)
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "private-by-function").stat().st_mode & 0o777 == 0o600


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "jobs.json"
    target.write_text('{"jobs": []}')

    def half_then_fail(path: Path) -> None:
        path.write_text('{"jobs": [')
        raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError, match="disk full"):
        write_durably(target, half_then_fail)
    with pytest.raises(KeyboardInterrupt):  # not only Exception: a Ctrl-C midway cleans up too
        write_durably(target, lambda path: (path.write_text("{"), _interrupt()))
    assert target.read_text() == '{"jobs": []}'
    assert _names(tmp_path) == ["jobs.json"]


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_a_rename_that_fails_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "registry.json"
    target.mkdir()  # os.replace of a file onto a directory fails after the data was written
    with pytest.raises(OSError):
        write_durably(target, b"{}")
    assert _names(tmp_path) == ["registry.json"] and target.is_dir()


def test_concurrent_writers_leave_one_complete_version(tmp_path: Path) -> None:
    """Threads of one process (one pid: the temporary files must differ by more than it) write
    versions of 256 KiB to one path while a reader checks that every read is a whole version."""
    target = tmp_path / "experiment.json"
    first = b"A" * (1 << 18) + b"first"
    versions = {bytes([66 + w]) * (1 << 18) + str(i).encode() for w in range(6) for i in range(15)}
    write_durably(target, first)
    done = threading.Event()

    def write(w: int) -> None:
        for i in range(15):
            write_durably(target, bytes([66 + w]) * (1 << 18) + str(i).encode())

    def read() -> list[int]:
        torn = []
        while not done.is_set():
            data = target.read_bytes()
            if data != first and data not in versions:
                torn.append(len(data))
        return torn

    with ThreadPoolExecutor(max_workers=7) as pool:
        reader = pool.submit(read)
        try:
            for writer in [pool.submit(write, w) for w in range(6)]:
                writer.result()  # a writer's error fails the test
        finally:
            done.set()
        assert reader.result() == []
    assert target.read_bytes() in versions
    assert _names(tmp_path) == ["experiment.json"]


def test_remove_temporaries_removes_only_those_of_the_names_given(tmp_path: Path) -> None:
    for name in ("prompts.snapshot", "jobs.json"):
        write_durably(tmp_path / name, b"whole")
    left = [".prompts.snapshot.4242-0123abcd.tmp", ".online-0-of-2.snapshot.17-deadbeef.tmp", ".jobs.json.9-00.tmp"]
    for name in left:
        (tmp_path / name).write_bytes(b"half")
    remove_temporaries(tmp_path, "*.snapshot")
    assert _names(tmp_path) == [".jobs.json.9-00.tmp", "jobs.json", "prompts.snapshot"]
    remove_temporaries(tmp_path)
    assert _names(tmp_path) == ["jobs.json", "prompts.snapshot"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's procfs")
def test_a_directory_the_file_system_cannot_fsync_is_skipped_but_a_missing_one_is_an_error(tmp_path: Path) -> None:
    fsync_directory(Path("/proc/self"))  # procfs refuses fsync (EINVAL): nothing to make durable there
    fsync_directory(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_directory(tmp_path / "gone")


_TRACED = """
import sys
from pathlib import Path
from swarmlearn._durable import write_durably
write_durably(Path(sys.argv[1]), b"payload")
"""


def test_the_data_then_the_rename_then_the_directories_are_fsynced(tmp_path: Path) -> None:
    """What a crash can lose depends on the order of the system calls, so they are watched for real
    (strace): the temporary file is fsynced before the rename, the directory after it, and a parent
    directory created on the way is made durable in its own parent."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    trace, target = tmp_path / "trace", tmp_path / "new" / "x.json"
    calls = "openat,open,fsync,rename,renameat,renameat2,mkdir,mkdirat"
    run = subprocess.run(
        ["strace", "-qq", "-o", str(trace), "-e", f"trace={calls}", sys.executable, "-c", _TRACED, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0 and "ptrace" in run.stderr:
        pytest.skip(f"strace cannot trace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert target.read_bytes() == b"payload"

    opened: dict[str, str] = {}
    events: list[tuple[str, ...]] = []
    for line in trace.read_text().splitlines():
        if found := re.match(r'open(?:at)?\((?:AT_FDCWD, )?"([^"]+)".* = (\d+)$', line):
            opened[found[2]] = found[1]
        elif found := re.match(r"fsync\((\d+)\)\s+= 0", line):
            events.append(("fsync", opened[found[1]]))
        elif found := re.match(r'rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"', line):
            events.append(("rename", found[1], found[2]))
        elif found := re.match(r'mkdir(?:at)?\((?:AT_FDCWD, )?"([^"]+)"', line):
            events.append(("mkdir", found[1]))
    ours = [e for e in events if e[1].startswith(str(tmp_path))]
    renames = [e for e in ours if e[0] == "rename"]
    assert len(renames) == 1 and renames[0][2] == str(target)
    temporary = renames[0][1]
    assert Path(temporary).parent == target.parent and Path(temporary).name.startswith(".x.json.")
    assert ours == [
        ("mkdir", str(target.parent)),
        ("fsync", str(tmp_path)),  # the new directory's entry
        ("fsync", temporary),  # the data, before it is renamed into place
        ("rename", temporary, str(target)),
        ("fsync", str(target.parent)),  # the rename
    ]

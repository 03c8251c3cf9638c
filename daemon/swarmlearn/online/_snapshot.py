"""Versioned snapshots of the learner process's state, and their checks on load.

A snapshot file is::

    MAGIC                      b"swarmlearn-online-snapshot\\n"
    header length              4 bytes, big-endian
    header                     JSON: format, fingerprint, applied_seq, anchor, payload sha256 and size
    payload                    pickle (protocol 5) of the state

River's estimators have no other serialisation than pickle, so the payload is one, with three
guards: the file lives in the daemon's private data directory (written 0600 by the daemon, as
the event log is); it is loaded only if everything in the header checks out; and it is unpickled
by an unpickler that resolves only what a state is made of: a few builtins, collections, numpy
reconstructors, ``random.Random`` and ``array.array``, and classes *defined* in ``swarmlearn.online``,
``swarmlearn.prompts`` or River (never functions, never a class those modules merely import,
never a dotted name), plus ``getattr`` limited to methods of such objects. A tampered file cannot
name ``os.system`` or reach ``subprocess.Popen`` through a learner module (tested). The data
directory's permissions remain the first guard.

What "checks out" means: the same format version; the same *fingerprint* (``STATE_VERSION``, the
state's own format, River's major and minor version and the learners' configuration: a state of
another layout, or built with other settings, would answer differently from one rebuilt now; a
patch release of swarmlearn, River, numpy or Python changes none of these, so an upgrade keeps the
state instead of replaying the whole log); a payload of the recorded size and
SHA-256; and an *anchor* that matches the log: the event the snapshot says it applied last is
the event at that sequence in this log (a restored backup or a replaced log fails this). Any
failure is reported as ``SnapshotRejected`` with the reason, and the caller rebuilds from the log.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmlearn._durable import remove_temporaries, write_durably

FORMAT_VERSION = 1
"""The file's layout (magic, header, payload)."""
STATE_VERSION = 4
"""The learners' state: bump it when a class a snapshot holds changes its fields or what they mean
(``tests/daemon/test_snapshot_layout.py`` fails until it is bumped on a change of fields). 2: the
intervals' ring became a flat array of 32-bit floats. 3: an ``OnlineState``'s agents in an
``AgentTable`` (``_agents``), snapshotted incrementally into an ``AgentStore`` (``_agentstore``). 4: the
prompt learner's agents too (``_promptstore``), their context levels in ``AgentPrompts``; the table
generic over what it holds."""
MAGIC = b"swarmlearn-online-snapshot\n"
_HEADER_LIMIT = 1 << 20

_SAFE_BUILTINS = frozenset(
    {"bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "range", "set", "slice",
     "str", "tuple"}
)  # fmt: skip
_SAFE_COLLECTIONS = frozenset({"Counter", "OrderedDict", "defaultdict", "deque"})
_SAFE_OTHERS = frozenset(
    {("random", "Random"), ("array", "array"), ("array", "_array_reconstructor")}
)  # the prompt bandit's generator; the intervals' rings (an array from its type code and bytes)
_NUMPY = frozenset(
    {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.numeric", "_frombuffer"),
     ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar")}
)  # fmt: skip
# Only classes from these: a class rebuilds an object; a function could do anything.
_CLASS_PREFIXES = ("swarmlearn.online.", "swarmlearn.prompts.", "river.")


NO_SNAPSHOT = "no snapshot"
"""``SnapshotRejected``'s reason when there is none to refuse."""


class SnapshotRejected(Exception):
    """The snapshot cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The last event a state applied: its sequence number and identity in the log."""

    seq: int
    agent_id: str
    event_id: str


def fingerprint(config: Any) -> str:
    """What a state's meaning depends on besides the events: its format, River's minor release (whose
    estimators it pickles) and the configuration."""
    import river  # here, not at the top: the daemon process imports this module and never River

    document = {
        "format": FORMAT_VERSION,
        "state": STATE_VERSION,
        "river": ".".join(river.__version__.split(".")[:2]),
        "config": config,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=repr).encode()).hexdigest()


def save(path: Path, state: object, *, anchor: Anchor, fingerprint: str) -> int:
    """Write ``state`` durably (``write_durably``, mode 0600); returns the file's size."""
    payload = pickle.dumps(state, protocol=5)
    header = json.dumps(
        {
            "format": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "anchor": [anchor.seq, anchor.agent_id, anchor.event_id],
            "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        }
    ).encode()

    def write(temporary: Path) -> None:
        with temporary.open("wb") as out:  # in two writes: the payload can be large, never copied
            out.write(MAGIC + struct.pack(">I", len(header)) + header)
            out.write(payload)

    write_durably(path, write, mode=0o600)
    return len(MAGIC) + 4 + len(header) + len(payload)


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files a process left when it died mid-write."""
    remove_temporaries(directory, "*.snapshot")


def load(path: Path, *, fingerprint: str, anchor_at: Callable[[int], Anchor | None]) -> tuple[object, Anchor]:
    """The state in ``path`` and its anchor, or ``SnapshotRejected``.

    ``anchor_at(seq)`` looks the event at ``seq`` up in the log (None if there is none).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotRejected(NO_SNAPSHOT) from None
    except OSError as exc:
        raise SnapshotRejected(f"cannot read {path}: {exc.strerror}") from None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise SnapshotRejected("not a snapshot file")
    (header_size,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if header_size > _HEADER_LIMIT or start + header_size > len(data):
        raise SnapshotRejected("truncated header")
    try:
        header = json.loads(data[start : start + header_size])
        version = header["format"]
        recorded_fingerprint = header["fingerprint"]
        seq, agent_id, event_id = header["anchor"]
        size, digest = header["payload_bytes"], header["payload_sha256"]
    except (ValueError, KeyError, TypeError):
        raise SnapshotRejected("unreadable header") from None
    check_made_alike(version, FORMAT_VERSION, recorded_fingerprint, fingerprint)
    payload = data[start + header_size :]
    if len(payload) != size or hashlib.sha256(payload).hexdigest() != digest:
        raise SnapshotRejected("payload damaged (size or SHA-256 differs)")
    anchor = anchor_in_log(seq, agent_id, event_id, anchor_at)
    try:
        state = StateUnpickler(io.BytesIO(payload)).load()
    except Exception as exc:  # anything a damaged or foreign pickle raises
        raise SnapshotRejected(f"cannot unpickle: {type(exc).__name__}: {exc}") from None
    return state, anchor


def check_made_alike(version: object, readable: int, recorded: object, fingerprint: str) -> None:
    """``SnapshotRejected`` unless a saved state has the format this release reads and was made by
    code and settings of the same ``fingerprint`` (a snapshot file's header, an agents' store's meta)."""
    if version != readable:
        raise SnapshotRejected(f"format {version}, this release reads {readable}")
    if recorded != fingerprint:
        raise SnapshotRejected("made by another release or configuration")


def anchor_in_log(seq: Any, agent_id: Any, event_id: Any, anchor_at: Callable[[int], Anchor | None]) -> Anchor:
    """The saved anchor, or ``SnapshotRejected`` unless the log holds that event at that sequence."""
    anchor = Anchor(int(seq), str(agent_id), str(event_id))
    if anchor.seq and anchor_at(anchor.seq) != anchor:
        raise SnapshotRejected(f"does not match the event log at sequence {anchor.seq}")
    return anchor


def _bound_method(obj: object, name: str) -> Any:
    """What a pickle asks of ``getattr``, limited to what a state needs: River's TargetStandardScaler
    keeps bound methods of itself (``self._scale``), which pickle as ``getattr(obj, name)``. Only a
    plain function defined on the class of a learner object, looked up statically (no property or
    ``__getattr__`` runs), never a dunder, and returned bound to that object."""
    cls = type(obj)
    if _plain_method(cls, name):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f"getattr({cls.__name__}, {name!r}) is not part of a learner state")


_PLAIN_METHODS: dict[tuple[type, str], bool] = {}


def _plain_method(cls: type, name: str) -> bool:
    """``_bound_method``'s check, once per class and name: ``getattr_static`` took a third of the time
    of unpickling an agent's prompt state (eight bound methods in each)."""
    known = _PLAIN_METHODS.get((cls, name))
    if known is None:
        known = not name.startswith("__") and _learner_class(cls)
        known = _PLAIN_METHODS[cls, name] = known and inspect.isfunction(inspect.getattr_static(cls, name, None))
    return known


def _learner_class(found: object) -> bool:
    """A class *defined* in swarmlearn's learner packages or in River (not merely imported there:
    ``swarmlearn.online._process`` imports ``subprocess``, and ``Popen`` is a class)."""
    return isinstance(found, type) and found.__module__.startswith(_CLASS_PREFIXES)


_ALLOWED: dict[tuple[str, str], Any] = {}
"""What ``StateUnpickler.find_class`` has resolved and allowed: the same answer next time, without the checks
(an agent's pickle names about 16 globals, and a learner process unpickles agents all the time)."""


class StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            found = _ALLOWED[module, name] = self._check_class(module, name)
        return found

    def _check_class(self, module: str, name: str) -> Any:
        if "." in name:  # protocol 4 resolves dotted names attribute by attribute: never needed here
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a learner state")
        if module == "builtins" and name == "getattr":
            return _bound_method
        if (
            (module == "builtins" and name in _SAFE_BUILTINS)
            or (module == "collections" and name in _SAFE_COLLECTIONS)
            or (module, name) in _NUMPY
            or (module, name) in _SAFE_OTHERS
        ):
            return super().find_class(module, name)
        if module.startswith(_CLASS_PREFIXES):
            found = super().find_class(module, name)
            if _learner_class(found):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a learner state")

"""The model registry: every trained version per scope and model kind, one champion per scope.

A *scope* is what a model forecasts for: ``""`` for the swarm (a global model, every agent) or an
agent id. Versions count from 1 per (scope, kind). The champion of a scope is the version Predict
uses for it; each scope keeps its history of champions, so ``rollback`` returns to the one before.

Promotion is decided on the challenger's test split, against rivals evaluated on the same windows at
the same horizon (``decide``): the naive forecast, the online aggregate and the champion that serves
the scope now. Errors of different targets are in different units (milliseconds, tokens per second,
a rate), so they are never pooled: the challenger's error is divided by the rival's per target, and
the geometric mean of those ratios must be below ``1 - margin`` against every rival, with a paired
test of the per-window losses significant at ``alpha``. ``PromoteModel`` (an operator's explicit
choice) skips the rule.

It also holds the best configuration each tuning job found per (scope, kind) (``record_tuned``); the
next training of that kind for that scope, scheduled or asked for without a config, uses it
(``tuned``), and the version it makes records it in its ``config``.

The registry lives in ``<data_dir>/models/registry.json`` beside the checkpoints, written by
``swarmlearn._durable.write_durably`` (a temporary file, fsync, rename, fsync of the directory); a
backup copies the whole directory. It is JSON: nothing in it is executable, and checkpoints are
loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swarmlearn._durable import write_durably
from swarmlearn.errors import InvalidArgument, NotFound

FORMAT_VERSION = 1
REGISTRY_FILE = "registry.json"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    scope: str
    """``""`` for the swarm's global model, else an agent id."""
    kind: str
    """``lstm``, ``tcn`` or ``nbeats``."""
    version: int
    created_at: float
    checkpoint: str
    """Path of the checkpoint file, relative to the registry's directory."""
    metrics: dict[str, float] = field(default_factory=dict)
    """``<target>.<metric>`` on the test split of the run that made it, e.g. ``latency_ms.mae``."""
    config: dict[str, Any] = field(default_factory=dict)
    """The configuration that made it (model and training)."""
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class TunedConfig:
    """The best configuration a tuning job found for a scope and kind."""

    scope: str
    kind: str
    config: dict[str, Any]
    """A training job's ``config_json``: model fields, and training ones under ``training``."""
    objective: str
    value: float
    """The objective's value on the validation split (lower is better)."""
    job_id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Decision:
    promote: bool
    reason: str
    """What the job's note says: the figures and p-values, or why not."""
    ratios: dict[str, float]
    """Per rival, the geometric mean over targets of challenger error / rival error."""


def decide(comparisons: Mapping[str, Mapping[str, Any]], *, margin: float = 0.02, alpha: float = 0.05) -> Decision:
    """Whether a challenger is promoted over every rival it was compared with (``training.compare``'s
    ``{"ratio", "p_value", "windows"}`` per rival, or ``{"comparable": False, "reason"}``).

    A promotion needs, against every rival: a comparison on the same windows at the same horizon; a
    ratio below ``1 - margin`` (the geometric mean over targets of the challenger's MAE over the
    rival's: errors of different units are never pooled); and a one-sided paired test of the
    per-window losses (Diebold-Mariano, small-sample corrected) below ``alpha``. A tie is not a win,
    nor is a gain the test windows cannot tell from noise. No rival at all (nothing to compare
    with) promotes."""
    ratios: dict[str, float] = {}
    figures, failures = [], []
    for name, c in comparisons.items():
        if not c.get("comparable", True):
            failures.append(f"not comparable with the {name} ({c.get('reason', '')})")
            continue
        ratio, p = float(c["ratio"]), float(c["p_value"])
        if not math.isfinite(ratio):
            failures.append(f"no comparable error against the {name}")
            continue
        ratios[name] = ratio
        figures.append(f"the {name} {ratio:.3f} of its MAE (p = {p:.2g}, {int(c['windows'])} windows)")
        if ratio >= 1.0 - margin:
            failures.append(f"does not beat the {name} by the {margin:.0%} margin")
        elif p >= alpha:
            failures.append(f"beats the {name} but not significantly (p >= {alpha:g})")
    if failures:
        reason = "; ".join(failures) + (f"; against {', '.join(figures)}" if figures else "")
        return Decision(False, reason, ratios)
    return Decision(True, f"beats {', '.join(figures)}" if figures else "nothing to compare with", ratios)


class ModelRegistry:
    """Thread-safe; every change is on disk before the call returns. ``listeners`` are called (on the
    caller's thread, after the change is on disk) whenever a scope's champion changes: a promotion
    or a rollback, whoever made it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.listeners: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str, int], ModelVersion] = {}
        self._champions: dict[str, list[tuple[str, int]]] = {}
        self._tuned: dict[tuple[str, str], TunedConfig] = {}
        path = root / REGISTRY_FILE
        if path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text())
            if document.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {document.get('format')}, this release reads {FORMAT_VERSION}")
            for raw in document["versions"]:
                v = ModelVersion(**raw)
                self._versions[(v.scope, v.kind, v.version)] = v
            self._champions = {
                scope: [(str(kind), int(version)) for kind, version in history]
                for scope, history in document["champions"].items()
            }
            for raw in document.get("tuned", []):
                t = TunedConfig(**raw)
                self._tuned[(t.scope, t.kind)] = t
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"cannot read the model registry {path}: {exc}") from None

    def _save(self) -> None:
        document = {
            "format": FORMAT_VERSION,
            "versions": [asdict(v) for v in sorted(self._versions.values(), key=_order)],
            "champions": {scope: [list(entry) for entry in history] for scope, history in self._champions.items()},
            "tuned": [asdict(t) for _, t in sorted(self._tuned.items())],
        }
        write_durably(self.root / REGISTRY_FILE, json.dumps(document, indent=1))

    # -- reads ------------------------------------------------------------------------------------

    def versions(self, scope: str | None = None, kind: str | None = None) -> list[ModelVersion]:
        with self._lock:
            found = [
                v
                for v in self._versions.values()
                if (scope is None or v.scope == scope) and (kind is None or v.kind == kind)
            ]
        return sorted(found, key=_order)

    def get(self, scope: str, kind: str, version: int) -> ModelVersion:
        with self._lock:
            found = self._versions.get((scope, kind, version))
        if found is None:
            raise NotFound(f"no model {kind} version {version} in scope {scope!r}")
        return found

    def champion(self, scope: str) -> ModelVersion | None:
        with self._lock:
            history = self._champions.get(scope)
            return self._versions[(scope, *history[-1])] if history else None

    def is_champion(self, version: ModelVersion) -> bool:
        champion = self.champion(version.scope)
        return champion is not None and (champion.kind, champion.version) == (version.kind, version.version)

    def checkpoint_path(self, version: ModelVersion) -> Path:
        return self.root / version.checkpoint

    def tuned(self, scope: str, kind: str) -> TunedConfig | None:
        """The best configuration tuned for ``scope`` and ``kind``, else for the swarm (``""``), else None."""
        with self._lock:
            return self._tuned.get((scope, kind)) or self._tuned.get(("", kind))

    # -- changes ----------------------------------------------------------------------------------

    def next_version(self, scope: str, kind: str) -> int:
        with self._lock:
            return 1 + max((v for s, k, v in self._versions if s == scope and k == kind), default=0)

    def register(
        self,
        scope: str,
        kind: str,
        version: int,
        checkpoint: Path,
        *,
        metrics: Mapping[str, float],
        config: Mapping[str, Any],
        job_id: str = "",
    ) -> ModelVersion:
        """Record a trained version whose checkpoint is already written under the registry's root."""
        relative = checkpoint.resolve().relative_to(self.root.resolve())
        entry = ModelVersion(scope, kind, version, time.time(), str(relative), dict(metrics), dict(config), job_id)
        with self._lock:
            if (scope, kind, version) in self._versions:
                raise InvalidArgument("version", f"{kind} version {version} of scope {scope!r} exists")
            self._versions[(scope, kind, version)] = entry
            self._save()
        return entry

    def record_tuned(self, tuned: TunedConfig) -> None:
        """Keep a tuning job's best configuration for its scope and kind (replacing an earlier one)."""
        with self._lock:
            self._tuned[(tuned.scope, tuned.kind)] = tuned
            self._save()

    def promote(self, scope: str, kind: str, version: int) -> ModelVersion:
        """Make a version the champion of its scope (no check: the caller decided)."""
        entry = self.get(scope, kind, version)
        with self._lock:
            history = self._champions.setdefault(scope, [])
            changed = not history or history[-1] != (kind, version)
            if changed:
                history.append((kind, version))
                self._save()
        if changed:
            self._announce()
        return entry

    def rollback(self, scope: str) -> ModelVersion:
        """Return to the champion before the current one."""
        with self._lock:
            history = self._champions.get(scope, [])
            if len(history) < 2:
                raise NotFound(f"scope {scope!r} has no earlier champion to roll back to")
            history.pop()
            self._save()
            entry = self._versions[(scope, *history[-1])]
        self._announce()
        return entry

    def _announce(self) -> None:
        for listener in list(self.listeners):
            listener()


def _order(v: ModelVersion) -> tuple[str, str, int]:
    return (v.scope, v.kind, v.version)

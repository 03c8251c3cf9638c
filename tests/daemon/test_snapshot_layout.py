"""Snapshot compatibility is the state's own business: ``STATE_VERSION``, not library patch versions.

A snapshot is kept across an upgrade when its fingerprint matches: the state's version, River's
minor release and the configuration. So a change of the fields of any class a snapshot holds must
bump ``STATE_VERSION``, or an old snapshot would be unpickled into objects of the new shape. The
layout test below records those fields; it fails on a change until the version is bumped and the
record updated together.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from typing import Any

import pytest
import river

import swarmlearn._version
from swarmlearn.online import OnlineState, _snapshot
from swarmlearn.online._config import WorkerSettings
from swarmlearn.prompts import PromptLearner
from swarmlearn.synthetic import generate_swarm

RECORDED_FOR = 4
"""The ``STATE_VERSION`` that ``LAYOUT`` describes."""

LAYOUT: dict[str, tuple[str, ...]] = {
    "swarmlearn.online._agents.AgentTable": (
        "_shared_ids",
        "capacity",
        "dirty",
        "kind",
        "known",
        "pending",
        "pending_bytes",
        "resident",
        "shared",
        "store",
    ),
    "swarmlearn.online._aggregate.MLPoly": (
        "keep",
        "n",
        "prior",
        "prior_events",
        "raw",
        "regret",
        "share",
        "square",
        "total",
    ),
    "swarmlearn.online._baselines.ExpertBank": (
        "_alphas",
        "count",
        "damping",
        "fast",
        "holt_level",
        "holt_trend",
        "last",
        "median",
        "mid",
    ),
    "swarmlearn.online._baselines.FeatureRegressor": (
        "_n",
        "bias",
        "count",
        "every",
        "inverse",
        "lr",
        "mean",
        "prediction",
        "square",
        "weights",
        "x",
    ),
    "swarmlearn.online._config.OnlineConfig": (
        "aggregation_forget",
        "clip_mads",
        "clip_run",
        "drift_clock",
        "drift_cusum_h",
        "drift_cusum_k",
        "drift_delta",
        "ewma_alpha",
        "fast_alpha",
        "holt_alpha",
        "holt_beta",
        "holt_damping",
        "interval_refresh",
        "interval_step",
        "learn_failed_outcomes",
        "linear_every",
        "linear_lr",
        "max_horizon",
        "median_window",
        "prior_events",
        "residual_window",
        "scale_alpha",
    ),
    "swarmlearn.online._intervals.ConformalIntervals": (
        "_cache_epoch",
        "_capacity",
        "_ratios",
        "_refresh",
        "_steps",
        "_window",
        "alpha",
        "fresh",
        "hits",
        "n",
        "quantiles",
        "ring",
        "scale",
    ),
    "swarmlearn.online._learner.AgentLearner": (
        "_learners",
        "config",
        "events",
        "first_timestamp",
        "last_timestamp",
        "regressor",
        "running",
        "targets",
    ),
    "swarmlearn.online._learner.OnlineState": ("agents", "applied_seq", "config", "priors"),
    "swarmlearn.online._prior.TargetPrior": ("absorbed", "quantiles", "scale", "spread", "weights"),
    "swarmlearn.online._stats.RunningStats": (
        "alpha",
        "count",
        "errors",
        "events",
        "ewma",
        "gap_sum",
        "last_event",
        "last_timestamp",
        "mean",
        "outcomes",
        "quantiles",
        "recent_errors",
        "recent_gap",
        "square",
    ),
    "swarmlearn.online._target.TargetLearner": (
        "_abs_sum",
        "_alpha",
        "_answer_abs_sum",
        "_cache",
        "_clip",
        "_cusum_down",
        "_cusum_h",
        "_cusum_k",
        "_cusum_up",
        "_damping",
        "_forecasts",
        "_line",
        "_log_limit",
        "_next",
        "_outside",
        "_regime",
        "_run",
        "aggregation",
        "config",
        "drift",
        "drift_count",
        "experts",
        "intervals",
        "last_drift_timestamp",
        "last_value",
        "limit",
        "log_scale",
        "n",
        "prior",
        "spread",
    ),
    "swarmlearn.prompts._config.PromptConfig": (
        "attribute_keys",
        "bandit_burn_in",
        "cache_size",
        "cost_weight",
        "explore",
        "global_share",
        "hash_features",
        "l2",
        "latency_weight",
        "learn_share",
        "learning_rate",
        "max_candidates",
        "max_ngrams",
        "max_text_chars",
        "max_variant_chars",
        "min_agent_events",
        "ngram_max",
        "quality_weight",
        "reference_alpha",
        "residual_alpha",
        "seed",
        "success_weight",
        "text_norm_floor",
        "tokens_per_word",
    ),
    "swarmlearn.prompts._features.Featurizer": ("_cache", "config", "hasher", "scaler"),
    "swarmlearn.prompts._learner.PromptLearner": ("applied_seq", "state"),
    "swarmlearn.prompts._models.RunningErrors": ("alpha", "count", "mae"),
    "swarmlearn.prompts._models.ScopeModels": ("config", "errors", "models"),
    "swarmlearn.prompts._score.References": ("alpha", "latency_count", "log_latency", "log_tokens", "tokens_count"),
    "swarmlearn.prompts._state.AgentDict": (),
    "swarmlearn.prompts._state.AgentPrompts": (
        "agent_id",
        "attributes",
        "bandit",
        "config",
        "global_errors",
        "last_timestamp",
        "levels",
        "models",
        "prompt_events",
        "references",
    ),
    "swarmlearn.prompts._state.PromptState": (
        "_rng",
        "agents",
        "config",
        "features",
        "global_models",
        "global_references",
        "last_timestamp",
    ),
}
"""Every swarmlearn class in a baselines and a prompts state, with its fields (slots, dataclass
fields and instance attributes)."""


class _Recorder(pickle.Unpickler):
    """Unpickles a payload, noting every class it names."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.names: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.names.add((module, name))
        return super().find_class(module, name)


def _fields(cls: type, attributes: set[str]) -> tuple[str, ...]:
    """Slots and dataclass fields over the MRO, and the instance attributes seen (``attributes``)."""
    names = set(attributes)
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update([slots] if isinstance(slots, str) else slots)
    if dataclasses.is_dataclass(cls):
        names.update(f.name for f in dataclasses.fields(cls))
    return tuple(sorted(names - {"__weakref__", "__dict__"}))


def _instance_attributes(root: object) -> dict[type, set[str]]:
    """The ``__dict__`` keys of every swarmlearn object reachable from ``root``, per class."""
    seen: set[int] = set()
    found: dict[type, set[str]] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif type(obj).__module__.startswith("swarmlearn."):
            found.setdefault(type(obj), set()).update(getattr(obj, "__dict__", {}))
            stack.extend(getattr(obj, "__dict__", {}).values())
            for klass in type(obj).__mro__:
                for slot in klass.__dict__.get("__slots__", ()):
                    if hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
        elif hasattr(obj, "__dict__"):  # River's and collections' objects may hold ours
            stack.extend(vars(obj).values())
    return found


def _state_layout() -> dict[str, tuple[str, ...]]:
    """The swarmlearn classes of real states (learned from a synthetic swarm) and their fields."""
    online, prompts = OnlineState(), PromptLearner()
    for seq, event in enumerate(generate_swarm(agents=3, events_per_agent=200, seed=5), start=1):
        online.learn(event, seq)
        prompts.learn(event, seq)
    recorder = _Recorder(pickle.dumps({"online": online, "prompts": prompts}, protocol=5))
    attributes = _instance_attributes(recorder.load())
    layout = {}
    for module, name in sorted(recorder.names):
        if module.startswith("swarmlearn."):
            cls = recorder.find_class(module, name)
            layout[f"{module}.{name}"] = _fields(cls, attributes.get(cls, set()))
    return layout


def test_a_change_of_a_state_class_fields_bumps_state_version() -> None:
    layout = _state_layout()
    assert layout, "a real state holds swarmlearn classes"
    assert any("TargetLearner" in name for name in layout)
    if _snapshot.STATE_VERSION == RECORDED_FOR:
        changed = {name for name in layout.keys() | LAYOUT.keys() if layout.get(name) != LAYOUT.get(name)}
        assert not changed, (
            f"the fields of {sorted(changed)} changed: bump STATE_VERSION in swarmlearn/online/_snapshot.py "
            "(old snapshots are then rebuilt from the log) and record the new layout here"
        )


def test_the_fingerprint_ignores_patch_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = WorkerSettings().identity()
    before = _snapshot.fingerprint(identity)
    major, minor, *_ = river.__version__.split(".")
    monkeypatch.setattr(river, "__version__", f"{major}.{minor}.99")
    monkeypatch.setattr(swarmlearn._version, "__version__", "99.0.0")
    assert _snapshot.fingerprint(identity) == before
    monkeypatch.setattr(river, "__version__", f"{major}.{int(minor) + 1}.0")
    assert _snapshot.fingerprint(identity) != before  # River's pickles may change across minors
    monkeypatch.setattr(river, "__version__", f"{major}.{minor}.0")
    monkeypatch.setattr(_snapshot, "STATE_VERSION", _snapshot.STATE_VERSION + 1)
    assert _snapshot.fingerprint(identity) != before


def test_a_snapshot_of_another_state_version_is_rebuilt(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    identity = WorkerSettings().identity()
    path = tmp_path / "online-0-of-1.snapshot"
    _snapshot.save(
        path, {"online": OnlineState()}, anchor=_snapshot.Anchor(0, "", ""), fingerprint=_snapshot.fingerprint(identity)
    )
    _snapshot.load(path, fingerprint=_snapshot.fingerprint(identity), anchor_at=lambda seq: None)
    monkeypatch.setattr(_snapshot, "STATE_VERSION", _snapshot.STATE_VERSION + 1)
    with pytest.raises(_snapshot.SnapshotRejected, match="another release or configuration"):
        _snapshot.load(path, fingerprint=_snapshot.fingerprint(identity), anchor_at=lambda seq: None)

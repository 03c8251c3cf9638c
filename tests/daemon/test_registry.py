"""The model registry on a real directory: versions, champions, rollback, the promotion rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmlearn.errors import InvalidArgument, NotFound
from swarmlearn.registry import REGISTRY_FILE, ModelRegistry, decide

TARGETS = ("latency_ms", "tokens_per_second", "success_rate")


def metrics(latency: float, tps: float, success: float) -> dict[str, float]:
    return {"latency_ms.mae": latency, "tokens_per_second.mae": tps, "success_rate.mae": success}


def checkpoint(root: Path, name: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


def test_versions_champions_and_rollback_survive_a_reload(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.champion("") is None and registry.next_version("", "lstm") == 1
    first = registry.register(
        "", "lstm", 1, checkpoint(tmp_path, "lstm-1.pt"), metrics=metrics(90, 5, 0.02), config={"hidden_size": 64}
    )
    second = registry.register(
        "", "lstm", 2, checkpoint(tmp_path, "lstm-2.pt"), metrics=metrics(80, 5, 0.02), config={}, job_id="j2"
    )
    tcn = registry.register("coder", "tcn", 1, checkpoint(tmp_path, "coder/tcn-1.pt"), metrics={}, config={})
    assert registry.next_version("", "lstm") == 3 and registry.next_version("coder", "tcn") == 2
    with pytest.raises(InvalidArgument, match="exists"):
        registry.register("", "lstm", 2, checkpoint(tmp_path, "again.pt"), metrics={}, config={})
    registry.promote("", "lstm", 1)
    registry.promote("", "lstm", 2)
    registry.promote("coder", "tcn", 1)
    assert registry.champion("") == second and registry.is_champion(second) and not registry.is_champion(first)
    reloaded = ModelRegistry(tmp_path)  # what a restarted daemon sees
    assert reloaded.versions() == registry.versions() == [first, second, tcn]
    assert reloaded.versions(scope="coder") == [tcn] and reloaded.versions(kind="lstm") == [first, second]
    assert reloaded.checkpoint_path(tcn).read_bytes() == b"weights"
    assert reloaded.rollback("") == first and reloaded.champion("") == first
    with pytest.raises(NotFound, match="no earlier champion"):
        reloaded.rollback("")
    assert ModelRegistry(tmp_path).champion("") == first  # the rollback is on disk
    with pytest.raises(NotFound, match="version 9"):
        reloaded.promote("", "lstm", 9)


def test_a_damaged_registry_is_an_error_not_an_empty_registry(tmp_path: Path) -> None:
    (tmp_path / REGISTRY_FILE).write_text(json.dumps({"format": 99, "versions": [], "champions": {}}))
    with pytest.raises(RuntimeError, match="format 99"):
        ModelRegistry(tmp_path)
    (tmp_path / REGISTRY_FILE).write_text("{not json")
    with pytest.raises(RuntimeError, match="cannot read the model registry"):
        ModelRegistry(tmp_path)


def test_a_challenger_is_promoted_only_when_it_beats_every_rival() -> None:
    online = metrics(100, 10, 0.05)
    champion = metrics(80, 8, 0.04)
    better = decide(metrics(70, 7, 0.035), {"champion": champion, "online": online}, TARGETS)
    assert better.promote and better.ratios["champion"] < 1 and better.ratios["online"] < 1
    # Better than the online baseline but worse than the champion: kept out.
    worse = decide(metrics(90, 9, 0.045), {"champion": champion, "online": online}, TARGETS)
    assert not worse.promote and "champion" in worse.reason and "online" not in worse.reason
    # Errors are never pooled across units: a big latency gain does not buy a worse success rate
    # unless the relative gains outweigh the losses (geometric mean of the ratios).
    mixed = decide(metrics(40, 8, 0.2), {"online": online}, TARGETS)
    assert not mixed.promote  # 0.4 * 0.8 * 4.0 -> geometric mean 1.09
    assert decide(metrics(99, 9.9, 0.0495), {"online": online}, TARGETS, margin=0.02).promote is False
    # Nothing to compare on is not a win.
    assert not decide({}, {"online": online}, TARGETS).promote
    assert decide(metrics(1, 1, 0.01), {}, TARGETS).promote  # no rivals at all: the first model

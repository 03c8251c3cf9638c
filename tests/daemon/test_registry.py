"""The model registry on a real directory: versions, champions, rollback, the promotion rule."""

from __future__ import annotations

import json
import math
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


def test_a_challenger_is_promoted_only_when_it_beats_every_rival_clearly() -> None:
    def win(ratio: float, p: float, windows: int = 120) -> dict[str, float]:
        return {"ratio": ratio, "p_value": p, "windows": windows}

    clear = decide({"naive": win(0.7, 1e-6), "online": win(0.8, 1e-4), "champion": win(0.9, 0.01)})
    assert clear.promote and clear.ratios == {"naive": 0.7, "online": 0.8, "champion": 0.9}
    assert "p = 1e-06" in clear.reason and "120 windows" in clear.reason
    # A tie is not a win; neither is a gain within the margin, nor one the test cannot tell from noise.
    tie = decide({"naive": win(0.7, 1e-6), "champion": win(1.0, 0.5)})
    assert not tie.promote and "does not beat the champion by the 2% margin" in tie.reason
    assert not decide({"champion": win(0.99, 1e-9)}).promote
    assert decide({"champion": win(0.99, 1e-9)}, margin=0.0).promote
    noisy = decide({"naive": win(0.5, 1e-6), "online": win(0.9, 0.2)})
    assert not noisy.promote and "not significantly" in noisy.reason and "the naive 0.500" in noisy.reason
    # Every comparison is in the note, whichever failed.
    worse = decide({"naive": win(1.2, 0.9), "online": win(0.8, 1e-3)})
    assert "the online 0.800" in worse.reason and "naive" in worse.reason
    # A rival that could not be compared blocks automatic promotion.
    other = decide({"naive": win(0.5, 1e-6), "champion": {"comparable": False, "reason": "another horizon"}})
    assert not other.promote and "not comparable with the champion (another horizon)" in other.reason
    assert decide({}).promote  # nothing to compare with: the first model


def test_the_paired_test_tells_a_real_gain_from_noise() -> None:
    import numpy as np

    from swarmlearn.training import compare, diebold_mariano

    rng = np.random.default_rng(3)
    assert diebold_mariano(rng.normal(-0.5, 1.0, 200), 1) < 1e-6
    assert diebold_mariano(rng.normal(0.0, 1.0, 200), 1) > 0.05
    assert diebold_mariano(rng.normal(0.5, 1.0, 200), 1) > 0.99
    assert diebold_mariano(np.zeros(50), 1) == 1.0  # a tie
    # Overlapping multi-step windows: the HAC variance and the correction make it more careful.
    walk = np.repeat(rng.normal(-0.3, 1.0, 40), 5)  # runs of five equal differences, as 5-step windows give
    assert diebold_mariano(walk, 5) > diebold_mariano(rng.permutation(walk), 1)
    truth = rng.normal(100.0, 10.0, (300, 2, 3))
    good = truth + rng.normal(0.0, 1.0, truth.shape)
    bad = truth + rng.normal(0.0, 3.0, truth.shape)
    better = compare(truth, good, bad, naive_scale=[10.0, 10.0, 10.0], horizon=2)
    assert better.ratio == pytest.approx(1 / 3, rel=0.1) and better.p_value < 1e-6 and better.windows == 300
    same = compare(truth, good, good, naive_scale=[10.0, 10.0, 10.0], horizon=2)
    assert same.ratio == 1.0 and same.p_value == 1.0
    # A target that never changed in training (success 1 throughout) is left out: two near-zero
    # errors in a ratio said the challenger was 12,611 times worse than the online aggregate.
    flat = truth.copy()
    flat[:, :, 2] = 1.0
    nearly, exactly = good.copy(), bad.copy()
    nearly[:, :, 2], exactly[:, :, 2] = 1.0 + 1e-5, 1.0
    kept = compare(flat, nearly, exactly, naive_scale=[10.0, 10.0, 0.0], horizon=2)
    assert kept.ratio == pytest.approx(1 / 3, rel=0.1) and kept.p_value < 1e-6
    assert math.isnan(compare(flat, nearly, exactly, naive_scale=[0.0, 0.0, 0.0], horizon=2).ratio)

"""The prompt layer on real River: learned rankings beat length, the bandit converges and explores, young
agents fall back to the global models, bad requests are refused by field, state pickles, and cheap events
stay cheap."""

from __future__ import annotations

import math
import pickle
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

import swarmlearn.prompts as prompts
from swarmlearn.errors import InvalidArgument
from swarmlearn.events import Event, EventType
from swarmlearn.prompts import Candidate, PromptConfig, PromptState, ScoreResult, Weights

START = 1_767_225_600.0
GOOD = ("verify", "examples", "constraints", "step-by-step")
BAD = ("asap", "whatever", "maybe")
FILLER = ("please", "the", "task", "code", "function", "summary", "data", "result", "agent", "file", "test", "plan")
QUALITY_ONLY = Weights(quality=1.0, success=1.0, latency=0.0, cost=0.0)


def prompt_words(rng: random.Random) -> list[str]:
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 70))]
    words += rng.sample(GOOD, rng.randint(0, 3)) + rng.sample(BAD, rng.randint(0, 2))
    rng.shuffle(words)
    return words


def truth(words: Sequence[str]) -> tuple[float, float]:
    """Expected quality and success of a prompt: known words help or hurt, length beyond 30 words hurts."""
    good = sum(word in GOOD for word in words)
    bad = sum(word in BAD for word in words)
    over = max(0, len(words) - 30)
    quality = min(1.0, max(0.0, 0.5 + 0.1 * good - 0.12 * bad - 0.004 * over))
    success = min(1.0, max(0.0, 0.9 + 0.03 * good - 0.1 * bad - 0.002 * over))
    return quality, success


def prompt_event(
    rng: random.Random,
    agent: str,
    i: int,
    words: Sequence[str],
    *,
    quality_shift: float = 0.0,
    base_latency: float = 800.0,
    variant: str | None = None,
) -> Event:
    quality, success = truth(words)
    tokens = int(len(words) * 1.3)
    attributes = {"model": "large"} if variant is None else {"model": "large", "prompt_variant": variant}
    return Event(
        agent,
        f"{agent}-{i}",
        START + 60.0 * i,
        EventType.RESPONSE_RECEIVED,
        base_latency * (1 + tokens / 400) * rng.lognormvariate(0, 0.2),
        40.0,
        512.0,
        30.0,
        sum(rng.random() < success for _ in range(10)) / 10,
        " ".join(words),
        tokens,
        int(tokens * rng.uniform(1.5, 4.0)),
        min(1.0, max(0.0, quality + quality_shift + rng.gauss(0, 0.05))),
        attributes,
    )


def stream(n: int, agent: str = "a", *, seed: int = 0) -> Iterator[Event]:
    rng = random.Random(seed)
    for i in range(n):
        yield prompt_event(rng, agent, i, prompt_words(rng))


def plain_event(agent: str, i: int) -> Event:
    return Event(agent, f"{agent}-p{i}", START + i, EventType.PERFORMANCE_UPDATE, 900.0, 40.0, 512.0, 30.0, 0.97)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Tau-a: concordant minus discordant pairs over all pairs (ties count as neither)."""
    x, y = np.asarray(a), np.asarray(b)
    i, j = np.triu_indices(len(x), 1)
    return float(np.mean(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])))


def scores_by_index(result: ScoreResult, n: int) -> list[float]:
    scores = [math.nan] * n
    for scored in result.ranked:
        scores[scored.index] = scored.score
    return scores


def ranking_taus(state: PromptState, agent: str, rounds: int = 4, size: int = 50) -> tuple[float, float]:
    """Mean Kendall tau against the true expected quality + success, of the learned and the length ranking."""
    rng = random.Random(99)
    learned, by_length = [], []
    for _ in range(rounds):
        words = [prompt_words(rng) for _ in range(size)]
        true = [sum(truth(w)) for w in words]
        result = state.score(agent, [Candidate(" ".join(w)) for w in words], QUALITY_ONLY)
        learned.append(kendall_tau(scores_by_index(result, size), true))
        by_length.append(kendall_tau([-len(w) for w in words], true))  # shorter is better, the best length can do
    return float(np.mean(learned)), float(np.mean(by_length))


@pytest.fixture(scope="module")
def trained() -> PromptState:
    state = PromptState()
    for event in stream(3000):
        state.learn(event)
    return state


def test_public_names() -> None:
    assert sorted(prompts.__all__) == sorted(
        [
            "TARGETS",
            "AgentPrompts",
            "Candidate",
            "PromptConfig",
            "PromptLearner",
            "PromptState",
            "ScoreResult",
            "ScoredPrompt",
            "Weights",
            "check_request",
            "resolve_weights",
        ]
    )


def test_learned_ranking_agrees_with_the_truth_far_better_than_length(trained: PromptState) -> None:
    learned, by_length = ranking_taus(trained, "a")
    assert learned > 0.6
    assert learned > by_length + 0.3


def test_ranking_improves_as_events_arrive() -> None:
    state = PromptState()
    events = stream(3000, seed=1)
    taus = []
    for n in (40, 2960):
        for event in (next(events) for _ in range(n)):
            state.learn(event)
        taus.append(ranking_taus(state, "a", rounds=2)[0])
    assert taus[1] > taus[0] + 0.4


def test_scored_prompts_are_ranked_and_predictions_are_in_range(trained: PromptState) -> None:
    rng = random.Random(5)
    candidates = [Candidate(" ".join(prompt_words(rng)), variant=f"v{i}") for i in range(20)]
    result = trained.score("a", candidates, Weights())
    assert result.agent_id == "a" and not result.used_global_model and result.selected_variant == ""
    assert sorted(p.index for p in result.ranked) == list(range(20))
    scores = [p.score for p in result.ranked]
    assert scores == sorted(scores, reverse=True)
    for scored in result.ranked:
        assert scored.variant == f"v{scored.index}"
        assert 0.0 <= scored.predicted_quality <= 1.0 and 0.0 <= scored.predicted_success <= 1.0
        assert 0.0 <= scored.score <= 1.0 and 0.0 < scored.uncertainty < 0.5
        # The stream's latency is 800 ms times (1 + tokens / 400) and noise; responses 1.5-4 times the prompt.
        assert 500 < scored.predicted_latency_ms < 1500
        assert 5 < scored.predicted_response_tokens < 400


def test_expected_response_tokens_replace_the_prediction(trained: PromptState) -> None:
    text = "please verify the output with examples"
    result = trained.score("a", [Candidate(text, expected_response_tokens=2000), Candidate(text)], Weights())
    by_index = sorted(result.ranked, key=lambda p: p.index)
    assert math.isclose(by_index[0].predicted_response_tokens, 2000.0)
    assert by_index[1].predicted_response_tokens < 400
    # More tokens cost more, and a response of known length is not uncertain.
    assert by_index[0].score < by_index[1].score
    assert by_index[0].uncertainty < by_index[1].uncertainty


def test_unknown_and_young_agents_use_the_global_model(trained: PromptState) -> None:
    state = pickle.loads(pickle.dumps(trained))
    for event in stream(10, agent="young", seed=3):
        state.learn(event)
    candidates = [Candidate("verify the result with examples"), Candidate("whatever asap maybe the result")]
    for agent in ("nobody", "young"):
        result = state.score(agent, candidates, QUALITY_ONLY)
        assert result.used_global_model
        assert [p.index for p in result.ranked] == [0, 1]  # the global models learned the words too
    assert not state.score("a", candidates, QUALITY_ONLY).used_global_model
    learned, by_length = ranking_taus(state, "nobody")
    assert learned > by_length + 0.3


def test_uncertainty_shrinks_from_its_maximum_as_models_learn() -> None:
    state = PromptState()
    weights = QUALITY_ONLY
    untrained = state.score("a", [Candidate("verify the plan")], weights).ranked[0]
    assert math.isclose(untrained.uncertainty, 0.5 * math.sqrt(0.5**2 + 0.5**2))  # nothing scored: 0.5 each
    for event in stream(2000):
        state.learn(event)
    trained = state.score("a", [Candidate("verify the plan")], weights).ranked[0]
    assert trained.uncertainty < untrained.uncertainty / 3


def test_context_reaches_the_models() -> None:
    """The agent's online state is a feature: a slow agent's context predicts slow latency for a newcomer."""
    state = PromptState()
    rng = random.Random(11)
    for i in range(4000):
        agent, base = ("fast", 300.0) if i % 2 else ("slow", 3000.0)
        state.learn(prompt_event(rng, agent, i, prompt_words(rng), base_latency=base), {"latency_ms.ewma": base})
    candidate = [Candidate("verify the plan with examples")]
    slow = state.score("new", candidate, Weights(), context={"latency_ms.ewma": 3000.0}).ranked[0]
    fast = state.score("new", candidate, Weights(), context={"latency_ms.ewma": 300.0}).ranked[0]
    assert slow.predicted_latency_ms > 3 * fast.predicted_latency_ms


def test_bandit_converges_to_the_best_variant_and_keeps_exploring() -> None:
    state = PromptState()
    rng = random.Random(21)
    shift = {"best": 0.25, "middle": 0.05, "worst": -0.15}
    chosen = []
    for i in range(1500):
        words = prompt_words(rng)
        candidates = [Candidate(" ".join(words), variant=name) for name in shift]
        variant = state.score("a", candidates, Weights(), select=True).selected_variant
        chosen.append(variant)
        state.learn(prompt_event(rng, "a", i, words, quality_shift=shift[variant], variant=variant))
    late = Counter(chosen[-500:])
    assert late["best"] > 0.75 * 500
    assert late["middle"] >= 3 and late["worst"] >= 3  # still explored, not starved
    assert Counter(chosen[:100])["worst"] >= 3  # every variant was tried early


def test_selection_without_variants_in_the_request_uses_the_agents_variants() -> None:
    state = PromptState()
    assert state.score("a", [Candidate("verify")], Weights(), select=True).selected_variant == ""
    for i in range(30):
        state.learn(plain_event("a", i)._replace(attributes={"prompt_variant": "xy"[i % 2]}))
    assert "a" in state.agents and state.agents["a"].prompt_events == 0  # variants without prompts: bandit only
    picks = {state.score("a", [Candidate("verify")], Weights(), select=True).selected_variant for _ in range(50)}
    assert picks == {"x", "y"}  # as good as each other: both get chosen
    unknown = state.score("nobody", [Candidate("v", variant="p"), Candidate("w", variant="q")], Weights(), select=True)
    assert unknown.selected_variant in {"p", "q"} and unknown.used_global_model


@pytest.mark.parametrize(
    ("agent_id", "candidates", "weights", "field"),
    [
        ("a", [], Weights(), "candidates"),
        ("a", [Candidate("x")] * 101, Weights(), "candidates"),
        ("a", [Candidate("ok"), Candidate("x" * 65_537)], Weights(), "candidates[1].text"),
        ("a", [Candidate("")], Weights(), "candidates[0].text"),
        ("a", [Candidate("ok", prompt_tokens=-1)], Weights(), "candidates[0].prompt_tokens"),
        ("a", [Candidate("ok", expected_response_tokens=-5)], Weights(), "candidates[0].expected_response_tokens"),
        ("a", [Candidate("ok", variant="v" * 129)], Weights(), "candidates[0].variant"),
        ("a", [Candidate("ok")], Weights(latency=-0.5), "weights.latency"),
        ("a", [Candidate("ok")], Weights(quality=math.nan), "weights.quality"),
        ("a", [Candidate("ok")], Weights(cost=math.inf), "weights.cost"),
        ("a", [Candidate("ok")], Weights(quality=0, success=0, latency=0, cost=0), "weights"),
        ("", [Candidate("ok")], Weights(), "agent_id"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_requests_are_refused_naming_the_field(
    agent_id: str, candidates: list[Candidate], weights: Weights, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        PromptState().score(agent_id, candidates, weights, select=True)
    assert refused.value.field == field


def test_limits_come_from_the_config() -> None:
    state = PromptState(PromptConfig(max_candidates=2, max_text_chars=10))
    state.score("a", [Candidate("x" * 10)] * 2, Weights())
    with pytest.raises(InvalidArgument):
        state.score("a", [Candidate("x")] * 3, Weights())
    with pytest.raises(InvalidArgument):
        state.score("a", [Candidate("x" * 11)], Weights())


def test_pickled_state_scores_and_learns_identically() -> None:
    rng = random.Random(4)
    events = [
        prompt_event(rng, agent, i, prompt_words(rng), variant=rng.choice("pq"))
        for i in range(1600)
        for agent in ("a", "b")
        if rng.random() < 0.6
    ]
    state = PromptState()
    for event in events[:1200]:
        state.learn(event, {"latency_ms.ewma": 900.0})
    candidates = [Candidate(" ".join(prompt_words(rng)), variant=v) for v in "pqpq"]
    state.score("a", candidates, Weights())  # fills the text cache, which pickles leave out
    restored = pickle.loads(pickle.dumps(state))
    for agent in ("a", "b", "nobody"):
        assert restored.score(agent, candidates, Weights(), select=True) == state.score(
            agent, candidates, Weights(), select=True
        )
    for event in events[1200:]:
        state.learn(event)
        restored.learn(event)
    assert restored.score("a", candidates, Weights(cost=2.0), select=True) == state.score(
        "a", candidates, Weights(cost=2.0), select=True
    )


def test_events_without_prompt_or_variant_are_ignored_cheaply() -> None:
    state = PromptState()
    empty = pickle.dumps(state)
    plain = [plain_event(f"agent-{i % 10}", i) for i in range(20_000)]
    start = time.perf_counter()
    for event in plain:
        state.learn(event)
    per_event = (time.perf_counter() - start) / len(plain)
    assert state.agents == {}
    assert pickle.dumps(state) == empty
    assert per_event < 5e-6  # about 0.2 µs: two attribute reads; generous for busy machines


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="learn_share"):
        PromptConfig(learn_share=0.0)
    with pytest.raises(ValueError, match="weights"):
        PromptConfig(quality_weight=0, success_weight=0, latency_weight=0, cost_weight=0)

"""The prompt layer's settings: one frozen dataclass of every knob, limits and default weights included."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptConfig:
    # Limits of a ScorePrompts request.
    max_candidates: int = 100
    """Candidates one request may score; 100 cost about 3 ms (see ``docs/prompts.md``)."""

    max_text_chars: int = 65_536
    """Characters of one candidate's text: the event log's limit on a prompt (64 KiB), so anything that was
    learned from can be scored. Scoring costs about 0.4 µs a word, so the largest request (100 such texts)
    costs a few hundred milliseconds; the gRPC message limit refuses most of those before they get here."""

    max_variant_chars: int = 128
    """Characters of a candidate's variant name."""

    # Who answers.
    min_agent_events: int = 40
    """Prompt events of an agent (about 8 learned) before its own models may answer; until then the global
    models answer every target, and the response says so. After, each target is answered by whichever of
    the agent's and the global model has had the smaller recent error on the agent's events (with at least
    10 residuals). On the synthetic swarm the agent's latency model beat the global one from about 50
    prompt events on, its quality model never did."""

    # What is learned, and how often.
    learn_share: float = 0.2
    """Share of an agent's prompt events that the prompt models learn from, chosen by a hash of the event id:
    not every n-th event, which an agent cycling through n prompts would alias (every n-th of two
    alternating agents' events fed the global models one agent only), and the same events on a replay.
    Learning one event costs 100-150 µs (featurise, score and learn four targets in two scopes); a fifth
    keeps a prompt event at 22-28 µs on average, within the 30 µs it may cost. The cheap parts (counts,
    references, the bandit) see every event."""

    global_share: float = 0.5
    """Share of those events that also train the global models: they see every agent, so they have data to
    spare."""

    learning_rate: float = 0.01
    """SGD step of every linear model, on standardised targets and features."""

    l2: float = 0.0
    """L2 penalty of the linear models' weights."""

    hash_features: int = 4096
    """Buckets of the hashed n-grams (River ``FeatureHasher``). Bounds each linear model at this many text
    weights, so an agent's snapshot stays under about 200 KB however large the vocabulary it is sent."""

    ngram_max: int = 1
    """Word n-grams of 1..n words are features ("verify" and "verify output")."""

    max_ngrams: int = 64
    """Distinct n-grams of a prompt that are features: unigrams first, then bigrams, each in the order of
    the text. Learning and predicting cost about 0.15 µs per feature and model, so this bounds what a long
    prompt costs; what a very long prompt says after its first 64 distinct n-grams is not seen."""

    text_norm_floor: int = 16
    """Each n-gram present counts 1 in prompts with up to this many distinct n-grams, and
    ``sqrt(floor / n)`` for n beyond, so a word weighs the same in every short prompt and one SGD step on a
    long prompt stays small (the squared norm of the text features is at most ``floor``)."""

    attribute_keys: tuple[str, ...] = ("model", "prompt_variant")
    """Event attributes that become one-hot features. ``prompt_variant`` comes from the candidate when
    scoring; the others from the agent's last prompt event (a candidate carries no attributes)."""

    residual_alpha: float = 0.02
    """Weight of the newest absolute residual in each model's running error, which the uncertainty is
    made of (about 1/alpha learned events of memory)."""

    reference_alpha: float = 0.01
    """Weight of the newest event in an agent's (and the swarm's) typical latency and token count, the
    references that turn latency and cost into utilities in [0, 1]."""

    tokens_per_word: float = 1.3
    """Prompt tokens of a candidate that does not say, per word of its text (English with a BPE tokenizer)."""

    cache_size: int = 4096
    """Texts whose n-gram features are kept (candidates are often scored again); not part of a snapshot."""

    # Default objective weights: unset fields of a request's weights take these.
    quality_weight: float = 1.0
    """Predicted quality_score, in [0, 1]."""

    success_weight: float = 1.0
    """Predicted success_rate, in [0, 1]."""

    latency_weight: float = 0.5
    """Latency utility ``ref / (ref + latency)``: 0.5 at the agent's typical latency. Half the weight of
    quality: a better answer is usually worth some waiting."""

    cost_weight: float = 0.25
    """Token utility ``ref / (ref + prompt + response tokens)``, likewise."""

    # Variant selection.
    explore: float = 0.05
    """Share of selections made uniformly over the variants instead of by Thompson sampling, so no variant
    is starved even once the posteriors are sure (a variant can get better when the model behind it
    changes)."""

    bandit_burn_in: int = 3
    """Events of each variant before Thompson sampling chooses; a variant with fewer is selected first
    (River's ``burn_in``)."""

    seed: int = 0
    """Seeds the n-gram hashing and the variant selection."""

    def __post_init__(self) -> None:
        for name in ("max_candidates", "max_text_chars", "min_agent_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (0.0 < self.learn_share <= 1.0 and 0.0 < self.global_share <= 1.0):
            raise ValueError("learn_share and global_share must be in (0, 1]")
        if self.ngram_max < 1 or self.hash_features < 2:
            raise ValueError("ngram_max must be >= 1 and hash_features >= 2")
        weights = (self.quality_weight, self.success_weight, self.latency_weight, self.cost_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("default weights must be >= 0 and not all zero")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError("explore must be in [0, 1]")

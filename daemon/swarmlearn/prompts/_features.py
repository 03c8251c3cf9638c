"""Prompt features, made once per learned event or candidate and shared by the agent and global models.

A prompt becomes one sparse dict:

- its distinct word n-grams (1..``ngram_max`` words, lower-cased, at most ``max_ngrams``), each counting
  1 (``sqrt(floor / n)`` for n beyond ``text_norm_floor`` distinct n-grams), hashed into
  ``hash_features`` buckets by River's ``FeatureHasher`` (integer keys);
- ``prompt_tokens`` as ``log1p``, and each value of the agent's online state (``ctx:<name>``) as a signed
  ``log1p``, both standardised by one River ``StandardScaler`` (string keys);
- hour of day and day of week as angles (``sin``/``cos``, UTC), already in [-1, 1];
- one-hot ``agent_id=<id>`` and attributes (``model=large``, ``prompt_variant=b``).

The latency model also gets the response length (``response_tokens``, standardised ``log1p``): the
event's own when learning, the predicted or expected one when scoring.

Presence rather than counts, and 1 rather than an L2-normalised vector: plain SGD learns a word's weight
at a speed that grows with its squared value against the squared norm of the whole vector, and words
scaled by the root of the prompt's length learned far slower on the test stream (``docs/prompts.md``);
the floor keeps a long prompt's step bounded.

The n-grams are made here rather than by River's ``BagOfWords``, which with the hashing and the presence
step took about twice as long (38 against 20 µs for a 36-word prompt, 65 against 38 with bigrams: its
accent check, ``itertools.tee`` n-gram chains and counting). Texts are cached (``cache_size``), since
clients score the same candidates repeatedly; the cache is left out of pickles.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from river import preprocessing

from swarmlearn.events import Event
from swarmlearn.prompts._config import PromptConfig

_WORD = re.compile(r"[\w\-]+")  # keeps "step-by-step" whole
_TAU = 2 * math.pi
_DAY_S = 86_400.0
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0
TOKENS = "prompt_tokens"
RESPONSE = "response_tokens"
_VARIANT = "prompt_variant"

Features = dict[Any, float]
"""Hashed n-grams under integer keys, everything else under its name."""


class Text(NamedTuple):
    ngrams: dict[int, float]
    """Hashed n-gram presence, ready to merge into a feature dict; never mutated."""
    words: int


def _signed_log1p(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


class Featurizer:
    """The text hasher, the text cache and the scaler of the numeric features, for all scopes."""

    def __init__(self, config: PromptConfig) -> None:
        self.config = config
        self.hasher = preprocessing.FeatureHasher(n_features=config.hash_features, seed=config.seed)
        self.scaler = preprocessing.StandardScaler()
        self._cache: dict[str, Text] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def text(self, text: str) -> Text:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        words = _WORD.findall(text.lower())
        grams = list(words)
        for n in range(2, self.config.ngram_max + 1):
            grams += map(" ".join, zip(*(words[i:] for i in range(n)), strict=False))
        present = dict.fromkeys(grams)
        if len(present) > self.config.max_ngrams:  # shorter n-grams first, then in the order of the text
            present = dict.fromkeys(itertools.islice(present, self.config.max_ngrams))
        weight = math.sqrt(self.config.text_norm_floor / max(len(present), self.config.text_norm_floor))
        result = Text(self.hasher.transform_one(dict.fromkeys(present, weight)), len(words))
        cache = self._cache
        if len(cache) >= self.config.cache_size:
            del cache[next(iter(cache))]  # the oldest: dicts keep insertion order
        cache[text] = result
        return result

    def learn(
        self, event: Event, text: Text, prompt_tokens: float, context: Mapping[str, float] | None
    ) -> tuple[Features, Features]:
        """The features of a prompt event for the latency-free targets and for latency; learns the scaler."""
        raw = self._context(context)
        raw[TOKENS] = math.log1p(prompt_tokens)
        if event.response_tokens is not None:
            raw[RESPONSE] = math.log1p(event.response_tokens)
        self.scaler.learn_one(raw)
        x: Features = self.scaler.transform_one(raw)
        response = x.pop(RESPONSE, None)
        _add_time(x, event.timestamp)
        x["agent_id=" + event.agent_id] = 1.0
        self._add_attributes(x, event.attributes)
        x.update(text.ngrams)
        if response is None:
            return x, x  # a missing feature is the average one
        return x, {**x, RESPONSE: response}

    def request(
        self, agent_id: str, timestamp: float, context: Mapping[str, float] | None, attributes: Mapping[str, str]
    ) -> Features:
        """What the candidates of one request share: agent, time, online state and the agent's attributes."""
        x: Features = self.scaler.transform_one(self._context(context)) if context else {}
        _add_time(x, timestamp)
        x["agent_id=" + agent_id] = 1.0
        self._add_attributes(x, attributes)
        return x

    def candidate(self, shared: Features, text: Text, prompt_tokens: float, variant: str) -> Features:
        x: Features = self.scaler.transform_one({TOKENS: math.log1p(prompt_tokens)})
        x.update(shared)
        if variant and _VARIANT in self.config.attribute_keys:
            x[f"{_VARIANT}={variant}"] = 1.0
        x.update(text.ngrams)
        return x

    def with_response(self, x: Features, log_response_tokens: float) -> Features:
        scaled: float = self.scaler.transform_one({RESPONSE: log_response_tokens})[RESPONSE]
        return {**x, RESPONSE: scaled}

    def _context(self, context: Mapping[str, float] | None) -> dict[str, float]:
        if not context:
            return {}
        return {"ctx:" + name: _signed_log1p(value) for name, value in context.items() if math.isfinite(value)}

    def _add_attributes(self, x: Features, attributes: Mapping[str, str]) -> None:
        if attributes:
            for key in self.config.attribute_keys:
                value = attributes.get(key)
                if value:
                    x[f"{key}={value}"] = 1.0


def _add_time(x: Features, timestamp: float) -> None:
    days = timestamp / _DAY_S
    hour = _TAU * (days % 1.0)
    weekday = _TAU * ((math.floor(days) + _EPOCH_WEEKDAY) % 7) / 7
    x["hour_sin"] = math.sin(hour)
    x["hour_cos"] = math.cos(hour)
    x["weekday_sin"] = math.sin(weekday)
    x["weekday_cos"] = math.cos(weekday)

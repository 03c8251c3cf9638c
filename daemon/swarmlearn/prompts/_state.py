"""Everything the prompt layer knows: the global models, one ``AgentPrompts`` per agent, and scoring.

Two scopes of the same four models (``_models``): the global ones learn every agent's events, with the
agent's id and online state among their features; an agent's own learn only its events. Both are scored
on each of the agent's learned events before learning it, so for every agent and target there are two
running out-of-sample errors on the same events. A young agent (``min_agent_events``) is answered by the
global models; after that, each target by whichever scope has had the smaller recent error on the agent,
the way the online layer picks its baselines. On the synthetic swarm that took the global models' quality
(shared words, more data: 0.04 MAE against 0.06 at 800-1600 prompt events) and the agent's success and
latency (its own level and failure bursts: 0.17-0.18 against 0.19-0.36 in log latency); from 200 prompt
events on, the choice was within 0.025 of the better scope on every target (``docs/prompts.md``). Learning
the agent's models on what the global ones miss (a correction on top) was tried and lost on success and
response tokens: the global models move under the correction.

Per event, in log order (``learn``): an event with neither prompt data nor a ``prompt_variant`` returns at
once. A variant feeds the agent's bandit. Prompt data updates the agent's typical latency and tokens;
then a share ``learn_share`` of the prompt events, chosen by a hash of the event id, updates the swarm's,
is predicted by both scopes (the running errors) and learned by the agent's models, and a share
``global_share`` of those by the global models too.

``PromptState`` is picklable and is snapshotted by its learner process: replaying the log after the
snapshot into a restored state gives the state that was never restored, since the subsampling and the
bandit's trials are hashes of event ids. Only selection draws random numbers (the state's generator, and
the agent's bandit's, which ``score`` then marks changed). Only pickle it to and from the daemon's own
data directory.

The agents are held by a table (``Agents``): a plain dict (``AgentDict``) by default; in the learner
process, ``online._agents.AgentTable``, which keeps the most recently used agents in memory and the
others pickled in the process's store. Whatever the table, an agent's object is the same once it is
read, and the state is told (``changed``) whenever one changes, so a bounded state learns and answers
as an unbounded one (tested). ``AgentPrompts.levels`` is the context the learner process learns and
scores an agent in (``_learner``); this module only keeps it with the agent.

Cost, in CPU time on the synthetic swarm (6 agents x 3,000 events, a third with a variant; 2-core VM
shared with other work, so ranges): ``learn`` takes 0.13-0.25 µs for an event with neither prompt nor
variant, 2.6-4 µs for a variant without prompt, and 22-28 µs on average for a prompt event (100-150 µs
for the fifth that is learned, 3-5 µs for the rest). ``score`` takes 45-75 µs (p50) for 1 candidate and
1.5-2.5 ms for 100 whose texts were seen before, 2.9-3.5 ms for 100 new ones (p99 about 5 ms). A snapshot
is 140 KB for that swarm; at most about 200 KB per agent (4 x 4,096 hashed weights).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from river import stats

from swarmlearn.events import Event
from swarmlearn.names import TARGETS as CONTEXT_TARGETS
from swarmlearn.prompts._bandit import VariantBandit, agent_seed, coin
from swarmlearn.prompts._config import PromptConfig
from swarmlearn.prompts._features import Featurizer
from swarmlearn.prompts._models import QUALITY, TARGETS, Predictor, RunningErrors, ScopeModels
from swarmlearn.prompts._score import Objective, References, check_request, clip01, event_reward, resolve_weights
from swarmlearn.prompts._types import Candidate, ScoredPrompt, ScoreResult, Weights

_VARIANT = "prompt_variant"
_SAMPLE_SALT = 1  # the bandit's coins use salt 0: which events are learned and their trials stay independent
_MIN_RESIDUALS = 10  # residuals on an agent's events before a model's running error stands for it
CONTEXT_ALPHA = 0.1
"""Weight of the newest value in an agent's levels (the same fading as the online EWMA baseline)."""


class AgentPrompts:
    """One agent's prompt models, the global models' errors on its events, its references and its bandit."""

    def __init__(self, config: PromptConfig, agent_id: str) -> None:
        self.config = config
        self.agent_id = agent_id
        self.models = ScopeModels(config)
        self.global_errors = RunningErrors(config.residual_alpha)
        self.references = References(config.reference_alpha)
        self.bandit: VariantBandit | None = None
        self.prompt_events = 0
        self.attributes: dict[str, str] = {}
        """The last prompt event's attributes among ``attribute_keys``, but the variant: what scoring assumes."""
        self.last_timestamp: float | None = None
        self.levels = [stats.EWMean(CONTEXT_ALPHA) for _ in CONTEXT_TARGETS]
        """The agent's recent level of each of ``CONTEXT_TARGETS``, learned from its outcomes (``observe``)."""

    @property
    def young(self) -> bool:
        return self.prompt_events < self.config.min_agent_events

    def learn_variant(self, variant: str, event: Event) -> None:
        if self.bandit is None:
            self.bandit = VariantBandit(self.config, agent_seed(self.agent_id, self.config.seed))
        self.bandit.update(variant, event_reward(event, self.references, self.config), event.event_id)

    def observe(self, event: Event) -> bool:
        """Update the levels from an outcome, as the online forecasts learn it; True if one changed."""
        if not event.event_type.is_outcome:
            return False
        latency, throughput, success = self.levels
        changed = False
        if event.succeeded:
            if event.latency_ms is not None:
                latency.update(event.latency_ms)
                changed = True
            if event.tokens_per_second is not None:
                throughput.update(event.tokens_per_second)
                changed = True
        if event.success_rate is not None:
            success.update(event.success_rate)
            changed = True
        return changed

    def context(self) -> dict[str, float]:
        """The levels as the models' ``context`` (``{"latency_ms.ewma": ...}``)."""
        return {f"{name}.ewma": float(level.get()) for name, level in zip(CONTEXT_TARGETS, self.levels, strict=True)}


class Agents(Protocol):
    """What ``PromptState`` needs of the table of its agents."""

    def get(self, agent_id: str, /) -> AgentPrompts | None:
        """The agent's state, or None for an agent not met."""

    def add(self, agent_id: str, agent: AgentPrompts, /) -> None: ...

    def changed(self, agent_id: str, /) -> None:
        """The agent's state (just got) changed."""

    def __contains__(self, agent_id: object, /) -> bool: ...

    def __len__(self) -> int: ...


class AgentDict(dict[str, AgentPrompts]):
    """Every agent in memory: the table of a ``PromptState`` used as a library."""

    def add(self, agent_id: str, agent: AgentPrompts) -> None:
        self[agent_id] = agent

    def changed(self, agent_id: str) -> None:
        """Nothing to note: the dict holds the object that changed."""


class PromptState:
    """Global and per-agent prompt models, per-agent variant bandits; ``learn`` every event, ``score`` on request."""

    def __init__(self, config: PromptConfig | None = None, agents: Agents | None = None) -> None:
        """``agents``: the table to hold the agents in (empty; an ``AgentDict`` if None)."""
        self.config = config or PromptConfig()
        self.features = Featurizer(self.config)
        self.global_models = ScopeModels(self.config)
        self.global_references = References(self.config.reference_alpha)
        self.agents: Agents = AgentDict() if agents is None else agents
        self.last_timestamp: float | None = None
        self._rng = random.Random(self.config.seed)

    def learn(self, event: Event, context: Mapping[str, float] | None = None) -> None:
        """Learn one event, in log order. ``context`` is the agent's online state *before* this event
        (e.g. ``{"latency_ms.ewma": 850.0}``), or None; scoring should pass the same names."""
        attributes = event.attributes
        variant = attributes.get(_VARIANT) if attributes else None
        text = event.prompt_text
        if text is None and not variant:
            return
        agent = self.changing(event.agent_id)
        if variant and event.event_type.is_outcome:
            agent.learn_variant(variant, event)  # rewarded against the references before this event
        if text is None:
            agent.references.update(_log_latency(event), None)
        else:
            self._learn_prompt(agent, event, text, context)

    def changing(self, agent_id: str) -> AgentPrompts:
        """The agent's state, about to change (made if the agent is new)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = AgentPrompts(self.config, agent_id)
            self.agents.add(agent_id, agent)
        else:
            self.agents.changed(agent_id)
        return agent

    def _learn_prompt(self, agent: AgentPrompts, event: Event, text: str, context: Mapping[str, float] | None) -> None:
        config = self.config
        prompt_tokens = event.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = round(len(text.split()) * config.tokens_per_word)
        response_tokens = event.response_tokens
        log_latency = _log_latency(event)
        log_tokens = None if response_tokens is None else math.log1p(prompt_tokens + response_tokens)
        agent.references.update(log_latency, log_tokens)
        agent.prompt_events += 1
        agent.last_timestamp = self.last_timestamp = event.timestamp
        attributes = event.attributes
        if attributes:
            for key in config.attribute_keys:
                if key != _VARIANT and key in attributes:
                    agent.attributes[key] = attributes[key]
        sample = coin(event.event_id, _SAMPLE_SALT)
        if sample >= config.learn_share:
            return
        self.global_references.update(log_latency, log_tokens)  # the swarm has events to spare
        y = (
            event.quality_score,
            event.success_rate if event.event_type.is_outcome else None,
            log_latency,
            None if response_tokens is None else math.log1p(response_tokens),
        )
        x, x_latency = self.features.learn(event, self.features.text(text), prompt_tokens, context)
        # Both scopes are scored on the event before learning it: out-of-sample errors, on the same events.
        global_errors = self.global_models.residuals(x, x_latency, y)
        agent.global_errors.update(global_errors)
        agent.models.errors.update(agent.models.residuals(x, x_latency, y))
        agent.models.learn(x, x_latency, y)
        if sample < config.learn_share * config.global_share:
            self.global_models.errors.update(global_errors)
            self.global_models.learn(x, x_latency, y)

    def score(
        self,
        agent_id: str,
        candidates: Sequence[Candidate],
        weights: Weights,
        *,
        select: bool = False,
        context: Mapping[str, float] | None = None,
        timestamp: float | None = None,
    ) -> ScoreResult:
        """Rank ``candidates`` for ``agent_id``, best first; with ``select``, also pick the variant to use next.

        ``context`` is the agent's online state now, ``timestamp`` the time the prompt will be used (the
        agent's last event's when None, so a score is a function of the state alone). Raises
        ``InvalidArgument`` naming the field for a bad request.
        """
        config = self.config
        check_request(agent_id, candidates, config)
        w = resolve_weights(weights, config)
        agent = self.agents.get(agent_id)
        predictors, sigmas, used_global = self._answering(agent)
        known = agent is not None and agent.references.latency_count > 0
        references = agent.references if agent is not None and known else self.global_references
        if timestamp is None:
            timestamp = (agent.last_timestamp if agent is not None else None) or self.last_timestamp or 0.0
        objective = Objective(w, references, sigmas)
        features = self.features
        shared = features.request(agent_id, timestamp, context, agent.attributes if agent is not None else {})
        quality_of, success_of, latency_of, response_of = predictors
        scored = []
        for i, candidate in enumerate(candidates):
            text = features.text(candidate.text)
            prompt_tokens = candidate.prompt_tokens
            if prompt_tokens is None:
                prompt_tokens = round(text.words * config.tokens_per_word)
            x = features.candidate(shared, text, prompt_tokens, candidate.variant)
            quality = clip01(quality_of(x))
            success = clip01(success_of(x))
            expected = candidate.expected_response_tokens
            log_response = math.log1p(expected) if expected is not None else max(0.0, response_of(x))
            latency_ms = math.expm1(max(0.0, latency_of(features.with_response(x, log_response))))
            response_tokens = math.expm1(log_response)
            score, uncertainty = objective(
                quality,
                success,
                latency_ms,
                prompt_tokens + response_tokens,
                None if expected is not None else response_tokens,
            )
            scored.append(
                ScoredPrompt(i, candidate.variant, quality, success, latency_ms, response_tokens, uncertainty, score)
            )
        scored.sort(key=lambda prompt: -prompt.score)  # stable: ties keep the request's order
        selected = ""
        if select:
            selected = self._select(agent, candidates)
            if agent is not None and agent.bandit is not None:
                self.agents.changed(agent_id)  # its bandit drew from its generators
        return ScoreResult(agent_id, tuple(scored), used_global, selected)

    def _answering(self, agent: AgentPrompts | None) -> tuple[tuple[Predictor, ...], tuple[float | None, ...], bool]:
        """Per target, the model that answers for ``agent`` and the deviation of its errors; True when all
        are global. A young agent gets the global models, with their errors on its events once there are a
        few; a grown one, per target, whichever scope has had the smaller recent error on its events."""
        global_predictors = self.global_models.predictors()
        if agent is None or agent.young:
            enough = agent is not None and agent.global_errors.count[QUALITY] >= _MIN_RESIDUALS
            errors = agent.global_errors if agent is not None and enough else self.global_models.errors
            return global_predictors, tuple(errors.sigma(i) for i in range(len(TARGETS))), True
        own, theirs = agent.models.errors, agent.global_errors
        use_own = [own.count[i] >= _MIN_RESIDUALS and own.mae[i] <= theirs.mae[i] for i in range(len(TARGETS))]
        own_predictors = agent.models.predictors()
        return (
            tuple(o if mine else g for o, g, mine in zip(own_predictors, global_predictors, use_own, strict=True)),
            tuple((own if mine else theirs).sigma(i) for i, mine in enumerate(use_own)),
            not any(use_own),
        )

    def _select(self, agent: AgentPrompts | None, candidates: Sequence[Candidate]) -> str:
        """The variants named in the request, or else every variant the agent has used; one of them, or ''."""
        arms = list(dict.fromkeys(c.variant for c in candidates if c.variant))
        if not arms and agent is not None and agent.bandit is not None:
            arms = list(agent.bandit.variants)
        if not arms:
            return ""
        if agent is None or agent.bandit is None:
            return self._rng.choice(arms)  # nothing learned: every variant is as good as the prior says
        return agent.bandit.select(arms, self._rng)


def _log_latency(event: Event) -> float | None:
    """``log1p`` of the latency of a successful outcome; None for anything else (a failure's latency,
    or an event that carried none, says nothing about how long a prompt takes)."""
    latency = event.latency_ms
    return None if latency is None or not event.succeeded else math.log1p(latency)

"""The prompt layer as the learner process runs it: ``PromptState`` fed from the event log in order.

The prompt models have a learner process of their own, beside the baseline learners: their global
models must see every agent's prompt events (a young agent borrows what the swarm has learned), while
each baseline process sees only its partition of the agents; and their cost (about 20 µs per prompt
event) then runs in parallel with the baselines instead of slowing them down.

``context`` for the models is the agent's recent level of each target, kept here per agent with River
``EWMean`` (the same fading as the online EWMA baseline) and read *before* each event is learned.
"""

from __future__ import annotations

from collections.abc import Sequence

from river import stats

from swarmlearn.events import Event
from swarmlearn.names import TARGETS
from swarmlearn.prompts._config import PromptConfig
from swarmlearn.prompts._state import PromptState
from swarmlearn.prompts._types import Candidate, ScoreResult, Weights

CONTEXT_TARGETS = TARGETS
_CONTEXT_ALPHA = 0.1


class PromptLearner:
    """``PromptState`` with a log position, so that it snapshots and replays like ``OnlineState``."""

    def __init__(self, config: PromptConfig | None = None) -> None:
        self.state = PromptState(config)
        self.applied_seq = 0
        self.levels: dict[str, list[stats.EWMean]] = {}
        """Per agent, the EWMA of each of ``CONTEXT_TARGETS``."""

    @property
    def agents(self) -> dict[str, list[stats.EWMean]]:
        """Every agent met, prompt data or not."""
        return self.levels

    def learn(self, event: Event, seq: int | None = None) -> tuple[str, ...]:
        """Apply one event in log order (skipped if ``seq`` was applied already). Returns no drifts."""
        if seq is not None:
            if seq <= self.applied_seq:
                return ()
            self.applied_seq = seq
        levels = self.levels.get(event.agent_id)
        if levels is None:
            levels = self.levels[event.agent_id] = [stats.EWMean(_CONTEXT_ALPHA) for _ in CONTEXT_TARGETS]
            context = None
        else:
            context = self._context(levels)
        if event.prompt_text is not None or (event.attributes and "prompt_variant" in event.attributes):
            self.state.learn(event, context)
        if event.event_type.is_outcome:  # what each event teaches, as for the online forecasts
            if event.succeeded:
                if event.latency_ms is not None:
                    levels[0].update(event.latency_ms)
                if event.tokens_per_second is not None:
                    levels[1].update(event.tokens_per_second)
            if event.success_rate is not None:
                levels[2].update(event.success_rate)
        return ()

    def advance(self, seq: int) -> None:
        self.applied_seq = max(self.applied_seq, seq)

    def score(self, agent_id: str, candidates: Sequence[Candidate], weights: Weights, select: bool) -> ScoreResult:
        levels = self.levels.get(agent_id)
        context = self._context(levels) if levels is not None else None
        return self.state.score(agent_id, candidates, weights, select=select, context=context)

    @staticmethod
    def _context(levels: list[stats.EWMean]) -> dict[str, float]:
        return {f"{name}.ewma": float(level.get()) for name, level in zip(CONTEXT_TARGETS, levels, strict=True)}

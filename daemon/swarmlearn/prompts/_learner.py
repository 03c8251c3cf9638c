"""The prompt layer as the learner process runs it: ``PromptState`` fed from the event log in order.

The prompt models have a learner process of their own, beside the baseline learners: their global
models must see every agent's prompt events (a young agent borrows what the swarm has learned), while
each baseline process sees only its partition of the agents; and their cost (about 20 µs per prompt
event) then runs in parallel with the baselines instead of slowing them down.

``context`` for the models is the agent's recent level of each target (``AgentPrompts.levels``, River
``EWMean`` with the same fading as the online EWMA baseline), read *before* each event is learned. Every
agent the learner meets gets an ``AgentPrompts`` for them, prompt data or not; one that has neither
prompt events nor a bandit is scored exactly as an agent never met, but for its levels.

The process gives the state a bounded table of agents (``online._agents.AgentTable``, at most
``prompt_resident_agents`` in memory) and snapshots it incrementally (``online._promptstore``).
"""

from __future__ import annotations

from collections.abc import Sequence

from swarmlearn.events import Event
from swarmlearn.prompts._config import PromptConfig
from swarmlearn.prompts._state import Agents, PromptState
from swarmlearn.prompts._types import Candidate, ScoreResult, Weights


class PromptLearner:
    """``PromptState`` with a log position, so that it snapshots and replays like ``OnlineState``."""

    def __init__(self, config: PromptConfig | None = None, agents: Agents | None = None) -> None:
        """``agents``: the (empty) table to hold the agents in; every one in memory if None."""
        self.state = PromptState(config, agents)
        self.applied_seq = 0

    @property
    def agents(self) -> Agents:
        """Every agent met, prompt data or not."""
        return self.state.agents

    def learn(self, event: Event, seq: int | None = None) -> tuple[str, ...]:
        """Apply one event in log order (skipped if ``seq`` was applied already). Returns no drifts."""
        if seq is not None:
            if seq <= self.applied_seq:
                return ()
            self.applied_seq = seq
        state, agent_id = self.state, event.agent_id
        agent = state.agents.get(agent_id)
        if agent is None:
            agent = state.changing(agent_id)
            context = None
        else:
            context = agent.context()
        if event.prompt_text is not None or (event.attributes and "prompt_variant" in event.attributes):
            state.learn(event, context)
        if agent.observe(event):  # what each event teaches, as for the online forecasts
            state.agents.changed(agent_id)
        return ()

    def advance(self, seq: int) -> None:
        self.applied_seq = max(self.applied_seq, seq)

    def score(self, agent_id: str, candidates: Sequence[Candidate], weights: Weights, select: bool) -> ScoreResult:
        agent = self.state.agents.get(agent_id)
        context = agent.context() if agent is not None else None
        return self.state.score(agent_id, candidates, weights, select=select, context=context)

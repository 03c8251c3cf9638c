"""A realistic synthetic swarm: agents with their own latency profiles, daily seasonality,
failure bursts and prompt data. Deterministic for a seed; used by the demo, tests and benchmarks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from swarmlearn.events import Event, EventType


@dataclass(frozen=True, slots=True)
class AgentProfile:
    name: str
    base_latency_ms: float
    tokens_per_second: float
    memory_mb: float
    failure_rate: float
    prompt_share: float


PROFILES = (
    AgentProfile("planner", 850.0, 42.0, 512.0, 0.03, 0.5),
    AgentProfile("coder", 2400.0, 35.0, 1536.0, 0.08, 0.8),
    AgentProfile("reviewer", 1200.0, 55.0, 768.0, 0.04, 0.6),
    AgentProfile("retriever", 140.0, 0.0, 256.0, 0.01, 0.0),
    AgentProfile("summarizer", 600.0, 80.0, 640.0, 0.02, 0.9),
    AgentProfile("tester", 1800.0, 30.0, 1024.0, 0.12, 0.4),
)

# Words that make a prompt better or worse, so prompt models have something real to find.
GOOD_WORDS = ("step-by-step", "examples", "constraints", "verify", "concise")
BAD_WORDS = ("asap", "whatever", "maybe", "etc")
FILLER = ("please", "the", "task", "code", "function", "summary", "data", "result", "agent", "file", "test", "plan")


def _prompt(rng: random.Random) -> tuple[str, float]:
    words = [rng.choice(FILLER) for _ in range(rng.randint(5, 60))]
    good = rng.sample(GOOD_WORDS, rng.randint(0, 3))
    bad = rng.sample(BAD_WORDS, rng.randint(0, 2))
    words += good + bad
    rng.shuffle(words)
    quality = 0.55 + 0.1 * len(good) - 0.12 * len(bad) - 0.002 * max(0, len(words) - 40) + rng.gauss(0, 0.04)
    return " ".join(words), min(1.0, max(0.0, quality))


def generate_swarm(
    *,
    agents: int = 6,
    events_per_agent: int = 1000,
    start: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z
    step_s: float = 60.0,
    seed: int = 0,
) -> Iterator[Event]:
    """Events of ``agents`` agents in time order, one every ``step_s`` seconds per agent."""
    rng = random.Random(seed)
    profiles = [PROFILES[i % len(PROFILES)] for i in range(agents)]
    names = [p.name if i < len(PROFILES) else f"{p.name}-{i // len(PROFILES)}" for i, p in enumerate(profiles)]
    burst_left = [0] * agents
    for step in range(events_per_agent):
        for i, profile in enumerate(profiles):
            ts = start + step * step_s + i * step_s / agents
            hour = (ts % 86_400) / 3_600
            daily = 1.0 + 0.35 * math.sin(2 * math.pi * (hour - 9) / 24)  # busiest mid-afternoon
            if burst_left[i] == 0 and rng.random() < profile.failure_rate / 10:
                burst_left[i] = rng.randint(5, 30)
            failing = burst_left[i] > 0
            burst_left[i] = max(0, burst_left[i] - 1)
            success = 0.4 + 0.2 * rng.random() if failing else 1.0 - profile.failure_rate * rng.random()
            latency = profile.base_latency_ms * daily * rng.lognormvariate(0, 0.15) * (1.8 if failing else 1.0)
            tps = max(0.0, profile.tokens_per_second / daily * rng.lognormvariate(0, 0.1))
            prompt: tuple[str | None, int | None, int | None, float | None] = (None, None, None, None)
            event_type = EventType.PERFORMANCE_UPDATE
            if rng.random() < profile.prompt_share:
                text, quality = _prompt(rng)
                prompt_tokens = int(len(text.split()) * 1.3)
                prompt = (text, prompt_tokens, int(prompt_tokens * rng.uniform(1.5, 6.0)), quality)
                latency *= 1.0 + prompt_tokens / 400
                event_type = EventType.RESPONSE_RECEIVED
            yield Event(
                agent_id=names[i],
                event_id=f"{names[i]}-{step}",
                timestamp=ts,
                event_type=event_type,
                latency_ms=latency,
                tokens_per_second=tps,
                memory_usage_mb=profile.memory_mb * rng.uniform(0.9, 1.2),
                cpu_usage_percent=min(100.0, 20 + 50 * daily * rng.random()),
                success_rate=success,
                prompt_text=prompt[0],
                prompt_tokens=prompt[1],
                response_tokens=prompt[2],
                quality_score=prompt[3],
                attributes={"model": "large" if profile.base_latency_ms > 1000 else "small"},
            )

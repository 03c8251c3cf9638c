"""The seed's 13 per-event features, with its temporal encoding fixed.

The seed computed ``sin(hour) * 2π / 24``, which is not periodic in the day. Here hour and weekday
are angles on their circles: ``sin/cos(2π·hour/24)`` and ``sin/cos(2π·weekday/7)``, so 23:00 sits
next to 00:00 and Sunday next to Monday. Hour and weekday are taken in UTC, the hour as a whole
number (as the seed did), the weekday with Monday = 0.
"""

from __future__ import annotations

import math
import time

from swarmlearn.events import Event

FEATURE_NAMES: tuple[str, ...] = (
    # performance (5)
    "latency_ms",
    "tokens_per_second",
    "memory_usage_mb",
    "cpu_usage_percent",
    "success_rate",
    # prompt (4): zeros when the event carried no prompt data
    "prompt_tokens",
    "response_tokens",
    "quality_score",
    "response_prompt_ratio",
    # temporal (4)
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
)

_TAU = 2 * math.pi


def event_features(event: Event) -> tuple[float, ...]:
    """The features of ``event`` in ``FEATURE_NAMES`` order."""
    if event.has_prompt:
        prompt_tokens = float(event.prompt_tokens or 0)
        response_tokens = float(event.response_tokens or 0)
        quality = float(event.quality_score or 0.0)
        ratio = response_tokens / prompt_tokens if prompt_tokens > 0 else 0.0
    else:
        prompt_tokens = response_tokens = quality = ratio = 0.0
    utc = time.gmtime(event.timestamp)
    hour = _TAU * utc.tm_hour / 24
    weekday = _TAU * utc.tm_wday / 7
    return (
        event.latency_ms,
        event.tokens_per_second,
        event.memory_usage_mb,
        event.cpu_usage_percent,
        event.success_rate,
        prompt_tokens,
        response_tokens,
        quality,
        ratio,
        math.sin(hour),
        math.cos(hour),
        math.sin(weekday),
        math.cos(weekday),
    )

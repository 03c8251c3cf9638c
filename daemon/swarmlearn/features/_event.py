"""The seed's 13 per-event features, with its temporal encoding fixed.

The seed computed ``sin(hour) * 2π / 24``, which is not periodic in the day. Here hour and weekday
are angles on their circles: ``sin/cos(2π·hour/24)`` and ``sin/cos(2π·weekday/7)``, so 23:00 sits
next to 00:00 and Sunday next to Monday. Hour and weekday are taken in UTC, the hour as a whole
number (as the seed did), the weekday with Monday = 0.
"""

from __future__ import annotations

import math
import time

import numpy as np
import numpy.typing as npt

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


_NAN = math.nan
_LATENCY, _THROUGHPUT = FEATURE_NAMES.index("latency_ms"), FEATURE_NAMES.index("tokens_per_second")


def event_features(event: Event) -> tuple[float, ...]:
    """The features of ``event`` in ``FEATURE_NAMES`` order; a metric the event did not carry is NaN."""
    prompt_tokens = float(event.prompt_tokens or 0)
    response_tokens = float(event.response_tokens or 0)
    quality = float(event.quality_score or 0.0)
    ratio = response_tokens / prompt_tokens if prompt_tokens > 0 else 0.0
    utc = time.gmtime(event.timestamp)
    hour = _TAU * utc.tm_hour / 24
    weekday = _TAU * utc.tm_wday / 7
    return (
        _NAN if event.latency_ms is None else event.latency_ms,
        _NAN if event.tokens_per_second is None else event.tokens_per_second,
        _NAN if event.memory_usage_mb is None else event.memory_usage_mb,
        _NAN if event.cpu_usage_percent is None else event.cpu_usage_percent,
        _NAN if event.success_rate is None else event.success_rate,
        prompt_tokens,
        response_tokens,
        quality,
        ratio,
        math.sin(hour),
        math.cos(hour),
        math.sin(weekday),
        math.cos(weekday),
    )


def observed_features(event: Event, *, learn_failed: bool = False) -> tuple[float, ...] | None:
    """``event_features`` of an outcome as the forecasters learn from it, or None for an event that
    observes no outcome (TaskStarted, PromptGenerated): a step of a forecast is an agent's next outcome.

    Latency and throughput of a failed outcome are NaN (not observed) unless ``learn_failed``: a failed
    request's latency of 0, or its timeout, says nothing about how long the next successful call takes.
    Rows go through ``fill_forward`` before a model sees them.
    """
    if not event.event_type.is_outcome:
        return None
    row = event_features(event)
    if learn_failed or event.succeeded:
        return row
    masked = list(row)
    masked[_LATENCY] = masked[_THROUGHPUT] = _NAN
    return tuple(masked)


def fill_forward(
    rows: npt.NDArray[np.float32], previous: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """``rows [N, F]`` of one agent in time order with every NaN replaced, in place, by the last value
    of its column before it (``previous [F]``, the row before these, first), or 0 where there is none."""
    if len(rows) == 0 or not np.isnan(rows).any():
        return rows
    start = np.zeros(rows.shape[1], dtype=rows.dtype) if previous is None else np.nan_to_num(previous)
    missing = np.isnan(rows)
    index = np.where(missing, 0, np.arange(1, len(rows) + 1)[:, None])  # [N, F]: 1 + row of each observed value
    np.maximum.accumulate(index, axis=0, out=index)
    filled = np.vstack([start[None], rows])[index, np.arange(rows.shape[1])]  # 0 picks `start`
    rows[...] = filled
    return rows

"""A regular time grid: one agent's events resampled into buckets of ``grid_s`` seconds.

Training (``StreamDataLoader`` with ``TrainingConfig.grid_s``) and serving (``TrainedModel.input_window``,
which the forecaster process calls) both go through ``resample``, so a champion sees at Predict
exactly the rows it was trained on.

Buckets are aligned to the epoch (``floor(t / grid_s)``), so ``grid_s = 3600`` gives UTC hours and
``86400`` UTC days. An agent's buckets run from the one holding its first event to the one holding
its last, with no gaps:

- a bucket with events holds their mean, channel by channel (latency, tokens/s, memory, CPU,
  success rate, and the prompt channels, whose zeros on events without a prompt count, so a bucket's
  prompt tokens are per event);
- an empty bucket carries the last non-empty bucket's values forward (an idle agent's latency has not
  changed; it has only not been measured) and is marked empty in ``Grid.events``: it may be an input,
  never a target (see ``StreamDataLoader``);
- the hour and weekday angles are those of the bucket's start, whether or not it holds events.

Input rows must be in time order (ties in any order, but the same order in training and serving).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from swarmlearn.features import FEATURE_NAMES

Array = npt.NDArray[np.float32]

_TEMPORAL = tuple(FEATURE_NAMES.index(name) for name in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos"))
_DAY_S = 86_400
_HOUR_S = 3_600
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0, as time.gmtime's tm_wday)


class Grid(NamedTuple):
    starts: npt.NDArray[np.float64]
    """``[M]``: each bucket's start, seconds since the epoch, consecutive."""
    rows: Array
    """``[M, F]``: each bucket's features (means, carried forward where empty, its own temporal angles)."""
    events: npt.NDArray[np.int32]
    """``[M]``: events in each bucket; 0 marks a carried-forward bucket."""


def bucket_of(timestamps: npt.NDArray[np.float64], grid_s: float) -> npt.NDArray[np.int64]:
    """The bucket index of each timestamp: ``floor(t / grid_s)``."""
    return np.floor(np.asarray(timestamps, dtype=np.float64) / grid_s).astype(np.int64)


def resample(timestamps: npt.NDArray[np.float64], rows: Array, grid_s: float) -> Grid:
    """One agent's events (``timestamps [N]`` in time order, ``rows [N, F]`` their features) on the grid."""
    features = rows.shape[1]
    if len(timestamps) == 0:
        return Grid(np.zeros(0), np.zeros((0, features), np.float32), np.zeros(0, np.int32))
    index = bucket_of(timestamps, grid_s)
    slot = index - index[0]  # [N]
    if np.any(slot[1:] < slot[:-1]):
        raise ValueError("resample: the events must be in time order")
    count = int(slot[-1]) + 1
    firsts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])  # [K]: each non-empty bucket's first event
    occupied = slot[firsts]  # [K]
    per_bucket = np.diff(np.r_[firsts, len(slot)])  # [K]
    sums = np.add.reduceat(rows, firsts, axis=0, dtype=np.float64)  # [K, F]
    means = (sums / per_bucket[:, None]).astype(np.float32)
    events = np.zeros(count, dtype=np.int32)
    events[occupied] = per_bucket
    # Each bucket takes the latest non-empty bucket at or before it (the first bucket is never empty).
    source = np.searchsorted(occupied, np.arange(count), side="right") - 1  # [M] into [K]
    out = means[source]
    starts = (index[0] + np.arange(count, dtype=np.int64)) * grid_s
    out[:, _TEMPORAL] = temporal(starts)
    return Grid(starts.astype(np.float64), out, events)


def temporal(timestamps: npt.NDArray[np.float64]) -> Array:
    """``[N, 4]``: hour sin/cos and weekday sin/cos, as ``swarmlearn.features.event_features`` computes
    them for an event at that time (UTC, whole hours, Monday = 0); vectorised."""
    seconds = np.asarray(timestamps, dtype=np.float64)
    days = np.floor(seconds / _DAY_S)
    hour = np.floor((seconds - days * _DAY_S) / _HOUR_S)
    weekday = (days + _EPOCH_WEEKDAY) % 7
    hour_angle = 2 * math.pi * hour / 24
    weekday_angle = 2 * math.pi * weekday / 7
    angles = np.stack([np.sin(hour_angle), np.cos(hour_angle), np.sin(weekday_angle), np.cos(weekday_angle)], axis=1)
    return angles.astype(np.float32)


def history_start(timestamps: npt.NDArray[np.float64], window: int, grid_s: float) -> int:
    """The first of an agent's events (in time order) that the last ``window`` buckets depend on:
    the first event of the window's first bucket if it has any, else the first event of the last
    non-empty bucket before it (whose values the window's first buckets carry forward)."""
    index = bucket_of(timestamps, grid_s)
    if len(index) == 0:
        return 0
    first_bucket = int(index[-1]) - window + 1
    inside = int(np.searchsorted(index, first_bucket, side="left"))
    if inside == 0 or index[inside] == first_bucket:
        return inside
    return int(np.searchsorted(index, index[inside - 1], side="left"))


def last_window(timestamps: npt.NDArray[np.float64], rows: Array, window: int, grid_s: float) -> Array | None:
    """``[window, F]``: the buckets up to the one holding the latest event, or None with fewer.

    ``timestamps``/``rows`` may start anywhere at or before ``history_start``; the answer is the same."""
    start = history_start(timestamps, window, grid_s)
    grid = resample(timestamps[start:], rows[start:], grid_s)
    if len(grid.rows) < window:
        return None
    return grid.rows[-window:]

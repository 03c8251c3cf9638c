"""Windows from event streams: per-agent sliding windows as views, a time-ordered split, scaled batches.

Rows are the outcome events' features (``swarmlearn.features.observed_features``, ``[N, F]`` float32,
what an outcome did not observe carried forward by ``fill_forward``), grouped by agent and in time
order within each agent: events without an outcome (a task started, a prompt generated) are not
rows. ``windows`` is one ``sliding_window_view`` over them, ``[N-L-H+1, L+H, F]``, which shares the
rows' memory: the history costs its rows once, whatever L and H. A window is usable when its L+H
rows belong to one agent and one run of the log (a bounded job reads runs with gaps between them:
``_replay``); its first L rows are the input and the targets are the target channels of its last H rows.

Batches are tensors on the training device. Each usable window's center and scale (the scaler's, from
its L inputs) are computed once per split, the first time the split is asked for, and kept; the rows,
each split's window starts and those numbers are copied to a device once and stay there, so a step
gathers its windows by indexing a view of the rows there (``unfold``) and copies nothing from the host.
On the CPU the tensors share the arrays' memory. A shuffle's order is one copy per epoch, from pinned
memory and without waiting on CUDA.

The split is by time, the same for every agent: the ``validation_fraction`` and ``test_fraction``
latest shares of all events' timestamps. A window belongs to the split of its targets and is
dropped when they straddle a boundary, so a training window's inputs and targets all come before
the first validation target, and a validation window's before the first test target, for every
agent: no window trains on a future that is scored, not even another agent's. Inputs of validation
and test windows may reach back into earlier splits; that is the past a forecast would have.

With ``TrainingConfig.grid_s`` the rows are each agent's buckets on a regular time grid
(``_grid.resample``) instead of its events. Then the split's boundaries are rounded up to bucket
starts, so no bucket holds events of two splits, and a window is usable only when its targets and
its last input are buckets with events: an empty bucket's carried-forward values may be an input,
never something the model is trained or scored on, and a forecast is asked after a bucket with an
event (the agent's latest).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from numpy.lib.stride_tricks import sliding_window_view

from swarmlearn.events import Event
from swarmlearn.features import FEATURE_NAMES, fill_forward, observed_features
from swarmlearn.names import TARGETS
from swarmlearn.training._config import Scaling, TrainingConfig
from swarmlearn.training._grid import resample
from swarmlearn.training._scaling import Array, GlobalScaler, Scaler, WindowScaler

UNSCALED_FEATURES = frozenset({"hour_sin", "hour_cos", "weekday_sin", "weekday_cos"})
"""Channels the window scaler leaves alone: angles already in [-1, 1] that barely move within a window."""

TARGET_CHANNELS: tuple[int, ...] = tuple(FEATURE_NAMES.index(name) for name in TARGETS)

_STATS_CHUNK = 4096
"""Windows whose centers and scales are computed at once: bounds the gathered copy to 4096·L·F floats."""


class Split(enum.StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class NotEnoughData(ValueError):
    """Too few events for a window in some split; the message says how many of each there are."""


class ScaledBatch(NamedTuple):
    """Tensors on the device the batch was asked for."""

    x: torch.Tensor
    """Inputs, scaled: ``[B, L, F]``."""
    y: torch.Tensor
    """Targets, scaled with their channels' numbers: ``[B, H, T]``."""
    center: torch.Tensor
    """The targets' centers, ``[B, 1, T]``: forecast = scaled forecast · scale + center."""
    scale: torch.Tensor


class _Rows(NamedTuple):
    """The rows on one device."""

    windows: torch.Tensor
    """``[W, L+H, F]``, a view of the rows (``StreamDataLoader.windows`` there)."""
    targets: torch.Tensor
    """``[T]``: the target channels' indices."""


class _SplitWindows(NamedTuple):
    """One split's windows on one device."""

    starts: torch.Tensor
    """``[S]``: ``StreamDataLoader.starts[split]``."""
    center: torch.Tensor
    """``[S, 1, F]``: ``StreamDataLoader.window_stats(split)``."""
    scale: torch.Tensor


class StreamDataLoader:
    """The windows of an event stream, split in time and served as scaled batches."""

    def __init__(
        self,
        events: Iterable[Event],
        config: TrainingConfig,
        *,
        scaler: Scaler | None = None,
        runs: Sequence[int] = (),
    ) -> None:
        """``scaler``: scale with this one instead of fitting one by ``config.scaling`` (a fine-tune
        must scale as the model it starts from did). ``runs``: per event, the number of the run of
        the log it was read from (a ``Replay``'s); no window spans two runs. Empty: one run."""
        self.config = config
        self.window = config.window
        self.horizon = config.horizon
        self.target_channels = TARGET_CHANNELS
        """The target channels among the features, in ``TARGETS`` order."""
        rows: dict[str, list[tuple[float, ...]]] = {}
        times: dict[str, list[float]] = {}
        run_of: dict[str, list[int]] = {}
        for event, number in zip(events, runs, strict=True) if runs else zip(events, itertools.repeat(0)):
            row = observed_features(event)
            if row is None:  # no outcome to learn (a task started, a prompt generated)
                continue
            rows.setdefault(event.agent_id, []).append(row)
            times.setdefault(event.agent_id, []).append(event.timestamp)
            run_of.setdefault(event.agent_id, []).append(number)
        self.agents: tuple[str, ...] = tuple(sorted(rows))
        """Agent ids in row order; ``row_agent`` and ``window_agents`` index into it."""
        grid_s = config.grid_s
        blocks, stamps, owners, counts, event_times = [], [], [], [], []
        segments: list[npt.NDArray[np.int32]] = []
        for index, agent in enumerate(self.agents):
            stamp, run = np.asarray(times[agent], dtype=np.float64), np.asarray(run_of[agent])
            order = np.lexsort((stamp, run))  # by run, then time; stable: ties keep arrival order
            block, stamp, run = fill_forward(np.asarray(rows[agent], dtype=np.float32)[order]), stamp[order], run[order]
            bounds = [0, *(np.flatnonzero(np.diff(run)) + 1).tolist(), len(stamp)]
            for first, end in itertools.pairwise(bounds):  # one part per run, as views
                part_block, part_stamp = block[first:end], stamp[first:end]
                if grid_s is None:
                    events_in = np.ones(len(part_stamp), dtype=np.int32)
                else:
                    event_times.append(part_stamp)
                    part_stamp, part_block, events_in = resample(part_stamp, part_block, grid_s)
                blocks.append(part_block)
                stamps.append(part_stamp)
                counts.append(events_in)
                owners.append(np.full(len(part_stamp), index, dtype=np.int32))
                segments.append(np.full(len(part_stamp), len(segments), dtype=np.int32))
        features = len(FEATURE_NAMES)
        self.features: Array = np.concatenate(blocks) if blocks else np.zeros((0, features), np.float32)
        """``[N, F]``: every row's features (an event's, or a bucket's with ``grid_s``), by agent, in time order."""
        self.timestamps = np.concatenate(stamps) if stamps else np.zeros(0)
        """``[N]``: each row's time (its event's, or its bucket's start)."""
        self.row_events: npt.NDArray[np.int32] = np.concatenate(counts) if counts else np.zeros(0, np.int32)
        """``[N]``: events in each row: 1 without a grid; 0 marks a carried-forward bucket."""
        self.row_agent: npt.NDArray[np.int32] = np.concatenate(owners) if owners else np.zeros(0, np.int32)
        self.row_segment: npt.NDArray[np.int32] = np.concatenate(segments) if segments else np.zeros(0, np.int32)
        """``[N]``: each row's stretch of one agent's history without a gap (an agent's rows of one run);
        a window's rows are all of one segment."""

        n = len(self.features)
        span = self.window + self.horizon
        if n:
            first_validation, first_test = np.quantile(
                self.timestamps if grid_s is None else np.concatenate(event_times),  # the events' times
                [1 - config.validation_fraction - config.test_fraction, 1 - config.test_fraction],
            )
            if grid_s is not None:  # on bucket starts: a bucket's events are all in one split
                first_validation, first_test = np.ceil(np.array([first_validation, first_test]) / grid_s) * grid_s
        else:
            first_validation = first_test = 0.0
        self.boundaries = (float(first_validation), float(first_test))
        """Timestamps where the validation and the test targets begin."""
        row_split = (self.timestamps >= first_validation).astype(np.int8) + (self.timestamps >= first_test)

        if n >= span:
            self.windows: Array = sliding_window_view(self.features, span, axis=0).transpose(0, 2, 1)
        else:
            self.windows = np.zeros((0, span, features), dtype=np.float32)
        """``[W, L+H, F]``, a view of ``features``: ``windows[s]`` is rows s..s+L+H-1."""
        count = len(self.windows)
        one_segment = self.row_segment[:count] == self.row_segment[span - 1 : span - 1 + count]
        target_split = row_split[self.window : self.window + count]
        one_split = target_split == row_split[span - 1 : span - 1 + count]
        # Targets and the last input are rows with events (always so without a grid).
        empty_before = np.r_[0, np.cumsum(self.row_events == 0)]  # [N+1]: empty rows before each row
        observed = (empty_before[span : span + count] - empty_before[self.window - 1 : self.window - 1 + count]) == 0
        usable = one_segment & one_split & observed
        self.starts: dict[Split, npt.NDArray[np.int64]] = {
            split: np.flatnonzero(usable & (target_split == code)) for code, split in enumerate(Split)
        }
        """Per split, the rows where its windows start, in row order."""
        windows = {split.value: len(starts) for split, starts in self.starts.items()}
        if min(windows.values()) == 0:
            rows_named = "events" if grid_s is None else f"buckets of {grid_s:g} s with events"
            raise NotEnoughData(
                f"{n} {rows_named} of {len(self.agents)} agents give windows {windows} (window {self.window}, "
                f"horizon {self.horizon}): every split needs one, so some agent needs about "
                f"{int(np.ceil(span / min(config.validation_fraction, config.test_fraction)))} {rows_named}"
            )

        if scaler is not None:
            self.scaler = scaler
        elif config.scaling is Scaling.GLOBAL:
            self.scaler = GlobalScaler.fit(self.features[row_split == 0])
        else:
            scaled = [i for i, name in enumerate(FEATURE_NAMES) if name not in UNSCALED_FEATURES]
            self.scaler = WindowScaler.fit(self.features[row_split == 0], scaled)
        self.naive_scale, self.naive_scale_by_agent = self._naive_scales(row_split == 0)
        self._stats: dict[Split, tuple[Array, Array]] = {}
        self._rows: dict[torch.device, _Rows] = {}
        self._splits: dict[tuple[Split, torch.device], _SplitWindows] = {}

    def _naive_scales(self, training: npt.NDArray[np.bool_]) -> tuple[Array, dict[str, Array]]:
        """Per target, the mean |y[t] - y[t-1]| over consecutive training rows of one segment where
        row t has events (row t-1 may be carried forward: then it is what the naive forecast said):
        MASE's denominator, pooled over agents and per agent (NaN for an agent with no such pair)."""
        y = self.features[:, TARGET_CHANNELS]  # [N, T]
        same_segment = self.row_segment[1:] == self.row_segment[:-1]
        pair = training[1:] & training[:-1] & same_segment & (self.row_events[1:] > 0)  # [N-1]
        steps = np.abs(np.diff(y, axis=0))[pair]  # [pairs, T]
        owners = self.row_agent[1:][pair]
        pooled = steps.mean(axis=0) if len(steps) else np.full(len(TARGET_CHANNELS), np.nan)
        by_agent = {}
        for index, agent in enumerate(self.agents):
            mine = steps[owners == index]
            by_agent[agent] = mine.mean(axis=0) if len(mine) else np.full(len(TARGET_CHANNELS), np.nan)
        return pooled.astype(np.float32), by_agent

    def __len__(self) -> int:
        return sum(len(s) for s in self.starts.values())

    def window_stats(self, split: Split) -> tuple[Array, Array]:
        """``[S, 1, F]`` each: the scaler's center and scale of each of the split's windows, from its L
        inputs. Computed the first time, in chunks (a window's numbers depend on its own values only), then kept."""
        if split not in self._stats:
            starts, features = self.starts[split], self.features.shape[1]
            centers, scales = [], []
            for begin in range(0, len(starts), _STATS_CHUNK):
                x = self.windows[starts[begin : begin + _STATS_CHUNK], : self.window]  # [B, L, F]
                center, scale = self.scaler.stats(x)  # [B|1, 1, F]
                centers.append(np.broadcast_to(center, (len(x), 1, features)))
                scales.append(np.broadcast_to(scale, (len(x), 1, features)))
            self._stats[split] = (np.concatenate(centers), np.concatenate(scales))
        return self._stats[split]

    def batches(
        self,
        split: Split,
        *,
        batch_size: int,
        rng: np.random.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Iterator[ScaledBatch]:
        """The split's windows in scaled batches on ``device``: shuffled by ``rng`` when given, else in row order."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # one copy per GPU, whichever way it is named
            device = torch.device("cuda", torch.cuda.current_device())
        rows, mine = self._rows_on(device), self._split_on(split, device)
        count = len(mine.starts)
        # The same permutation as of the starts themselves (numpy shuffles positions alike), on the device.
        order = None if rng is None else _to_device(torch.from_numpy(rng.permutation(count)), device)
        for begin in range(0, count, batch_size):
            chosen = slice(begin, begin + batch_size) if order is None else order[begin : begin + batch_size]
            window = rows.windows[mine.starts[chosen]]  # [B, L+H, F]: the one copy
            center, scale = mine.center[chosen], mine.scale[chosen]  # [B, 1, F]
            target_center = center.index_select(2, rows.targets)  # [B, 1, T]
            target_scale = scale.index_select(2, rows.targets)
            y = window[:, self.window :].index_select(2, rows.targets)  # [B, H, T]
            x = (window[:, : self.window] - center) / scale  # [B, L, F]
            yield ScaledBatch(x, (y - target_center) / target_scale, target_center, target_scale)

    def _rows_on(self, device: torch.device) -> _Rows:
        if device not in self._rows:
            span = self.window + self.horizon
            rows = torch.from_numpy(self.features).to(device)  # [N, F]
            targets = torch.tensor(self.target_channels, dtype=torch.long, device=device)
            self._rows[device] = _Rows(rows.unfold(0, span, 1).transpose(1, 2), targets)
        return self._rows[device]

    def _split_on(self, split: Split, device: torch.device) -> _SplitWindows:
        if (split, device) not in self._splits:
            arrays = (self.starts[split], *self.window_stats(split))
            self._splits[split, device] = _SplitWindows(*(torch.from_numpy(a).to(device) for a in arrays))
        return self._splits[split, device]

    def target_scales(self, split: Split) -> Array:
        """``[S, T]``: per window of the split, the scaler's scale of the targets (what a forecast's
        errors are measured in for the intervals)."""
        scales: Array = self.window_stats(split)[1][:, 0, list(self.target_channels)]
        return scales

    def targets(self, split: Split) -> Array:
        """The split's targets in original units, ``[W, H, T]``."""
        rows = self.starts[split][:, None] + self.window + np.arange(self.horizon)  # [W, H]
        targets: Array = self.features[rows][:, :, TARGET_CHANNELS]
        return targets

    def naive(self, split: Split) -> Array:
        """The naive forecast of the split's windows: each input's last value for every step, ``[W, H, T]``."""
        last = self.features[self.starts[split] + self.window - 1][:, TARGET_CHANNELS]  # [W, T]
        repeated: Array = np.repeat(last[:, None, :], self.horizon, axis=1)
        return repeated

    def window_agents(self, split: Split) -> npt.NDArray[np.int32]:
        """Per window of the split, its agent's index in ``agents``."""
        return self.row_agent[self.starts[split]]


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the host) on ``device``; to CUDA from pinned memory, without waiting for the copy."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)

"""A trained model ready to answer: the network, its scaler, and what it was trained on.

``TrainedModel.predict`` takes windows of raw features and answers in original units (it scales each
window, runs the network, scales the forecast back), so the caller needs nothing else. ``save`` and
``load`` go through ``swarmlearn.models``' checkpoints, whose header carries the scaler's state,
the metrics, the feature and target names and the training settings, ``grid_s`` among them.

``input_window`` turns an agent's latest events into the model's input the way its training did: the
last ``window`` events, or with a time grid the last ``window`` buckets (``_grid``, the one
resampling function training uses too). Predict's forecaster and ``predict_events`` go through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from swarmlearn.events import Event
from swarmlearn.features import FEATURE_NAMES, fill_forward, observed_features
from swarmlearn.models import Forecaster, load_checkpoint, save_checkpoint
from swarmlearn.names import TARGETS
from swarmlearn.training._grid import history_start, last_window
from swarmlearn.training._scaling import Array, Scaler, scaler_from_state


class TrainedModel:
    def __init__(
        self,
        model: Forecaster,
        scaler: Scaler,
        *,
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.scaler = scaler
        self.metrics: dict[str, Any] = dict(metrics or {})
        """Flat ``<target>.<metric>`` test metrics (and ``val_loss``), as the registry keeps them."""
        self.metadata: dict[str, Any] = dict(metadata or {})
        """JSON values: agents seen, training config, data boundaries."""
        self._targets = list(model.shape.target_channels)
        grid_s = (self.metadata.get("training") or {}).get("grid_s")
        self.grid_s: float | None = None if grid_s is None else float(grid_s)
        """Seconds per bucket when the model was trained on a time grid (``TrainingConfig.grid_s``), else None."""

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def window(self) -> int:
        return self.model.shape.window

    @property
    def horizon(self) -> int:
        return self.model.shape.horizon

    def history_start(self, timestamps: npt.NDArray[np.float64]) -> int:
        """The first of an agent's latest events (``timestamps`` in time order) that ``input_window`` reads."""
        if self.grid_s is None:
            return max(0, len(timestamps) - self.window)
        return history_start(timestamps, self.window, self.grid_s)

    def input_window(self, timestamps: npt.NDArray[np.float64], rows: Array) -> Array | None:
        """``[L, F]`` raw features for ``predict`` from an agent's latest outcomes (``timestamps [N]``
        in time order, ``rows [N, F]`` their ``observed_features``, filled forward), as training built its
        windows: the last L outcomes, or the last L buckets up to the one holding the latest; None with
        fewer. A view where it can be (no grid)."""
        if self.grid_s is None:
            return rows[-self.window :] if len(rows) >= self.window else None
        return last_window(timestamps, rows, self.window, self.grid_s)

    def predict(self, windows: Array) -> Array:
        """Forecasts of raw feature windows ``[B, L, F]`` (or one ``[L, F]``) in original units:
        ``[B, H, T]`` (or ``[H, T]``)."""
        return self.predict_scaled(windows)[0]

    @torch.no_grad()
    def predict_scaled(self, windows: Array) -> tuple[Array, Array]:
        """``predict``, and each window's scale of the targets (``[B, T]``, or ``[T]`` for one window):
        what its errors are measured in for the intervals (``interval_quantiles``)."""
        single = windows.ndim == 2
        x = np.asarray(windows, dtype=np.float32)[None] if single else np.asarray(windows, dtype=np.float32)
        if x.shape[1:] != (self.window, self.model.shape.n_features):
            raise ValueError(f"windows must be [B, {self.window}, {self.model.shape.n_features}], got {x.shape}")
        center, scale = self.scaler.stats(x)  # [B|1, 1, F]
        device = next(self.model.parameters()).device
        scaled = self.model(torch.from_numpy((x - center) / scale).to(device)).cpu().numpy()  # [B, H, T]
        target_scale = scale[:, :, self._targets]  # [B|1, 1, T]
        result: Array = scaled * target_scale + center[:, :, self._targets]
        scales: Array = np.broadcast_to(target_scale[:, 0, :], (len(x), len(self._targets)))
        return (result[0], scales[0]) if single else (result, scales)

    def predict_events(self, events: Sequence[Event]) -> Array:
        """The forecast after an agent's events (any order; sorted by time as training does): ``[H, T]``."""
        ordered = sorted(events, key=lambda e: e.timestamp)  # stable: ties keep their order
        observed = [(e.timestamp, row) for e in ordered if (row := observed_features(e)) is not None]
        timestamps = np.asarray([t for t, _ in observed], dtype=np.float64)
        rows = fill_forward(np.asarray([row for _, row in observed], dtype=np.float32))
        start = self.history_start(timestamps)
        window = self.input_window(timestamps[start:], rows[start:].reshape(-1, self.model.shape.n_features))
        if window is None:
            unit = "events" if self.grid_s is None else f"buckets of {self.grid_s:g} s"
            raise ValueError(f"need {self.window} {unit}, got fewer from {len(events)} events")
        return self.predict(window)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's weights, for a warm start."""
        return {name: t.detach().cpu().clone() for name, t in self.model.state_dict().items()}

    def save(self, path: Path | str) -> None:
        """Write a checkpoint (atomically) that ``load`` rebuilds this from."""
        metadata = {**self.metadata, "features": list(FEATURE_NAMES), "targets": list(TARGETS)}
        save_checkpoint(path, self.model, scaler=self.scaler.state(), metrics=self.metrics, metadata=metadata)

    @classmethod
    def load(cls, path: Path | str, *, device: torch.device | str = "cpu") -> TrainedModel:
        checkpoint = load_checkpoint(path)
        names = checkpoint.metadata.get("features"), checkpoint.metadata.get("targets")
        if names != (list(FEATURE_NAMES), list(TARGETS)):
            raise ValueError(f"{path} was trained on other features or targets: {names}")
        return cls(
            checkpoint.build(device),
            scaler_from_state(checkpoint.scaler),
            metrics=checkpoint.metrics,
            metadata=checkpoint.metadata,
        )

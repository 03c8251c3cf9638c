"""What every forecaster shares: the shape of its input and output, and its base class.

A forecaster maps a window of ``L`` time steps of ``F`` features to the next ``H`` steps of ``T``
targets, ``[B, L, F] -> [B, H, T]``, on scaled values (the training package scales windows and
undoes the scaling of forecasts). The shape is kept apart from each architecture's config: the
config holds what a search may vary (sizes, dropout), the shape what the data decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from swarmlearn.features import FEATURE_NAMES
from swarmlearn.names import TARGETS


@dataclass(frozen=True, kw_only=True)
class ForecastShape:
    """A forecaster's input and output sizes."""

    window: int
    """L: time steps in an input window."""

    horizon: int
    """H: steps forecast at once (direct multi-step: all H from one forward pass)."""

    n_features: int = len(FEATURE_NAMES)
    """F: features per time step (``swarmlearn.features.FEATURE_NAMES``)."""

    target_channels: tuple[int, ...] = tuple(FEATURE_NAMES.index(name) for name in TARGETS)
    """Which input channels are the targets, in output order; T is their number. N-BEATS explains these
    channels' history (its backcast) and reads the others as exogenous inputs."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_channels", tuple(int(c) for c in self.target_channels))
        if self.window < 1 or self.horizon < 1 or self.n_features < 1:
            raise ValueError(f"window, horizon and n_features must be positive: {self}")
        if not self.target_channels or any(not 0 <= c < self.n_features for c in self.target_channels):
            raise ValueError(f"target_channels must name channels in [0, {self.n_features}): {self}")

    @property
    def n_targets(self) -> int:
        return len(self.target_channels)


@dataclass(frozen=True)
class SearchRange:
    """How a hyperparameter search varies a config field by default: between ``low`` and ``high``
    (on a log scale when ``log``), or over ``values``. ``swarmlearn.tuning`` reads it from the field's
    metadata (``searched``), so a search space is derived from the configs, never retyped; the
    parameter's type (int or float) is the field's. A tuple field is searched as one value that fills
    every element."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    values: tuple[Any, ...] = ()


def searched(
    default: Any, *, low: float = 0.0, high: float = 0.0, log: bool = False, values: tuple[Any, ...] = ()
) -> Any:
    """A dataclass field with ``default`` that the default search space varies (see ``SearchRange``)."""
    return field(default=default, metadata={"search": SearchRange(low, high, log, values)})


class Forecaster(nn.Module):
    """Base of the registered architectures: ``forward(x: [B, L, F]) -> [B, H, T]``."""

    kind: ClassVar[str]
    """The name the registry and checkpoints know the architecture by."""

    def __init__(self, config: Any, shape: ForecastShape) -> None:
        super().__init__()
        self.config = config
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """What a training step minimises: the loss of the forecast (an ensemble sums its members')."""
        loss: torch.Tensor = loss_fn(self(x), y)
        return loss

    def after_training(
        self,
        validation: Iterable[tuple[torch.Tensor, torch.Tensor]],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> bool:
        """What a model learns from the validation windows (scaled ``[B, L, F]`` inputs, ``[B, H, T]``
        targets) once training has chosen its weights; True if it changed. Nothing by default; the
        ensemble learns how to combine its members."""
        return False

"""N-BEATS forecaster: stacks of fully connected blocks with basis expansions and doubly residual
stacking (Oreshkin, Carpov, Chapados and Bengio 2020).

Each block reads what the blocks before it have not explained of the targets' history (its input
residual), and outputs coefficients θ of a basis for a backcast (its explanation of that history,
subtracted from the residual passed on) and for a forecast (added to the model's forecast):

- ``trend``: polynomials ``t**p``, p = 0..``trend_degree``;
- ``seasonality``: a Fourier series ``1, cos(2πkt), sin(2πkt)``, k = 1..``num_harmonics`` (periods
  of L/k steps), at most L/2 - 1 of them (``harmonics``): on L points higher ones alias lower ones;
- ``generic``: no constraint, the basis is the identity (θ is the backcast / forecast itself).

Backcast and forecast share one time axis, ``t = j / L`` with j = -L+1..0 over the window (0 is the
last observed step) and 1..H over the forecast, so a trend or a season fitted to the history
continues across the forecast origin. (The reference implementation puts the backcast on
``arange(L)/L`` and the forecast on ``arange(H)/H``, two different clocks.) As in the paper, the
backcast and forecast have their own θ.

The targets are forecast jointly: each block explains the history of every target channel (T rows
of L values) and forecasts T rows of H values, with one fully connected stack shared by the targets.

Exogenous features. The channels that are not targets (memory, CPU, the prompt features, the hour
and weekday angles) are flattened, ``[B, L·(F-T)]``, and concatenated to every block's input
beside its residual. They are never backcast: they inform each block's θ but are not something to
explain away. This is the input side of N-BEATSx (Olivares et al. 2022), without its exogenous
basis, since the future values of these features are unknown at forecast time.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from swarmlearn.models._base import Forecaster, ForecastShape, searched


class StackType(enum.StrEnum):
    TREND = "trend"
    SEASONALITY = "seasonality"
    GENERIC = "generic"


@dataclass(frozen=True, kw_only=True)
class NBEATSConfig:
    kind: ClassVar[str] = "nbeats"

    stack_types: tuple[StackType, ...] = (StackType.TREND, StackType.SEASONALITY, StackType.GENERIC)
    """The stacks in order; each has ``num_blocks`` blocks."""

    num_blocks: int = searched(4, low=1, high=4)
    """Blocks per stack."""

    num_layers: int = 4
    """Fully connected layers in each block before its θ heads."""

    layer_width: int = searched(256, values=(64, 128, 256, 512))
    """Units in each fully connected layer."""

    trend_degree: int = 3
    """Highest power of the trend polynomials."""

    num_harmonics: int = 8
    """Fourier harmonics of the seasonality basis, at most ``L/2 - 1`` for windows of L steps (higher
    ones alias lower ones on L points: their rows would be collinear)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stack_types", tuple(StackType(s) for s in self.stack_types))
        if not self.stack_types or min(self.num_blocks, self.num_layers, self.layer_width, self.num_harmonics) < 1:
            raise ValueError(f"invalid {self}")
        if self.trend_degree < 0:
            raise ValueError(f"invalid {self}")


def harmonics(config: NBEATSConfig, window: int) -> int:
    """The seasonality basis's harmonics for windows of ``window`` steps: ``num_harmonics``, capped at
    ``window // 2 - 1`` (at least 1). Harmonic k has period L/k; at k = L/2 its sine is zero on every
    step and beyond it a harmonic aliases a lower one, so those rows add nothing but collinearity."""
    return max(1, min(config.num_harmonics, window // 2 - 1))


def _basis(stack: StackType, config: NBEATSConfig, times: torch.Tensor, window: int) -> torch.Tensor:
    """The basis functions of ``stack`` at ``times``: ``[P, len(times)]``."""
    if stack is StackType.TREND:
        return torch.stack([times**p for p in range(config.trend_degree + 1)])
    if stack is StackType.SEASONALITY:
        k = torch.arange(1, harmonics(config, window) + 1, dtype=times.dtype)[:, None]  # [K, 1]
        angles = 2 * math.pi * k * times[None, :]  # [K, len]
        return torch.cat([torch.ones(1, len(times), dtype=times.dtype), torch.cos(angles), torch.sin(angles)])
    return torch.eye(len(times), dtype=times.dtype)


class _Block(nn.Module):
    backcast_basis: torch.Tensor
    forecast_basis: torch.Tensor

    def __init__(self, stack: StackType, config: NBEATSConfig, shape: ForecastShape) -> None:
        super().__init__()
        window, horizon, targets = shape.window, shape.horizon, shape.n_targets
        times = torch.arange(-window + 1, horizon + 1, dtype=torch.float32) / window
        backcast_basis = _basis(stack, config, times[:window], window)  # [Pb, L]
        forecast_basis = _basis(stack, config, times[window:], window)  # [Pf, H]
        # Fixed by the config, so rebuilt rather than stored: the state dict holds learned weights only.
        self.register_buffer("backcast_basis", backcast_basis, persistent=False)
        self.register_buffer("forecast_basis", forecast_basis, persistent=False)
        layers: list[nn.Module] = []
        width_in = window * shape.n_features  # the targets' residual and the exogenous channels
        for _ in range(config.num_layers):
            layers += [nn.Linear(width_in, config.layer_width), nn.ReLU()]
            width_in = config.layer_width
        self.fc = nn.Sequential(*layers)
        self.targets = targets
        self.theta_backcast = nn.Linear(config.layer_width, targets * backcast_basis.shape[0])
        self.theta_forecast = nn.Linear(config.layer_width, targets * forecast_basis.shape[0])

    def forward(self, residual: torch.Tensor, exogenous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # residual: [B, T, L]; exogenous: [B, L·(F-T)]
        h = self.fc(torch.cat([residual.flatten(1), exogenous], dim=1))  # [B, width]
        theta_b = self.theta_backcast(h).view(len(h), self.targets, -1)  # [B, T, Pb]
        theta_f = self.theta_forecast(h).view(len(h), self.targets, -1)  # [B, T, Pf]
        backcast = theta_b @ self.backcast_basis  # [B, T, L]
        forecast = theta_f @ self.forecast_basis  # [B, T, H]
        return backcast, forecast


class NBEATSModel(Forecaster):
    kind: ClassVar[str] = NBEATSConfig.kind
    config: NBEATSConfig
    target_index: torch.Tensor
    exogenous_index: torch.Tensor

    def __init__(self, config: NBEATSConfig, shape: ForecastShape) -> None:
        super().__init__(config, shape)
        self.blocks = nn.ModuleList(
            _Block(stack, config, shape) for stack in config.stack_types for _ in range(config.num_blocks)
        )
        others = [c for c in range(shape.n_features) if c not in shape.target_channels]
        self.register_buffer("target_index", torch.tensor(shape.target_channels), persistent=False)
        self.register_buffer("exogenous_index", torch.tensor(others, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, L, F]
        residual = x.index_select(2, self.target_index).transpose(1, 2)  # [B, T, L]
        exogenous = x.index_select(2, self.exogenous_index).flatten(1)  # [B, L·(F-T)]
        forecast = torch.zeros(len(x), self.shape.n_targets, self.shape.horizon, dtype=x.dtype, device=x.device)
        for block in self.blocks:
            backcast, block_forecast = block(residual, exogenous)  # [B, T, L], [B, T, H]
            residual = residual - backcast
            forecast = forecast + block_forecast
        return forecast.transpose(1, 2)  # [B, H, T]

"""TCN forecaster: dilated causal convolutions in residual blocks (Bai, Kolter and Koltun 2018).

Block i has two causal convolutions of dilation ``2**i`` (each padded on the left only, so step t
never sees a step after it), ReLU and spatial dropout after each, and a residual connection (a 1x1
convolution where the channel count changes). A linear head maps the last step's channels to all H
steps at once (direct multi-step, as the LSTM).

The receptive field is ``1 + 2·(k-1)·(2**n - 1)`` steps for n blocks of kernel k. By default
(``levels`` 0) n is the fewest blocks whose field covers the whole window, so the forecast can read
every step it is given: 4 blocks (61 steps) for the default window of 50 and kernel 3, 5 (125) for a
window of 96. (A fixed three blocks saw only the last 29 steps of a window of 50.) ``levels`` fixes
n instead, and is what a search varies. Since the head reads the last step only, ``forward`` runs
the convolutions over the last ``receptive_field`` steps of the window alone: the same output and
the same gradients as over all L (every value the last step depends on lies inside them, none is
padding), at a fraction of the cost where the field is shorter than the window.

Spatial dropout is Bai et al.'s: a training step zeroes whole channels of a window (one draw per
window and channel, ``nn.Dropout1d``), not single values. Drawing B·C values instead of B·C·L made a
training step of the default TCN 1.6x faster on the CPU, where the elementwise masks took a third
of the step.

Bai et al. also put weight normalisation on each convolution; it is left out, so the state dict
holds plain weights (no parametrisations), and gradient clipping in the training loop does the
stabilising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from swarmlearn.models._base import Forecaster, ForecastShape, searched


@dataclass(frozen=True, kw_only=True)
class TCNConfig:
    kind: ClassVar[str] = "tcn"

    channels: int = searched(64, values=(32, 64, 128))
    """Output channels of every residual block."""

    levels: int = searched(0, low=2, high=7)
    """Residual blocks (block i has dilation 2**i); 0: the fewest whose receptive field covers the window."""

    kernel_size: int = searched(3, low=2, high=5)
    """Width of every convolution."""

    dropout: float = searched(0.2, low=0.1, high=0.5)
    """Probability that a channel of a window is zeroed after each convolution (spatial dropout)."""

    num_channels: tuple[int, ...] = ()
    """Each block's channels, explicitly (then ``channels`` and ``levels`` are not used); checkpoints
    written before ``levels`` existed say three blocks of 64 here."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_channels", tuple(int(c) for c in self.num_channels))
        if (self.num_channels and min(self.num_channels) < 1) or self.channels < 1 or self.kernel_size < 1:
            raise ValueError(f"invalid {self}")
        if self.levels < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"invalid {self}")

    def block_channels(self, window: int) -> tuple[int, ...]:
        """Each residual block's output channels, for windows of ``window`` steps."""
        if self.num_channels:
            return self.num_channels
        if self.levels:
            return (self.channels,) * self.levels
        levels = 1
        while _field(self.kernel_size, levels) < window and levels < _MAX_LEVELS:
            levels += 1
        return (self.channels,) * levels

    def receptive_field(self, window: int) -> int:
        """Steps the last output depends on, with windows of ``window`` steps."""
        return _field(self.kernel_size, len(self.block_channels(window)))


_MAX_LEVELS = 12  # 8,191 steps of kernel 2: more than any window


def _field(kernel_size: int, levels: int) -> int:
    return 1 + 2 * (kernel_size - 1) * ((1 << levels) - 1)


class _CausalConv(nn.Conv1d):
    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__(channels_in, channels_out, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, C_in, L] -> [B, C_out, L]
        return super().forward(F.pad(x, (self.left, 0)))


class _ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = _CausalConv(channels_in, channels_out, kernel_size, dilation)
        self.conv2 = _CausalConv(channels_out, channels_out, kernel_size, dilation)
        self.dropout = nn.Dropout1d(dropout)  # [B, C, L]: whole channels
        self.skip = nn.Conv1d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, C_in, L]
        h = self.dropout(F.relu(self.conv1(x)))  # [B, C_out, L]
        h = self.dropout(F.relu(self.conv2(h)))  # [B, C_out, L]
        return F.relu(h + self.skip(x))  # [B, C_out, L]


class TCNModel(Forecaster):
    kind: ClassVar[str] = TCNConfig.kind
    config: TCNConfig

    def __init__(self, config: TCNConfig, shape: ForecastShape) -> None:
        super().__init__(config, shape)
        channels = config.block_channels(shape.window)
        sizes = (shape.n_features, *channels)
        self.blocks = nn.Sequential(
            *(
                _ResidualBlock(sizes[i], sizes[i + 1], config.kernel_size, 2**i, config.dropout)
                for i in range(len(channels))
            )
        )
        self.head = nn.Linear(channels[-1], shape.horizon * shape.n_targets)
        self.receptive_field = config.receptive_field(shape.window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, L, F]
        seen = x[:, -self.receptive_field :]  # [B, min(L, R), F]: all the last step depends on
        h = self.blocks(seen.transpose(1, 2))  # [B, C, min(L, R)]
        out: torch.Tensor = self.head(h[:, :, -1])  # [B, H·T]
        return out.view(-1, self.shape.horizon, self.shape.n_targets)  # [B, H, T]

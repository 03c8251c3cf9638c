"""LSTM forecaster: a stacked LSTM over the window, a linear head from its last state to all H steps.

The head is direct multi-step: one forward pass gives every step, each from its own output weights,
instead of feeding step h back in to get step h+1. Feeding back would need the future steps' other
features (memory, prompt tokens, ...), which nobody knows, and compounds its own errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from swarmlearn.models._base import Forecaster, ForecastShape, searched


@dataclass(frozen=True, kw_only=True)
class LSTMConfig:
    kind: ClassVar[str] = "lstm"

    hidden_size: int = searched(128, values=(64, 128, 256, 512))
    """Units in each LSTM layer."""

    num_layers: int = searched(2, low=1, high=3)
    """Stacked LSTM layers."""

    dropout: float = searched(0.2, low=0.1, high=0.5)
    """Dropout between LSTM layers and before the head."""

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.num_layers < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"invalid {self}")


class LSTMModel(Forecaster):
    kind: ClassVar[str] = LSTMConfig.kind
    config: LSTMConfig

    def __init__(self, config: LSTMConfig, shape: ForecastShape) -> None:
        super().__init__(config, shape)
        self.lstm = nn.LSTM(
            input_size=shape.n_features,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,  # torch warns on dropout after the last layer
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, shape.horizon * shape.n_targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, L, F]
        # Under autocast torch runs cuDNN's LSTM in float16 whatever the dtype asked (its AutocastRNN),
        # and float16 gradients would need loss scaling: the recurrence stays float32, the head follows autocast.
        with torch.autocast(x.device.type, enabled=False):
            outputs, _ = self.lstm(x.float())  # [B, L, hidden]
        last = self.dropout(outputs[:, -1])  # [B, hidden]
        out: torch.Tensor = self.head(last)  # [B, H·T]
        return out.view(-1, self.shape.horizon, self.shape.n_targets)  # [B, H, T]

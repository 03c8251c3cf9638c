"""Ensemble forecaster: the median of an LSTM's, a TCN's and an N-BEATS' forecasts.

The members are trained together by the one training loop, each on its own loss (``training_loss``:
the sum of the members' losses, so each member's gradients are its own, as if trained alone, on the
same batches), and early stopping watches the ensemble's forecast (the median). Serving forecasts
the median of the members, step by step and target by target: robust to one member's failure on a
series (an LSTM stuck on a level the others have left), which a mean is not.

The members' configs are nested: ``{"lstm": {...}, "tcn": {...}, "nbeats": {...}}`` in a config
JSON, each member's fields over the ensemble's defaults for it; ``members`` chooses which (two members' median is
their mean). The defaults are smaller than each kind's own: three members cost about what one
large model does (docs/training.md, "Ensembles").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn

from swarmlearn.models._base import Forecaster, ForecastShape
from swarmlearn.models._lstm import LSTMConfig, LSTMModel
from swarmlearn.models._nbeats import NBEATSConfig, NBEATSModel
from swarmlearn.models._tcn import TCNConfig, TCNModel

_MEMBERS: dict[str, tuple[type[Any], type[Forecaster]]] = {
    "lstm": (LSTMConfig, LSTMModel),
    "tcn": (TCNConfig, TCNModel),
    "nbeats": (NBEATSConfig, NBEATSModel),
}


@dataclass(frozen=True, kw_only=True)
class EnsembleConfig:
    kind: ClassVar[str] = "ensemble"

    members: tuple[str, ...] = ("lstm", "tcn", "nbeats")
    """Which kinds are members (at least two; each at most once)."""

    lstm: LSTMConfig = field(default_factory=lambda: LSTMConfig(hidden_size=64, num_layers=1))
    """The LSTM member's config."""

    tcn: TCNConfig = field(default_factory=lambda: TCNConfig(channels=32))
    """The TCN member's config."""

    nbeats: NBEATSConfig = field(default_factory=lambda: NBEATSConfig(num_blocks=2, layer_width=128))
    """The N-BEATS member's config."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(str(m) for m in self.members))
        if len(self.members) < 2 or len(set(self.members)) != len(self.members) or set(self.members) - set(_MEMBERS):
            raise ValueError(f"invalid {self}: members must be two or three of {', '.join(_MEMBERS)}, each once")
        for member in fields(self):
            if member.name not in _MEMBERS:
                continue
            cls, value = _MEMBERS[member.name][0], getattr(self, member.name)
            if isinstance(value, Mapping):  # from JSON: the member's fields over the ensemble's defaults for it
                from swarmlearn.models._kinds import config_from_dict, config_to_dict

                default = config_to_dict(member.default_factory())  # type: ignore[misc,operator]
                object.__setattr__(self, member.name, config_from_dict(member.name, {**default, **value}))
            elif not isinstance(value, cls):
                raise ValueError(f"invalid {self}: {member.name} must be a {cls.__name__} or a mapping of its fields")


class EnsembleModel(Forecaster):
    kind: ClassVar[str] = EnsembleConfig.kind
    config: EnsembleConfig

    def __init__(self, config: EnsembleConfig, shape: ForecastShape) -> None:
        super().__init__(config, shape)
        self.members = nn.ModuleDict({name: _MEMBERS[name][1](getattr(config, name), shape) for name in config.members})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, L, F]
        forecasts = torch.stack([member(x) for member in self.members.values()])  # [M, B, H, T]
        median: torch.Tensor = forecasts.median(dim=0).values if len(forecasts) > 2 else forecasts.mean(dim=0)
        return median  # [B, H, T]

    def training_loss(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Each member's loss on its own forecast, summed: the members learn as if alone."""
        total: torch.Tensor = torch.stack([loss_fn(member(x), y) for member in self.members.values()]).sum()
        return total

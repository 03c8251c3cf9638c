"""Ensemble forecaster: an LSTM's, a TCN's and an N-BEATS' forecasts, combined with weights learned on validation.

The members are trained together by the one training loop, each on its own loss (``training_loss``:
the sum of the members' losses, so each member's gradients are its own, as if trained alone, on the
same batches). Once the best epoch's weights are back, ``after_training`` learns the combination
(``combination="weighted"``, the default): per target, convex weights over the members (``weights``,
``[T, M]``, kept in the state dict and so in the checkpoint) that minimise the training loss of the
combined forecast on the validation windows, never the test ones. Serving forecasts that weighted sum.

``weights`` all zero means "not learned": the forecast is then the median of the members, step by step
and target by target (robust to one member's failure on a series, which a mean is not). So early
stopping watches the median while a fresh ensemble trains (a warm-started one: the combination it
started with), ``combination="median"`` serves the median, and a checkpoint written before the weights
existed (its state dict lacks them; loading fills in zeros) serves as it did.

Measured (benchmarks/RESULTS.md, fourth run; two seeds, whose means differ by about 0.01): mean /
median MASE over the 17 NAB series 0.919 / 0.767 with the median, 0.895 / 0.747 weighted at seed 1;
0.907 / 0.750 and 0.900 / 0.712 at seed 2. The median threw away a member's win (a TCN's 0.942 on one
series became 1.035); the weights there, a quarter TCN and three quarters N-BEATS (0.957), score 0.881.
A naive member (the window's last value) that the weights could choose made it worse (0.984 / 0.826
at seed 1): flat validation windows pick it, and the series where naive wins on test show no sign of
it in their validation part.

The members' configs are nested: ``{"lstm": {...}, "tcn": {...}, "nbeats": {...}}`` in a config
JSON, each member's fields over the ensemble's defaults for it; ``members`` chooses which (two members' median is
their mean). The defaults are smaller than each kind's own: three members cost about what one
large model does (docs/training.md, "Ensembles").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn

from swarmlearn.models._base import Forecaster, ForecastShape
from swarmlearn.models._lstm import LSTMConfig, LSTMModel
from swarmlearn.models._nbeats import NBEATSConfig, NBEATSModel
from swarmlearn.models._tcn import TCNConfig, TCNModel

COMBINATIONS = ("weighted", "median")
"""``EnsembleConfig.combination``'s values."""

_WEIGHT_STEPS = 300
"""Adam steps of the combination's fit: on the NAB series 600 steps move no weight by more than 0.011 from 300."""

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

    combination: str = "weighted"
    """How the members' forecasts are combined when served: ``weighted``, convex weights per target learned
    on the validation windows after training; ``median``, their median (two members: their mean)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(str(m) for m in self.members))
        if self.combination not in COMBINATIONS:
            raise ValueError(f"invalid {self}: combination must be one of {', '.join(COMBINATIONS)}")
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
        self.weights: torch.Tensor
        self.register_buffer("weights", torch.zeros(shape.n_targets, len(config.members)))  # [T, M]; 0: not learned
        self.register_load_state_dict_pre_hook(_weights_default)  # type: ignore[no-untyped-call]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, L, F]
        forecasts = torch.stack([member(x) for member in self.members.values()])  # [M, B, H, T]
        return self.combine(forecasts)  # [B, H, T]

    def combine(self, forecasts: torch.Tensor) -> torch.Tensor:
        """The members' forecasts ``[M, B, H, T]`` as one ``[B, H, T]``: weighted once the weights are
        learned, else the median."""
        if bool(self.weights.any()):
            weighted: torch.Tensor = torch.einsum("tm,mbht->bht", self.weights.to(forecasts.dtype), forecasts)
            return weighted
        median: torch.Tensor = forecasts.median(dim=0).values if len(forecasts) > 2 else forecasts.mean(dim=0)
        return median

    @torch.no_grad()
    def after_training(
        self,
        validation: Iterable[tuple[torch.Tensor, torch.Tensor]],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> bool:
        """With ``combination="weighted"``: learn ``weights`` from the validation windows (``[B, L, F]``
        inputs, ``[B, H, T]`` scaled targets), by ``convex_weights``."""
        if self.config.combination != "weighted":
            return False
        self.eval()
        forecasts, targets = [], []
        for x, y in validation:
            forecasts.append(torch.stack([member(x) for member in self.members.values()]).float())  # [M, B, H, T]
            targets.append(y.float())
        if not targets:
            return False
        self.weights.copy_(convex_weights(torch.cat(forecasts, dim=1), torch.cat(targets), loss_fn))
        return True

    def training_loss(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Each member's loss on its own forecast, summed: the members learn as if alone."""
        total: torch.Tensor = torch.stack([loss_fn(member(x), y) for member in self.members.values()]).sum()
        return total


def convex_weights(
    forecasts: torch.Tensor, targets: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Per target, the convex weights over the forecasts (``[M, W, H, T]``, of ``targets`` ``[W, H, T]``)
    whose weighted sum has the lowest ``loss_fn``: ``[T, M]``, each row non-negative and summing to 1.

    A softmax of logits from zero (equal weights), Adam for ``_WEIGHT_STEPS`` full-batch steps in float64:
    deterministic, and a loss taken over all the elements at once is a sum of one loss per target (each
    target's windows are as many), so each row of weights is fitted for its own target.
    """
    with torch.enable_grad():
        forecasts, targets = forecasts.double(), targets.double()
        logits = torch.zeros(targets.shape[-1], len(forecasts), dtype=torch.float64, device=forecasts.device)
        logits.requires_grad_(True)
        optimizer = torch.optim.Adam([logits], lr=0.05)
        for _ in range(_WEIGHT_STEPS):
            optimizer.zero_grad(set_to_none=True)
            combined = torch.einsum("tm,mwht->wht", logits.softmax(dim=1), forecasts)  # [W, H, T]
            loss_fn(combined, targets).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return logits.detach().softmax(dim=1).float()


def _weights_default(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_: object) -> None:
    """A state dict from before the learned combination (an older checkpoint, a warm start from one) has no
    ``weights``: zeros, so the ensemble forecasts the median, as it did when saved."""
    if isinstance(module, EnsembleModel):
        state_dict.setdefault(prefix + "weights", torch.zeros_like(module.weights))

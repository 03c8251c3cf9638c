"""The registered model kinds: name -> (config class, model class), and building from either."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from swarmlearn.models._base import Forecaster, ForecastShape
from swarmlearn.models._ensemble import EnsembleConfig, EnsembleModel
from swarmlearn.models._lstm import LSTMConfig, LSTMModel
from swarmlearn.models._nbeats import NBEATSConfig, NBEATSModel
from swarmlearn.models._tcn import TCNConfig, TCNModel

ModelConfig = LSTMConfig | TCNConfig | NBEATSConfig | EnsembleConfig
"""Any registered architecture's config; ``config.kind`` names it."""

MODEL_KINDS: Mapping[str, tuple[type[ModelConfig], type[Forecaster]]] = MappingProxyType(
    {
        LSTMConfig.kind: (LSTMConfig, LSTMModel),
        TCNConfig.kind: (TCNConfig, TCNModel),
        NBEATSConfig.kind: (NBEATSConfig, NBEATSModel),
        EnsembleConfig.kind: (EnsembleConfig, EnsembleModel),
    }
)
"""Every registered architecture by kind, in the order a pipeline trains them by default."""


def build_model(config: ModelConfig, shape: ForecastShape) -> Forecaster:
    """A new model of ``config``'s kind (weights from torch's default initialisation, i.e. the global
    RNG: seed it, or build inside ``torch.random.fork_rng``, for reproducible weights)."""
    return MODEL_KINDS[config.kind][1](config, shape)


def config_to_dict(config: ModelConfig | ForecastShape) -> dict[str, Any]:
    """The fields as JSON-able values (tuples become lists and enums their values when dumped)."""
    return dataclasses.asdict(config)


def config_from_dict(kind: str, values: Mapping[str, Any] | None = None) -> ModelConfig:
    """The config of ``kind`` with ``values`` over its defaults (e.g. a JSON object of overrides).

    Raises ``ValueError`` naming the problem for an unknown kind, an unknown field or a bad value.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    cls = MODEL_KINDS[kind][0]
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{kind} has no field {', '.join(unknown)}; its fields: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid {kind} config {values}: {exc}") from None

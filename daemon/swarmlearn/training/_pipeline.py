"""The pipeline: events in; every configured model trained, evaluated beside the naive forecast; the best out.

``TrainingPipeline(TrainingConfig()).run(events)`` builds the windows once (``StreamDataLoader``),
then for each model config: builds the model under the seed, trains it (``fit``), forecasts the
validation and test windows and evaluates them per target, overall and per agent. The naive
forecast (each window's last value) is evaluated on the same windows. The best model is the one
with the lowest geometric mean of per-target validation MASE (``Evaluation.geometric_mase``); the
test split only reports, so the choice never sees it.

The models are global: one model for all the agents in the events, on per-window scaled inputs, so
an agent with a short history is forecast by a model that learned from every agent (see
``docs/training.md`` for the measurement). A per-agent model is the same pipeline run on one
agent's events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from swarmlearn.events import Event
from swarmlearn.models import ForecastShape, ModelConfig, build_model, config_to_dict
from swarmlearn.names import TARGETS
from swarmlearn.training._config import TrainingConfig
from swarmlearn.training._data import Split, StreamDataLoader
from swarmlearn.training._loop import Progress, TrainResult, fit, forecast, resolve_device, seeded
from swarmlearn.training._metrics import Evaluation, evaluate
from swarmlearn.training._scaling import Array
from swarmlearn.training._trained import TrainedModel


class ModelReport(NamedTuple):
    kind: str
    model: TrainedModel
    training: TrainResult
    validation: Evaluation
    test: Evaluation
    test_by_agent: dict[str, Evaluation]
    """Per agent with test windows, with that agent's own MASE scale."""


class PipelineResult(NamedTuple):
    best: TrainedModel
    """The report's model with the lowest validation ``geometric_mase``."""
    reports: dict[str, ModelReport]
    """Every trained kind's report, in the config's order."""
    naive_validation: Evaluation
    naive_test: Evaluation
    naive_test_by_agent: dict[str, Evaluation]
    windows: dict[str, int]
    """Windows per split."""


class TrainingPipeline:
    def __init__(self, config: TrainingConfig | None = None) -> None:
        self.config = config or TrainingConfig()

    def run(
        self,
        events: Iterable[Event],
        *,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        warm_start: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    ) -> PipelineResult:
        """Train and evaluate every configured model on ``events`` (any order; sorted per agent by time).

        ``warm_start``: per kind, weights to start from (``TrainedModel.state_dict()`` of the champion);
        its config must match. Raises ``NotEnoughData`` when a split has no window and
        ``TrainingCancelled`` when ``should_stop`` says so.
        """
        data = StreamDataLoader(events, self.config)
        reports = {
            model_config.kind: self.train(
                data,
                model_config,
                progress=progress,
                should_stop=should_stop,
                initial_state=(warm_start or {}).get(model_config.kind),
            )
            for model_config in self.config.models
        }
        best = min(reports.values(), key=lambda r: _rank(r.validation))
        return PipelineResult(
            best=best.model,
            reports=reports,
            naive_validation=self._evaluate(data, Split.VALIDATION, data.naive(Split.VALIDATION)),
            naive_test=self._evaluate(data, Split.TEST, data.naive(Split.TEST)),
            naive_test_by_agent=self._by_agent(data, data.naive(Split.TEST)),
            windows={split.value: len(starts) for split, starts in data.starts.items()},
        )

    def train(
        self,
        data: StreamDataLoader,
        model_config: ModelConfig,
        *,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        initial_state: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelReport:
        """Train one model on ``data`` and evaluate it: the pipeline's step for each configured kind."""
        config = self.config
        shape = ForecastShape(window=data.window, horizon=data.horizon, target_channels=data.target_channels)
        with seeded(config.seed, resolve_device(config.device)):
            model = build_model(model_config, shape)
        result = fit(model, data, config, initial_state=initial_state, progress=progress, should_stop=should_stop)
        validation = self._evaluate(
            data, Split.VALIDATION, forecast(model, data, Split.VALIDATION, config.eval_batch_size)
        )
        test_forecast = forecast(model, data, Split.TEST, config.eval_batch_size)
        test = self._evaluate(data, Split.TEST, test_forecast)
        metrics = {**test.flat(), "val_loss": result.best_val_loss, "naive_val_loss": result.naive_val_loss}
        metadata = {
            "agents": list(data.agents),
            "boundaries": list(data.boundaries),
            "training": _training_dict(config),
        }
        trained = TrainedModel(model, data.scaler, metrics=metrics, metadata=metadata)
        return ModelReport(model.kind, trained, result, validation, test, self._by_agent(data, test_forecast))

    def _evaluate(self, data: StreamDataLoader, split: Split, predicted: Array) -> Evaluation:
        return evaluate(
            data.targets(split),
            predicted,
            targets=TARGETS,
            naive_scale=data.naive_scale,
            thresholds=self.config.thresholds,
        )

    def _by_agent(self, data: StreamDataLoader, predicted: Array) -> dict[str, Evaluation]:
        owners = data.window_agents(Split.TEST)
        truth = data.targets(Split.TEST)
        result = {}
        for index in np.unique(owners):
            mine = owners == index
            agent = data.agents[index]
            result[agent] = evaluate(
                truth[mine],
                predicted[mine],
                targets=TARGETS,
                naive_scale=data.naive_scale_by_agent[agent],
                thresholds=self.config.thresholds,
            )
        return result


def _rank(evaluation: Evaluation) -> float:
    score = evaluation.geometric_mase()
    return score if np.isfinite(score) else np.inf


def _training_dict(config: TrainingConfig) -> dict[str, Any]:
    """The training settings as JSON values, each model config with its kind."""
    values = dataclasses.asdict(config)
    values["models"] = [{"kind": m.kind, **config_to_dict(m)} for m in config.models]
    return values

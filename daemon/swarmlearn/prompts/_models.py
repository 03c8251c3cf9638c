"""The four prompt models of one scope (an agent, or the whole swarm) and their running errors.

Each target is a River ``LinearRegression`` (plain SGD) inside a ``TargetStandardScaler``, so it learns a
standardised target from the first event on instead of walking its intercept to a latency of 2,000 ms.
Quality and success are learned as they are and clipped to [0, 1] when predicted (``LogisticRegression``
takes only 0/1 labels, and success_rate is a rate); latency and response tokens are learned as
``log1p``, where the prompt's effects are multiplicative and the errors of long and short answers alike.

Every learned event is first predicted (progressive validation), so each model's running mean absolute
residual is an out-of-sample error; the uncertainty of a score is made of them (``_score``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from river import linear_model, optim, preprocessing

from swarmlearn.prompts._config import PromptConfig

TARGETS: tuple[str, ...] = ("quality", "success", "latency", "response_tokens")
"""In this order everywhere: quality_score, success_rate, log1p(latency_ms), log1p(response_tokens)."""

QUALITY, SUCCESS, LATENCY, RESPONSE = range(len(TARGETS))

_CLIP_GRADIENT = 4.0  # squared loss: a residual of 2 target deviations; one outlier must not throw the weights far

Features = dict[Any, float]  # as in _features
Predictor = Callable[[Features], float]

Targets = Sequence[float | None]
"""One event's target values in ``TARGETS`` order, None where the event does not have it."""


class RunningErrors:
    """Per target, an exponentially faded mean absolute residual and how many residuals made it."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mae = [0.0] * len(TARGETS)
        self.count = [0] * len(TARGETS)

    def update(self, residuals: list[float | None]) -> None:
        for i, residual in enumerate(residuals):
            if residual is not None:
                n = self.count[i] = self.count[i] + 1
                # The plain mean until there are 1/alpha residuals, so the first ones do not weigh for long.
                self.mae[i] += max(self.alpha, 1.0 / n) * (residual - self.mae[i])

    def sigma(self, target: int) -> float | None:
        """Standard deviation of the residuals, read from their mean absolute value as if they were normal."""
        return self.mae[target] * math.sqrt(math.pi / 2) if self.count[target] else None


def _unscaled(predict_one: Callable[[Features], float], std: float, mean: float, x: Features) -> float:
    return float(predict_one(x)) * std + mean  # what TargetStandardScaler.predict_one computes


class ScopeModels:
    """One model per target in ``TARGETS``, for one scope, with their running errors."""

    def __init__(self, config: PromptConfig) -> None:
        self.config = config
        self.models = tuple(
            preprocessing.TargetStandardScaler(
                linear_model.LinearRegression(
                    optimizer=optim.SGD(config.learning_rate),
                    intercept_lr=config.learning_rate,
                    l2=config.l2,
                    clip_gradient=_CLIP_GRADIENT,
                )
            )
            for _ in TARGETS
        )
        self.errors = RunningErrors(config.residual_alpha)

    def predict(self, target: int, x: Features) -> float:
        return float(self.models[target].predict_one(x))

    def predictors(self) -> tuple[Predictor, ...]:
        """Each target's ``predict`` as of now, with the target's scale read once rather than per call:
        100 candidates make 400 predictions, and the scale changes only when a model learns."""
        return tuple(
            functools.partial(_unscaled, model.regressor.predict_one, model.var.get() ** 0.5, model.var.mean.get())
            for model in self.models
        )

    def residuals(self, x: Features, x_latency: Features, y: Targets) -> list[float | None]:
        """Absolute errors of the models on one event, before it is learned."""
        return [
            None if value is None else abs(value - self.predict(i, x_latency if i == LATENCY else x))
            for i, value in enumerate(y)
        ]

    def learn(self, x: Features, x_latency: Features, y: Targets) -> None:
        for i, (model, value) in enumerate(zip(self.models, y, strict=True)):
            if value is not None:
                model.learn_one(x_latency if i == LATENCY else x, value)

"""The training package's settings: one frozen dataclass for data, loop and evaluation."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swarmlearn.models import LSTMConfig, ModelConfig, NBEATSConfig, TCNConfig, config_from_dict, searched

JOB_SETTINGS = frozenset(
    {"window", "grid_s", "batch_size", "max_steps", "patience", "learning_rate", "weight_decay", "seed",
     "mixed_precision", "fine_tune", "fine_tune_epochs", "fine_tune_lr_scale"}
)  # fmt: skip
"""The ``TrainingConfig`` fields a training job's ``config_json.training`` (and a tuning trial) may set."""


class Scaling(enum.StrEnum):
    WINDOW = "window"
    """Each window by its own median and MAD, channel by channel (the temporal angles are left as they
    are); forecasts are scaled back by the same numbers. Agents whose latencies differ twentyfold look
    alike to the model, and a level shift needs no refit. Fixed by the window alone, so there is no
    state to fit and a new agent is scaled like an old one."""

    GLOBAL = "global"
    """Every channel standardised by its mean and standard deviation over the training rows of all
    agents (fitted once, stored in the checkpoint)."""


class Loss(enum.StrEnum):
    MAE = "mae"
    """The mean absolute error: forecasts the median. MASE and the registry's promotion rule (ratios of
    MAE) judge by absolute errors; it is neuralforecast's default too."""

    HUBER = "huber"
    """Squared below 1 (one scale of the window), absolute above."""

    MSE = "mse"
    """Forecasts the mean, which failure bursts and latency spikes drag away from the typical value."""


def _default_thresholds() -> dict[str, float]:
    return {"latency_ms": 10.0, "success_rate": 0.05}


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    models: tuple[ModelConfig, ...] = (LSTMConfig(), TCNConfig(), NBEATSConfig())
    """The architectures a pipeline trains, each with its config; the best on validation is returned."""

    # The data.
    window: int = searched(50, values=(25, 50, 100))
    """L: events in an input window (buckets with ``grid_s``)."""

    horizon: int = 1
    """H: events forecast at once (buckets with ``grid_s``: H buckets ahead)."""

    grid_s: float | None = None
    """Seconds per bucket of a regular time grid, for calendar forecasts; None: one row per event.
    With a grid each agent's events are resampled into buckets (``training._grid``: per bucket the
    mean of every channel, the temporal angles of its start, empty buckets carried forward and
    never a target) before windowing. Recorded in the checkpoint, so serving resamples the same way."""

    scaling: Scaling = Scaling.WINDOW
    """How windows are scaled; see ``Scaling``."""

    validation_fraction: float = 0.15
    """Share of the events, by time, whose targets make the validation windows."""

    test_fraction: float = 0.15
    """Share of the events, by time (the latest), whose targets make the test windows."""

    # The loop.
    loss: Loss = Loss.MAE
    """What is minimised on the scaled targets (and measured as the validation loss). On the synthetic
    swarm (LSTM 64, per-window scaling with a 5% scale floor) the test MAE of latency / tokens/s /
    success was 263.8 / 2.388 / 0.0196 with MAE, 265.2 / 2.393 / 0.0204 with Huber and 267.7 / 2.398 /
    0.0229 with MSE, whose success forecasts were worse than naive (0.0211)."""

    batch_size: int = 64
    max_epochs: int = 30
    """Epochs per call at most (an epoch is one pass over the training windows)."""

    max_steps: int | None = None
    """Optimizer steps per call at most (None: no limit), for fine-tuning on a budget; validation
    runs at the end of every epoch and when the budget ends mid-epoch."""

    patience: int = 5
    """Epochs without a validation loss below the best (by ``min_delta``) before stopping."""

    min_delta: float = 1e-4
    """How much lower than the best a validation loss must be to count as better."""

    learning_rate: float = searched(1e-3, low=1e-4, high=1e-2, log=True)
    """AdamW's step size."""

    weight_decay: float = 1e-2
    """AdamW's decoupled weight decay (torch's default)."""

    grad_clip: float = 1.0
    """Largest L2 norm of all gradients together; larger ones are scaled down to it."""

    seed: int = 0
    """Seeds weight initialisation, dropout and batch order; the same seed gives the same model on CPU."""

    device: str = "auto"
    """``auto`` (CUDA where present, else CPU), or any ``torch.device`` string."""

    mixed_precision: bool = True
    """On a CUDA device that computes in bfloat16 natively (compute capability 8.0 on): the training
    steps' and the validation's forward passes under bfloat16 autocast, with the weights, the optimizer,
    the losses and the evaluation's forecasts in float32 (bfloat16 has float32's range, so no loss
    scaling). False: float32 throughout. The CPU and older GPUs train in float32 either way."""

    fine_tune: bool = False
    """Fine-tune the champion rather than retrain: a job whose champion is compatible (``warm_start``)
    starts from its weights, as every job does, but trains at most ``fine_tune_epochs`` epochs at
    ``learning_rate`` times ``fine_tune_lr_scale`` (``fine_tuning``). Without a compatible champion the
    job trains in full, and its note says so. Which serves better: docs/training.md, "Fine-tuning"."""

    fine_tune_epochs: int = 5
    """Epochs of a fine-tune at most."""

    fine_tune_lr_scale: float = 0.1
    """A fine-tune's learning rate over ``learning_rate``."""

    eval_batch_size: int = 1024
    """Windows per forward pass when validating and evaluating."""

    # The evaluation.
    thresholds: dict[str, float] = field(default_factory=_default_thresholds)
    """Per target, the absolute error under which a forecast counts as accurate (the accuracy metric);
    targets without one have no accuracy."""

    @classmethod
    def for_job(
        cls, kind: str, horizon: int, config: Mapping[str, Any] | None = None, max_epochs: int | None = None
    ) -> TrainingConfig:
        """A training job's or tuning trial's config: the model ``kind`` with ``config``'s fields over
        its defaults, and its ``training`` mapping's ``JOB_SETTINGS`` over ours (a ValueError names a bad
        one); ``max_epochs`` when given (not 0)."""
        overrides = dict(config or {})
        training = overrides.pop("training", {}) or {}
        unknown = set(training) - JOB_SETTINGS
        if unknown:
            raise ValueError(
                f"config_json.training: unknown setting(s) {sorted(unknown)}; known: {sorted(JOB_SETTINGS)}"
            )
        values: dict[str, Any] = {"models": (config_from_dict(kind, overrides),), "horizon": horizon, **training}
        if max_epochs:
            values["max_epochs"] = max_epochs
        return cls(**values)

    def fine_tuning(self) -> TrainingConfig:
        """This config as a fine-tune runs it: fewer epochs, a smaller learning rate."""
        return dataclasses.replace(
            self,
            max_epochs=min(self.max_epochs, self.fine_tune_epochs),
            learning_rate=self.learning_rate * self.fine_tune_lr_scale,
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaling", Scaling(self.scaling))
        object.__setattr__(self, "loss", Loss(self.loss))
        if self.grid_s is not None:
            object.__setattr__(self, "grid_s", float(self.grid_s))
            if not 0 < self.grid_s < float("inf"):
                raise ValueError(f"grid_s must be a positive number of seconds, got {self.grid_s}")
        if not self.models:
            raise ValueError("models: at least one")
        kinds = [m.kind for m in self.models]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"models: one config per kind, got {kinds}")
        if self.window < 2 or self.horizon < 1:
            raise ValueError("window must be at least 2 and horizon at least 1")
        if not (
            self.validation_fraction > 0
            and self.test_fraction > 0
            and self.validation_fraction + self.test_fraction < 1
        ):
            raise ValueError("validation_fraction and test_fraction must be positive and sum to less than 1")
        if min(self.batch_size, self.max_epochs, self.patience, self.eval_batch_size) < 1:
            raise ValueError("batch_size, max_epochs, patience and eval_batch_size must be positive")
        if self.fine_tune_epochs < 1 or not 0 < self.fine_tune_lr_scale <= 1:
            raise ValueError("fine_tune_epochs must be positive and fine_tune_lr_scale in (0, 1]")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError("max_steps must not be negative")

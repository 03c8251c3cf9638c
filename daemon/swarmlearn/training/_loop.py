"""One training loop for every model: AdamW on the scaled targets, early stopping, budgets.

Per call: at most ``max_epochs`` epochs and ``max_steps`` optimizer steps. After each epoch (and when
the step budget ends one early) the validation loss is measured; the weights of the best one are
kept, and training stops after ``patience`` epochs without a loss ``min_delta`` below the best. The
model ends with the best weights; then ``Forecaster.after_training`` learns what it learns from the
validation windows (the ensemble its combination: at most ``AFTER_TRAINING_WINDOWS`` of them, evenly
spaced), and the result's ``best_val_loss`` is the model's as it ends.

Determinism: the seed drives weight initialisation (where the caller builds the model inside
``seeded``), dropout and the batch order. The loop runs inside ``torch.random.fork_rng``, so it
neither reads nor disturbs the caller's global RNG state. On CPU two runs with the same seed give
the same weights bit for bit (the contract test checks it); CUDA kernels may not.

Devices: the batches are made on the model's device (``StreamDataLoader.batches``). On CUDA with
``TrainingConfig.mixed_precision`` the training steps' and the validation's forward passes run under
bfloat16 autocast (``uses_bfloat16``); losses are always taken in float32, and ``forecast`` (what
evaluation scores and what serving computes) in float32 throughout.

A background job watches it with ``progress`` (called after every epoch) and stops it with
``should_stop``, checked before every optimizer step (microseconds against a step's milliseconds):
a True raises ``TrainingCancelled`` within one step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from swarmlearn.models import Forecaster
from swarmlearn.training._config import Loss, TrainingConfig
from swarmlearn.training._data import Split, StreamDataLoader
from swarmlearn.training._scaling import Array

AFTER_TRAINING_WINDOWS = 8192
"""Validation windows ``Forecaster.after_training`` is given at most (every k-th, so all agents and times are
in them): bounds what an ensemble keeps of its members' forecasts (8192 windows of H = 12, T = 3 and three
members are 3.5 MB in float32) and its combination's fit (2.6 s for 8192 windows of three targets, 0.1-1.4 s
for the NAB series' 138-555 windows of one, on one thread of the loaded 2-core VM, 2026-12-06)."""


class TrainingCancelled(Exception):
    """``should_stop`` returned True; the model holds whatever weights it had at that step."""


class Progress(NamedTuple):
    kind: str
    epoch: int
    """Epochs done in this call, from 1."""
    max_epochs: int
    steps: int
    """Optimizer steps done in this call."""
    train_loss: float
    """Mean training loss over the epoch's steps."""
    val_loss: float
    best_val_loss: float


class TrainResult(NamedTuple):
    epochs: int
    steps: int
    best_epoch: int
    """The epoch whose weights the model ends with (0: the starting weights were never beaten)."""
    best_val_loss: float
    """The validation loss of the model as it ends: the best epoch's, or after ``after_training`` where
    that changed the model (an ensemble's learned combination)."""
    naive_val_loss: float
    """The naive forecast's loss on the same validation windows, in the same scaled units."""
    history: list[tuple[int, float, float]]
    """``(epoch, train_loss, val_loss)`` per epoch."""
    stop_reason: str
    """``early_stopping``, ``max_epochs`` or ``max_steps``."""
    seconds: float
    windows_per_second: float
    """Training windows per second of training steps (validation excluded)."""
    resume: dict[str, Any] | None = None
    """What a later run continues from (``fit(..., resume=)``): the optimizer's state at the last step
    and the random generators' (the shuffles' and torch's), so a Hyperband rung that continues a
    configuration neither restarts Adam's moments nor replays the same shuffles and dropout masks."""
    bfloat16: bool = False
    """Whether the forward passes ran under bfloat16 autocast (``uses_bfloat16``)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the first CUDA device where there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def uses_bfloat16(device: torch.device, config: TrainingConfig) -> bool:
    """Whether ``fit`` runs forward passes under bfloat16 autocast on ``device``: with
    ``config.mixed_precision``, on a CUDA device that computes in bfloat16 natively (compute capability
    8.0 on); never on the CPU, where torch.cuda is not asked."""
    if device.type != "cuda" or not config.mixed_precision:
        return False
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's global RNG seeded, restoring the caller's state after it."""
    devices = [device.index or 0] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def fit(
    model: Forecaster,
    data: StreamDataLoader,
    config: TrainingConfig,
    *,
    initial_state: Mapping[str, torch.Tensor] | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data``'s training windows, in place; it ends on the best validation weights.

    ``initial_state``: weights to start from (a warm start from the champion), loaded strictly.
    ``resume``: a previous run's ``TrainResult.resume`` (with its weights as ``initial_state``), to
    continue it: the optimizer and the random generators go on where it stopped.
    """
    device = resolve_device(config.device)
    model.to(device)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=_fusable(device)
    )
    criterion = loss_function(config.loss)
    bfloat16 = uses_bfloat16(device, config)
    rng = np.random.default_rng(config.seed)
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        rng.bit_generator.state = resume["shuffles"]
    budget = math.inf if config.max_steps is None else config.max_steps
    start = time.perf_counter()
    training_seconds = 0.0
    trained_windows = 0
    steps = 0
    history: list[tuple[int, float, float]] = []
    with seeded(config.seed, device):
        if resume is not None:  # dropout masks go on from where the run stopped, not from the seed again
            torch.set_rng_state(resume["torch"])
        best_loss = validation_loss(model, data, config, device, bfloat16=bfloat16)
        best_state = _copy_state(model)
        best_epoch, stale, stop_reason = 0, 0, "max_epochs"
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            epoch_start, epoch_steps = time.perf_counter(), 0
            loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step on a GPU
            for batch in data.batches(Split.TRAIN, batch_size=config.batch_size, rng=rng, device=device):
                if steps >= budget:
                    break
                if should_stop is not None and should_stop():
                    raise TrainingCancelled(f"cancelled at epoch {epoch}, step {steps}")
                optimizer.zero_grad(set_to_none=True)
                with _autocast(device, bfloat16):
                    loss = model.training_loss(batch.x, batch.y, lambda out, y: criterion(out.float(), y))
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
                optimizer.step()
                loss_sum += loss.detach()
                trained_windows += len(batch.x)
                epoch_steps += 1
                steps += 1
            train_loss = float(loss_sum) / max(epoch_steps, 1)  # waits for the device's last step
            training_seconds += time.perf_counter() - epoch_start
            if not epoch_steps:  # a budget of no steps: the model keeps its starting weights
                stop_reason = "max_steps"
                break
            val_loss = validation_loss(model, data, config, device, bfloat16=bfloat16)
            history.append((epoch, train_loss, val_loss))
            if val_loss < best_loss - config.min_delta:
                best_loss, best_state, best_epoch, stale = val_loss, _copy_state(model), epoch, 0
            else:
                stale += 1
            if progress is not None:
                progress(Progress(model.kind, epoch, config.max_epochs, steps, train_loss, val_loss, best_loss))
            if steps >= budget:
                stop_reason = "max_steps"
                break
            if stale >= config.patience:
                stop_reason = "early_stopping"
                break
        state = {
            "optimizer": optimizer.state_dict(),
            "shuffles": rng.bit_generator.state,
            "torch": torch.get_rng_state(),
        }
    model.load_state_dict(best_state)
    model.eval()
    if model.after_training(_thinned(data, device, config.eval_batch_size), loss_function(config.loss)):
        best_loss = validation_loss(model, data, config, device, bfloat16=bfloat16)
    return TrainResult(
        epochs=len(history),
        steps=steps,
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        naive_val_loss=naive_validation_loss(data, config),
        history=history,
        stop_reason=stop_reason,
        seconds=time.perf_counter() - start,
        windows_per_second=trained_windows / training_seconds if training_seconds > 0 else math.nan,
        resume=state,
        bfloat16=bfloat16,
    )


def _thinned(
    data: StreamDataLoader, device: torch.device, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The validation windows' scaled inputs and targets, every k-th, at most ``AFTER_TRAINING_WINDOWS``."""
    stride = -(-len(data.starts[Split.VALIDATION]) // AFTER_TRAINING_WINDOWS)
    seen = 0
    for batch in data.batches(Split.VALIDATION, batch_size=batch_size, device=device):
        first = -seen % stride  # the batch's first window whose index is a multiple of the stride
        seen += len(batch.x)
        if first < len(batch.x):
            yield batch.x[first::stride], batch.y[first::stride]


def _fusable(device: torch.device) -> bool:
    """Whether AdamW's fused kernel (one pass over all the parameters) runs on ``device``.

    On the CPU it made an N-BEATS training step (about 70 weight tensors) 1.6x faster than the
    per-tensor loop, and the LSTM's and TCN's steps a little faster.
    """
    return device.type in ("cpu", "cuda")


def _autocast(device: torch.device, bfloat16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bfloat16 else contextlib.nullcontext()


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def loss_function(loss: Loss, reduction: str = "mean") -> nn.Module:
    """The criterion of ``loss`` over every element (``mean`` or ``sum``)."""
    if loss is Loss.HUBER:
        return nn.HuberLoss(reduction=reduction, delta=1.0)
    return nn.L1Loss(reduction=reduction) if loss is Loss.MAE else nn.MSELoss(reduction=reduction)


@torch.no_grad()
def validation_loss(
    model: Forecaster, data: StreamDataLoader, config: TrainingConfig, device: torch.device, *, bfloat16: bool = False
) -> float:
    """The training loss of the scaled forecasts over all the validation windows (forward passes under
    bfloat16 autocast when ``bfloat16``, the loss in float32)."""
    model.eval()
    criterion = loss_function(config.loss, "sum")
    total, count = 0.0, 0
    for batch in data.batches(Split.VALIDATION, batch_size=config.eval_batch_size, device=device):
        with _autocast(device, bfloat16):
            out = model(batch.x)
        total += float(criterion(out.float(), batch.y))
        count += batch.y.numel()
    return total / count


@torch.no_grad()
def naive_validation_loss(data: StreamDataLoader, config: TrainingConfig) -> float:
    """``validation_loss`` of the naive forecast (each input's last value, scaled like the targets)."""
    criterion = loss_function(config.loss, "sum")
    total, count = 0.0, 0
    for batch in data.batches(Split.VALIDATION, batch_size=config.eval_batch_size):
        last = batch.x[:, -1:, list(data.target_channels)]  # [B, 1, T], scaled like the targets
        total += float(criterion(last.expand_as(batch.y), batch.y))
        count += batch.y.numel()
    return total / count


@torch.no_grad()
def forecast(model: Forecaster, data: StreamDataLoader, split: Split, batch_size: int) -> Array:
    """The model's forecasts of the split's windows in original units, ``[W, H, T]`` (float32 throughout)."""
    model.eval()
    device = next(model.parameters()).device
    parts = [
        (model(batch.x) * batch.scale + batch.center).cpu().numpy()  # [B, H, T]
        for batch in data.batches(split, batch_size=batch_size, device=device)
    ]
    return np.concatenate(parts)

"""Torch forecasters on real series, beside neuralforecast: accuracy by EVALUATION.md's protocol, fit time,
training throughput and single-window predict latency.

    python benchmarks/training.py [--series 17] [--models lstm,tcn,nbeats,ensemble] [--max-steps 300] [--seed 1]
                                  [--scaler window|robust] [--calls 500] [--nf-series N] [--threads N]

neuralforecast 3.3.0 is the optional ``bench`` extra. Install it in a venv of its own, torch==2.13.0 first (the
CPU wheel; neuralforecast would otherwise pull a CUDA build), then ``pip install -e ./client -e '.[bench]'``.
Where it does not import, the script runs our models and the baselines only, and the neuralforecast rows are
EVALUATION.md's reference figures.

On the project's 2-core VM when nothing else runs, on one thread: about 15 minutes without neuralforecast (LSTM
about 39 s a series, TCN 5 s, N-BEATS 10 s), about an hour with it; ``--series 2 --models tcn,nbeats`` takes a
minute or two.

Part 1, accuracy. The 17 AWS CloudWatch series of ``../shared/data/nab_aws_cloudwatch`` (or ``--data``), by
the protocol of ``../shared/EVALUATION.md`` exactly: each CSV sorted by timestamp, the last row of a
duplicate timestamp kept, no resampling; ``period = round(86400 / median step)``; ``n_train = (4n)//5``;
H = 12; origins ``t0 = n_train, n_train+12, ...`` while ``t0+12 <= n``, each forecast from ``y[:t0]`` only,
with no refit between origins. MASE = mean |error| over every scored point / mean |y[t]-y[t-1]| over
``y[:n_train]``; MAE and sMAPE (``200·|e|/(|y|+|ŷ|)``, 0 where both are 0) beside it.

- Baselines, computed here: naive (``y[t0-1]`` for all 12 steps), seasonal naive (``y[t0+h-period]``) and the
  mean of the last day (``mean(y[t0-period:t0])``).
- Our models: ``swarmlearn.models`` LSTM, TCN and N-BEATS at their default sizes (the issue's), one model per
  series, trained once by ``swarmlearn.training.fit`` on that series' training part: windows of L = 96 inputs
  and H = 12 targets of the one channel (F = 1, T = 1), AdamW, MAE loss, batch 64, ``max_steps`` 300 (the
  reference's budget), seed 1, torch's default threads (2 here) or ``--threads``. The last 15 % of the
  training part (``TrainingConfig.validation_fraction``) is the validation split for early stopping and the
  choice of the best epoch's weights: its windows' targets all lie in it, the training windows' targets all
  before it.
  The 96 steps before each origin are the model's input there.
- Each window is scaled by its 96 inputs: ``--scaler window`` (default) is the library's ``WindowScaler``
  (median and MAD, floored at 20 % of the median's magnitude), as ``StreamDataLoader`` scales;
  ``--scaler robust`` is the same without that floor (neuralforecast's ``robust`` scaler is median / MAD).
- *fit time* is the wall time of ``fit`` (training steps and validation passes) for one series.
- neuralforecast's LSTM, TCN and NBEATS (on the first ``--nf-series`` series only, if given; our rows are then
  summarised over those too) as the reference was made: the library's defaults except h = 12,
  input_size = 96, ``max_steps`` and ``random_seed`` (``--max-steps``, ``--seed``), on the CPU. Each is fitted
  by ``NeuralForecast.fit`` on ``y[:n_train]`` (``ds`` = the positions, freq 1; no validation split, its
  default) and forecasts every origin from ``y[:t0]`` in one ``predict`` (one ``unique_id`` per origin); its
  fit time is the wall time of ``NeuralForecast.fit``. EVALUATION.md's figures are printed beside them when all
  17 series are run.

Part 2, cost, from the same run. *Training windows/s*: windows per second of training steps (gathering,
scaling, forward, backward, the optimizer; validation excluded), median over the series [min-max]. Ours as
``fit`` reports it. neuralforecast's at our model's size (``nf_equal_sizes``; both trainable parameter counts
are printed, within 1 % of each other), trained right after ours on the same series' training part with
the same batch of 64 windows (``windows_batch_size``), ``max_steps``, seed and threads, and otherwise its
defaults; a Lightning callback times each training step from ``on_train_batch_start`` to
``on_train_batch_end`` (window sampling, scaling, forward, backward, Adam). The ratio ours / neuralforecast is
taken per series, then summarised. These equal-size models are scored too (the "at our size" rows).

*Predict one window*: ``TrainedModel.predict`` on one raw window ``[96, 1]`` (scaling in and out included)
and the bare ``model(x)`` on one scaled ``[1, 96, 1]`` tensor; for neuralforecast, its public
``NeuralForecast.predict`` on a frame of the same 96 values and its bare network on the same tensor (as a
``windows_batch``). Under ``torch.no_grad`` on the CPU: ``--calls`` sequential calls each, after 20 warm-up
calls, in chunks of 50 that alternate between the models, on the models fitted to the first series; once on
one torch thread (as the daemon's forecaster serves a champion), then on the threads training ran on if more.

Threads: ``--threads 1`` where other processes keep the cores busy. Two OpenMP threads on two cores that other
work also wants wait on each other at every parallel region: with a load average of 6 on the 2-core VM, a
training step of our LSTM ran 8 times slower on two threads than on one.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from swarmlearn.models import (
    MODEL_KINDS,
    ForecastShape,
    LSTMConfig,
    ModelConfig,
    StackType,
    TCNConfig,
    build_model,
    config_from_dict,
)
from swarmlearn.training import (
    ScaledBatch,
    Split,
    TrainedModel,
    TrainingConfig,
    TrainResult,
    WindowScaler,
    fit,
    seeded,
)

try:  # the optional `bench` extra
    import neuralforecast
    import pandas as pd
    import pytorch_lightning as pl
    from neuralforecast import NeuralForecast
except ImportError:
    neuralforecast = None
else:
    import neuralforecast.models

    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)  # "Seed set to 1" at every model
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # trainer banners at every fit and predict
    warnings.filterwarnings("ignore", module=r"(pytorch_lightning|lightning_fabric|neuralforecast)\b")

    class StepTimer(pl.Callback):
        """Seconds and count of a Lightning fit's training steps (batch, forward, backward, optimizer step)."""

        def __init__(self) -> None:
            self.seconds, self.steps, self.start = 0.0, 0, 0.0

        def on_train_batch_start(self, *_: object) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, *_: object) -> None:
            self.seconds += time.perf_counter() - self.start
            self.steps += 1


DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab_aws_cloudwatch"
HORIZON = 12
WINDOW = 96
SEED = 1

REFERENCE = [  # EVALUATION.md: neuralforecast 3.3.0, 2-core CPU
    ("neuralforecast LSTM", 0.943, 0.827, 11, "46-56 s"),
    ("neuralforecast TCN", 0.933, 0.787, 11, "25-37 s"),
    ("neuralforecast NBEATS", 0.902, 0.806, 11, "31-38 s"),
]
REFERENCE_BASELINES = {
    "naive": (1.198, 1.060, 7),
    "seasonal naive": (2.902, 1.351, 7),
    "mean of last day": (1.879, 1.173, 8),
}


class Series(NamedTuple):
    name: str
    y: np.ndarray
    """Values in time order, float64."""
    period: int
    """Steps in a day."""

    @property
    def n_train(self) -> int:
        return (4 * len(self.y)) // 5

    @property
    def origins(self) -> np.ndarray:
        return np.arange(self.n_train, len(self.y) - HORIZON + 1, HORIZON)


class Score(NamedTuple):
    mase: float
    mae: float
    smape: float


def load_series(path: Path) -> Series:
    """Sorted by timestamp (stable), the last row of each duplicate timestamp kept, no resampling."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    stamps = np.array([datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC).timestamp() for r in rows])
    values = np.array([float(r["value"]) for r in rows])
    order = np.argsort(stamps, kind="stable")  # ties keep file order, so "last" is the last in the file
    stamps, values = stamps[order], values[order]
    last = np.append(stamps[1:] != stamps[:-1], True)
    stamps, values = stamps[last], values[last]
    period = round(86400 / float(np.median(np.diff(stamps))))
    return Series(path.stem, values, period)


def score(series: Series, forecasts: np.ndarray) -> Score:
    """``forecasts``: ``[origins, H]`` in original units, scored against the values they forecast."""
    y = series.y
    truth = y[series.origins[:, None] + np.arange(HORIZON)]  # [O, H]
    error = np.abs(truth - forecasts)
    scale = np.abs(np.diff(y[: series.n_train])).mean()
    denominator = np.abs(truth) + np.abs(forecasts)
    smape = np.where(denominator > 0, 2 * error / np.where(denominator > 0, denominator, 1), 0.0)
    return Score(float(error.mean() / scale), float(error.mean()), float(100 * smape.mean()))


# The baselines: [O, H] forecasts from y[:t0] alone.


def naive(series: Series) -> np.ndarray:
    return np.repeat(series.y[series.origins - 1][:, None], HORIZON, axis=1)


def seasonal_naive(series: Series) -> np.ndarray:
    return series.y[series.origins[:, None] + np.arange(HORIZON) - series.period]  # H <= period


def last_day_mean(series: Series) -> np.ndarray:
    means = [series.y[t0 - series.period : t0].mean() for t0 in series.origins]
    return np.repeat(np.array(means)[:, None], HORIZON, axis=1)


BASELINES: dict[str, Callable[[Series], np.ndarray]] = {
    "naive": naive,
    "seasonal naive": seasonal_naive,
    "mean of last day": last_day_mean,
}


class RobustScaler:
    """``WindowScaler``'s median and MAD per window (with its mean-deviation fallback) without its floor of
    20 % of the median's magnitude or its series-wide scale for a window of zeros (scale 1 there):
    shift-invariant, as neuralforecast's ``robust``."""

    def stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # x: [B, L, 1]
        median = np.median(x, axis=1, keepdims=True)  # [B, 1, 1]
        deviation = np.abs(x - median)
        spread = 1.4826 * np.median(deviation, axis=1, keepdims=True)
        spread = np.where(spread > 1e-6, spread, 1.2533 * deviation.mean(axis=1, keepdims=True))
        return median, np.where(spread > 1e-6, spread, 1.0).astype(np.float32)

    def state(self) -> dict[str, str]:
        return {"kind": "robust"}


SCALERS: dict[str, Callable[[np.ndarray], WindowScaler | RobustScaler]] = {  # from the training rows [N, 1]
    "window": lambda rows: WindowScaler.fit(rows, [0]),
    "robust": lambda rows: RobustScaler(),
}


class SeriesWindows:
    """One univariate series as ``fit`` reads its data: ``batches(split, ...)`` of scaled ``[B, L, 1]``
    inputs and ``[B, H, 1]`` targets (tensors on the device asked for), and ``target_channels``.

    ``StreamDataLoader`` builds windows from ``Event``s only (13 features, three targets), so a plain
    series needs this stand-in; it scales with the library's ``WindowScaler`` as the loader does.
    Only the training part ``y[:n_train]`` is windowed: the last ``validation_fraction`` of it holds the
    validation windows' targets, and the training windows' targets all precede it.
    """

    target_channels = (0,)

    def __init__(self, y: np.ndarray, n_train: int, validation_fraction: float, scaler: str) -> None:
        self.values = y[:n_train].astype(np.float32)[:, None]  # [n_train, 1]
        first_validation = n_train - round(validation_fraction * n_train)
        self.scaler = SCALERS[scaler](self.values[:first_validation])
        span = WINDOW + HORIZON
        starts = np.arange(n_train - span + 1)
        first_target = starts + WINDOW
        self.starts = {
            Split.TRAIN: starts[first_target + HORIZON <= first_validation],
            Split.VALIDATION: starts[first_target >= first_validation],
        }
        if not all(len(s) for s in self.starts.values()):
            raise ValueError(f"{n_train} training values give no window in some split")

    def scaled(self, starts: np.ndarray, device: torch.device | str) -> ScaledBatch:
        window = self.values[starts[:, None] + np.arange(WINDOW + HORIZON)]  # [B, L+H, 1]
        x, y = window[:, :WINDOW], window[:, WINDOW:]  # [B, L, 1], [B, H, 1]
        center, scale = self.scaler.stats(x)  # [B, 1, 1] each
        arrays = ((x - center) / scale, (y - center) / scale, center, scale)
        return ScaledBatch(*(torch.from_numpy(a).to(device) for a in arrays))

    def batches(
        self,
        split: Split,
        *,
        batch_size: int,
        rng: np.random.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Iterator[ScaledBatch]:
        starts = self.starts[split]
        if rng is not None:
            starts = rng.permutation(starts)
        for begin in range(0, len(starts), batch_size):
            yield self.scaled(starts[begin : begin + batch_size], device)


class Fitted(NamedTuple):
    model: TrainedModel
    training: TrainResult
    forecasts: np.ndarray
    """``[O, H]``: the forecast at each origin."""


def fit_series(series: Series, kind: str, config: TrainingConfig, scaler: str) -> Fitted:
    data = SeriesWindows(series.y, series.n_train, config.validation_fraction, scaler)
    shape = ForecastShape(window=WINDOW, horizon=HORIZON, n_features=1, target_channels=(0,))
    model_config = next(m for m in config.models if m.kind == kind)
    with seeded(config.seed):
        model = build_model(model_config, shape)
    training = fit(model, data, config)  # type: ignore[arg-type]  # SeriesWindows stands in for StreamDataLoader
    trained = TrainedModel(model, data.scaler)
    inputs = series.y[series.origins[:, None] + np.arange(-WINDOW, 0)].astype(np.float32)[:, :, None]  # [O, L, 1]
    forecasts = trained.predict(inputs)[:, :, 0]  # [O, H]: each origin sees y[t0-96:t0] only
    return Fitted(trained, training, forecasts.astype(np.float64))


def parameters(model: nn.Module) -> int:
    """Trainable parameters (neuralforecast keeps its N-BEATS bases as frozen parameters, ours as buffers)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# neuralforecast (the `bench` extra): the same three architectures on the same series.

NF_CLASSES = {"lstm": "LSTM", "tcn": "TCN", "nbeats": "NBEATS"}
NF_STACKS = {StackType.TREND: "trend", StackType.SEASONALITY: "seasonality", StackType.GENERIC: "identity"}


def nf_equal_sizes(config: ModelConfig) -> dict[str, Any]:
    """neuralforecast's size arguments that give its model about as many trainable parameters as ours
    (at our default sizes: +13 for the LSTM, +0.5 % for the TCN, +0.4 % for N-BEATS)."""
    if isinstance(config, LSTMConfig):
        # The same stacked LSTM. neuralforecast decodes each of the last H hidden states to one value through an
        # MLP, hidden -> H -> 1: H + 1 parameters more than our head, hidden -> H from the last state.
        return {
            "encoder_hidden_size": config.hidden_size,
            "encoder_n_layers": config.num_layers,
            "decoder_hidden_size": HORIZON,
        }
    if isinstance(config, TCNConfig):
        # A plain stack of causal convolutions of one width (our last block's): two per residual block of ours,
        # at its dilation, so the same receptive field, without the residual connections. Its context adapter
        # (L -> H over time) and a linear decoder (channels -> 1) stand for our head (channels -> H).
        channels = config.block_channels(WINDOW)
        return {
            "kernel_size": config.kernel_size,
            "dilations": [2**i for i in range(len(channels)) for _ in range(2)],
            "encoder_hidden_size": channels[-1],
            "decoder_layers": 1,
        }
    # The same stacks, blocks, fully connected layers (neuralforecast's block has one linear layer before its
    # `mlp_units` pairs) and trend degree; its Fourier basis at the default n_harmonics has 10 θ a block more.
    return {
        "stack_types": [NF_STACKS[s] for s in config.stack_types],
        "n_blocks": [config.num_blocks] * len(config.stack_types),
        "mlp_units": [[config.layer_width] * 2] * (config.num_layers - 1),
        "n_basis": config.trend_degree,
    }


def frame(y: np.ndarray, unique_id: int = 0) -> pd.DataFrame:
    """One series as neuralforecast reads it: the positions as ``ds`` (freq 1), as our models see them."""
    return pd.DataFrame({"unique_id": unique_id, "ds": np.arange(len(y)), "y": y})


def nf_input(x: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """A scaled ``[B, L, 1]`` tensor as the ``windows_batch`` that neuralforecast's networks read."""
    mask = torch.ones_like(x)
    return {"insample_y": x, "insample_mask": mask, "futr_exog": None, "hist_exog": None, "stat_exog": None}


class NFFitted(NamedTuple):
    forecaster: NeuralForecast
    forecasts: np.ndarray
    """``[O, H]``: the forecast at each origin."""
    seconds: float
    """Wall time of ``NeuralForecast.fit``."""
    windows_per_second: float
    """Of the training steps alone."""
    parameters: int


def nf_fit_series(series: Series, kind: str, max_steps: int, seed: int, **arguments: Any) -> NFFitted:
    """neuralforecast's model of ``kind``, with its defaults but for ``arguments``, fitted on ``y[:n_train]``
    and forecasting every origin from ``y[:t0]``."""
    model = getattr(neuralforecast.models, NF_CLASSES[kind])(
        h=HORIZON,
        input_size=WINDOW,
        max_steps=max_steps,
        random_seed=seed,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepTimer()],
        **arguments,
    )
    forecaster = NeuralForecast(models=[model], freq=1)
    start = time.perf_counter()
    forecaster.fit(frame(series.y[: series.n_train]))
    seconds = time.perf_counter() - start
    trained = forecaster.models[0]  # fit trains a copy of the model, with copies of its callbacks
    timer = next(c for c in trained.trainer_kwargs["callbacks"] if isinstance(c, StepTimer))
    histories = pd.concat(frame(series.y[:t0], origin) for origin, t0 in enumerate(series.origins))
    predictions = forecaster.predict(df=histories).sort_values(["unique_id", "ds"])
    forecasts = predictions[NF_CLASSES[kind]].to_numpy(np.float64).reshape(len(series.origins), HORIZON)
    # Every step trains on windows_batch_size windows (drawn with replacement where the series has fewer).
    rate = timer.steps * trained.windows_batch_size / timer.seconds
    return NFFitted(forecaster, forecasts, seconds, rate, parameters(trained))


def latencies_ms(calls: dict[str, Callable[[], object]], count: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 in ms of ``count`` sequential calls of each callable, after 20 warm-up calls each;
    chunks of 50 calls alternate between the callables, so a noisy neighbour weighs on all alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for call in calls.values():
            for _ in range(20):
                call()
        for begin in range(0, count, 50):
            for name, call in calls.items():
                for _ in range(min(50, count - begin)):
                    start = time.perf_counter()
                    call()
                    times[name].append((time.perf_counter() - start) * 1e3)
    result = {}
    for name, values in times.items():
        quantiles = statistics.quantiles(values, n=100, method="inclusive")
        result[name] = (quantiles[49], quantiles[98])
    return result


def spread(values: list[float], fmt: str) -> str:
    """``median [min-max]``, or the one value."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def summary_row(label: str, scores: list[Score], fit_cell: str) -> str:
    mase = [s.mase for s in scores]
    below = sum(m < 1 for m in mase)
    return (
        f"| {label} | {statistics.mean(mase):.3f} | {statistics.median(mase):.3f} | {below}/{len(mase)} | {fit_cell} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of timestamp,value CSVs")
    parser.add_argument("--series", type=int, default=17, help="the first N series by file name")
    parser.add_argument("--models", default="lstm,tcn,nbeats,ensemble")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--scaler", choices=sorted(SCALERS), default="window", help="window: the library's WindowScaler (default)"
    )
    parser.add_argument("--calls", type=int, default=500, help="predict calls per latency figure")
    parser.add_argument("--nf-series", type=int, help="neuralforecast on the first N of the series only (default: all)")
    parser.add_argument(
        "--threads", type=int, help="torch threads for training, ours and neuralforecast's (default: torch's)"
    )
    args = parser.parse_args()
    kinds = [k for k in args.models.split(",") if k]
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODEL_KINDS)}")
    paths = sorted(args.data.glob("*.csv"))[: args.series]
    if not paths:
        parser.error(f"no CSV in {args.data}")
    config = TrainingConfig(
        models=tuple(config_from_dict(k) for k in kinds),
        window=WINDOW,
        horizon=HORIZON,
        max_steps=args.max_steps,
        seed=args.seed,
        device="cpu",
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    started, load = time.perf_counter(), os.getloadavg()[0]
    all_series = [load_series(p) for p in paths]
    nf_kinds = [k for k in kinds if k in NF_CLASSES] if neuralforecast else []  # it has no ensemble
    nf_count = min(args.nf_series or len(all_series), len(all_series)) if nf_kinds else 0
    names = list(BASELINES) + kinds + [f"nf {k}" for k in nf_kinds]
    scores: dict[str, list[Score]] = {name: [] for name in names + [f"nf {k} at our size" for k in nf_kinds]}
    fits: dict[str, list[Fitted]] = {k: [] for k in kinds}
    nf_fits: dict[str, list[NFFitted]] = {k: [] for k in nf_kinds}
    nf_equal: dict[str, list[NFFitted]] = {k: [] for k in nf_kinds}
    for index, series in enumerate(all_series):
        for name, baseline in BASELINES.items():
            scores[name].append(score(series, baseline(series)))
        for kind in kinds:
            fitted = fit_series(series, kind, config, args.scaler)
            fits[kind].append(fitted)
            scores[kind].append(score(series, fitted.forecasts))
            t = fitted.training
            print(
                f"  {series.name} {kind}: MASE {scores[kind][-1].mase:.3f}, {t.seconds:.1f} s, {t.steps} steps, "
                f"{t.epochs} epochs ({t.stop_reason}, best {t.best_epoch}), val loss {t.best_val_loss:.4g} "
                f"(naive {t.naive_val_loss:.4g}), {t.windows_per_second:,.0f} windows/s",
                flush=True,
            )
            if kind not in nf_kinds or index >= nf_count:
                continue
            # Cost first, right after ours: our size and batch; then accuracy, as the reference was made.
            sizes = nf_equal_sizes(next(m for m in config.models if m.kind == kind))
            equal = nf_fit_series(
                series, kind, args.max_steps, args.seed, windows_batch_size=config.batch_size, **sizes
            )
            nf_equal[kind].append(equal)
            scores[f"nf {kind} at our size"].append(score(series, equal.forecasts))
            reference = nf_fit_series(series, kind, args.max_steps, args.seed)
            nf_fits[kind].append(reference)
            scores[f"nf {kind}"].append(score(series, reference.forecasts))
            print(
                f"  {series.name} nf {kind}: MASE {scores[f'nf {kind}'][-1].mase:.3f}, {reference.seconds:.1f} s; "
                f"at our size MASE {scores[f'nf {kind} at our size'][-1].mase:.3f}, {equal.seconds:.1f} s, "
                f"{equal.windows_per_second:,.0f} windows/s",
                flush=True,
            )
    accuracy_seconds = time.perf_counter() - started

    window = all_series[0].y[-WINDOW:].astype(np.float32)[:, None]  # [L, 1], raw
    scaled = torch.from_numpy(window[None] / max(float(np.abs(window).max()), 1.0))  # [1, L, 1]
    calls: dict[str, Callable[[], object]] = {}
    for kind in kinds:
        trained = fits[kind][0].model
        calls[f"{kind} predict"] = lambda m=trained: m.predict(window)
        calls[f"{kind} forward"] = lambda m=trained.model: m(scaled)
        if kind in nf_kinds:
            forecaster = nf_equal[kind][0].forecaster
            network, history, network_input = forecaster.models[0].eval(), frame(window[:, 0]), nf_input(scaled)
            calls[f"nf {kind} predict"] = lambda f=forecaster, h=history: f.predict(df=h)
            calls[f"nf {kind} forward"] = lambda m=network, x=network_input: m(x)
    latency: dict[int, dict[str, tuple[float, float]]] = {}
    for count in sorted({1, threads}):  # 1: as the daemon's forecaster serves a torch champion
        torch.set_num_threads(count)
        latency[count] = latencies_ms(calls, args.calls)
    torch.set_num_threads(threads)

    print()
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {threads} torch threads, "
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, neuralforecast "
        + (neuralforecast.__version__ if neuralforecast else "not installed: its rows are EVALUATION.md's")
    )
    print(
        f"# {len(all_series)} series, L = {WINDOW}, H = {HORIZON}, max_steps {args.max_steps}, batch "
        f"{config.batch_size}, seed {args.seed}, scaler {args.scaler}, validation = last "
        f"{config.validation_fraction:.0%} of the training part; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print(
        "MASE per series (origins: forecasts of 12 steps scored"
        + ("; nf: neuralforecast as the reference was made)" if nf_kinds else ")")
    )
    print("| series | n | period | origins | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for i, series in enumerate(all_series):
        cells = " | ".join(f"{scores[name][i].mase:.3f}" if i < len(scores[name]) else "-" for name in names)
        print(f"| {series.name} | {len(series.y)} | {series.period} | {len(series.origins)} | {cells} |")
    print()
    print("MAE / sMAPE % per series")
    print("| series | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, series in enumerate(all_series):
        cells = " | ".join(
            f"{scores[name][i].mae:.4g} / {scores[name][i].smape:.1f}" if i < len(scores[name]) else "-"
            for name in names
        )
        print(f"| {series.name} | {cells} |")

    print()
    print("| model | mean MASE | median MASE | series with MASE < 1 | fit time per series |")
    print("|---|---|---|---|---|")
    subsets = [len(all_series)] + ([nf_count] if 0 < nf_count < len(all_series) else [])
    for count in subsets:  # all series, then the ones neuralforecast ran on
        where = "here" if count == len(all_series) else f"here, the first {count} series"
        for name in BASELINES:
            print(summary_row(f"{name} ({where})", scores[name][:count], "0"))
        for kind in kinds:
            fit_seconds = [f.training.seconds for f in fits[kind][:count]]
            print(summary_row(f"swarmlearn {kind} ({where})", scores[kind][:count], spread(fit_seconds, ".1f") + " s"))
    for kind in nf_kinds:
        label = f"neuralforecast {NF_CLASSES[kind]}"
        fit_seconds = [f.seconds for f in nf_fits[kind]]
        print(summary_row(f"{label} (here)", scores[f"nf {kind}"], spread(fit_seconds, ".1f") + " s"))
        fit_seconds = [f.seconds for f in nf_equal[kind]]
        print(
            summary_row(
                f"{label} at our size, batch {config.batch_size} (here)",
                scores[f"nf {kind} at our size"],
                spread(fit_seconds, ".1f") + " s",
            )
        )
    if len(all_series) == len(list(args.data.glob("*.csv"))) == 17:
        for name, (mean, median, below) in REFERENCE_BASELINES.items():
            print(f"| {name} (reference, EVALUATION.md) | {mean:.3f} | {median:.3f} | {below}/17 | 0 |")
        for label, mean, median, below, seconds in REFERENCE:
            print(f"| {label} (reference, EVALUATION.md) | {mean:.3f} | {median:.3f} | {below}/17 | {seconds} |")

    print()
    if nf_kinds:
        print(
            "Cost at equal size (nf: neuralforecast at our size and batch; ratio: ours / neuralforecast, windows/s "
            "per series, latency p50)"
        )
    latency_columns = " | ".join(
        f"{call} p50 / p99 ms, {count} thread{'s' if count > 1 else ''}"
        for count in latency
        for call in ("predict one window", "forward only")
    )
    print(f"| model | trainable parameters | training windows/s | steps | {latency_columns} |")
    print("|---|---|---|---|" + "---|" * 2 * len(latency))

    def latency_cells(name: str) -> str:
        return " | ".join(
            f"{measured[f'{name} {call}'][0]:.2f} / {measured[f'{name} {call}'][1]:.2f}"
            for measured in latency.values()
            for call in ("predict", "forward")
        )

    for kind in kinds:
        rates = [f.training.windows_per_second for f in fits[kind]]
        steps = [float(f.training.steps) for f in fits[kind]]
        ours = parameters(fits[kind][0].model.model)
        print(f"| {kind} | {ours:,} | {spread(rates, ',.0f')} | {spread(steps, '.0f')} | {latency_cells(kind)} |")
        if kind not in nf_kinds:
            continue
        equal = nf_equal[kind]
        theirs = equal[0].parameters
        nf_rates = [f.windows_per_second for f in equal]
        print(
            f"| nf {kind} | {theirs:,} | {spread(nf_rates, ',.0f')} | {args.max_steps} | "
            f"{latency_cells(f'nf {kind}')} |"
        )
        ratios = " | ".join(
            f"{measured[f'{kind} {call}'][0] / measured[f'nf {kind} {call}'][0]:.3f}"
            for measured in latency.values()
            for call in ("predict", "forward")
        )
        rate_ratios = [ours_rate / nf_rate for ours_rate, nf_rate in zip(rates[:nf_count], nf_rates, strict=True)]
        print(f"| ratio {kind} | {ours / theirs:.3f} | {spread(rate_ratios, '.2f')} | | {ratios} |")
    print(f"\n# accuracy part {accuracy_seconds:.0f} s, whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""The forecasters' contract, one test over every registered kind: it learns, saves and reloads, is
deterministic under a seed, respects H > 1, and trains on CUDA where there is one."""

from __future__ import annotations

import dataclasses
import math
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import swarmlearn.models as models
from swarmlearn import names
from swarmlearn.events import Event, EventType
from swarmlearn.models import (
    MODEL_KINDS,
    EnsembleConfig,
    EnsembleModel,
    ForecastShape,
    LSTMConfig,
    ModelConfig,
    NBEATSConfig,
    TCNConfig,
    TCNModel,
    build_model,
    config_from_dict,
    load_checkpoint,
    save_checkpoint,
)
from swarmlearn.training import (
    Split,
    StreamDataLoader,
    TrainedModel,
    TrainingConfig,
    TrainingPipeline,
    _loop,
    fit,
    forecast,
    seeded,
)
from swarmlearn.training._loop import uses_bfloat16, validation_loss

START = 1_767_225_600.0
HORIZON = 3

# Small enough that the contract runs in seconds per kind on two cores; the defaults are what ships.
SMALL: dict[str, ModelConfig] = {
    "lstm": LSTMConfig(hidden_size=32, num_layers=1),
    "tcn": TCNConfig(num_channels=(16, 16, 16)),
    "nbeats": NBEATSConfig(num_blocks=1, num_layers=2, layer_width=64),
    "ensemble": EnsembleConfig(
        lstm=LSTMConfig(hidden_size=16, num_layers=1),
        tcn=TCNConfig(num_channels=(8, 8, 8)),
        nbeats=NBEATSConfig(num_blocks=1, num_layers=2, layer_width=32),
    ),
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on two cores: one thread is as fast and never oversubscribes
    yield
    torch.set_num_threads(threads)


def cycle_stream(n: int, *, agents: int = 2, seed: int = 0) -> Iterator[Event]:
    """Agents whose targets follow a 12-event cycle with a little noise: the naive forecast (the last
    value) misses by the cycle's step, a model that learns the cycle by the noise only."""
    rng = random.Random(seed)
    for i in range(n):
        for a in range(agents):
            phase = 2 * math.pi * (i + 3 * a) / 12
            yield Event(
                f"agent-{a}",
                f"{a}-{i}",
                START + 60.0 * i + a,
                EventType.PERFORMANCE_UPDATE,
                (400.0 + 200 * a) * (1 + 0.3 * math.sin(phase)) + rng.gauss(0, 5),
                40.0 + 10 * math.cos(phase) + rng.gauss(0, 0.5),
                512.0,
                30.0,
                0.9 + 0.05 * math.sin(phase) + rng.gauss(0, 0.002),
            )


@pytest.fixture(scope="module")
def cycle_data() -> StreamDataLoader:
    return StreamDataLoader(cycle_stream(400), TrainingConfig(window=24, horizon=HORIZON))


def test_public_names() -> None:
    assert sorted(models.__all__) == sorted(
        [
            "MODEL_KINDS",
            "Checkpoint",
            "EnsembleConfig",
            "EnsembleModel",
            "ForecastShape",
            "Forecaster",
            "LSTMConfig",
            "LSTMModel",
            "ModelConfig",
            "NBEATSConfig",
            "NBEATSModel",
            "SearchRange",
            "StackType",
            "TCNConfig",
            "TCNModel",
            "build_model",
            "searched",
            "config_from_dict",
            "config_to_dict",
            "load_checkpoint",
            "save_checkpoint",
            "write_checkpoint_bytes",
        ]
    )
    assert set(MODEL_KINDS) == set(SMALL) == {"lstm", "tcn", "nbeats", "ensemble"}
    # What the daemon validates requests against, without torch: the same kinds in the same order.
    assert tuple(MODEL_KINDS) == names.MODEL_KINDS


@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_model_contract(kind: str, cycle_data: StreamDataLoader, tmp_path: Path) -> None:
    config = TrainingConfig(models=(SMALL[kind],), window=24, horizon=HORIZON, max_epochs=25, patience=25, seed=3)
    report = TrainingPipeline(config).train(cycle_data, SMALL[kind])
    training = report.training

    # It learns: well below the naive forecast on the validation windows, in the loss it minimises.
    assert training.best_val_loss < 0.25 * training.naive_val_loss, training

    # It respects H > 1: every step is forecast, and step h is a forecast of step h, not a copy of step 1.
    predicted = forecast(report.model.model, cycle_data, Split.TEST, 1024)
    truth = cycle_data.targets(Split.TEST)
    assert predicted.shape == truth.shape == (len(cycle_data.starts[Split.TEST]), HORIZON, 3)
    scale = cycle_data.naive_scale  # per target, so the three targets weigh alike
    for h in range(1, HORIZON):
        own_step = np.abs(predicted[:, h] - truth[:, h]) / scale
        first_step = np.abs(predicted[:, 0] - truth[:, h]) / scale
        assert own_step.mean() < 0.5 * first_step.mean(), h

    # Save and reload give identical outputs, from the file alone.
    path = tmp_path / f"{kind}.pt"
    report.model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temporary file was renamed
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"format", "version", "header", "state_dict"}
    restored = TrainedModel.load(path)
    windows = cycle_data.windows[cycle_data.starts[Split.TEST][:50], : config.window]
    assert np.array_equal(restored.predict(windows), report.model.predict(windows))
    assert restored.metrics == report.model.metrics
    assert restored.model.config == SMALL[kind]

    # Deterministic under a seed: two short runs from the seed give the same weights, bit for bit;
    # another seed does not.
    short = TrainingConfig(models=(SMALL[kind],), window=24, horizon=HORIZON, max_steps=5, seed=11)
    pipeline = TrainingPipeline(short)
    first = pipeline.train(cycle_data, SMALL[kind]).model.state_dict()
    second = pipeline.train(cycle_data, SMALL[kind]).model.state_dict()
    other = TrainingPipeline(TrainingConfig(models=(SMALL[kind],), window=24, horizon=HORIZON, max_steps=5, seed=12))
    third = other.train(cycle_data, SMALL[kind]).model.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], third[name]) for name in first)


@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_trains_on_cuda(kind: str, cycle_data: StreamDataLoader) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    config = TrainingConfig(models=(SMALL[kind],), window=24, horizon=HORIZON, max_epochs=10, device="cuda")
    with seeded(0):
        model = build_model(SMALL[kind], ForecastShape(window=24, horizon=HORIZON))
    result = fit(model, cycle_data, config)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert result.steps > 0 and math.isfinite(result.best_val_loss)
    assert result.best_val_loss < 0.5 * result.naive_val_loss
    windows = cycle_data.windows[cycle_data.starts[Split.TEST][:8], :24]
    assert forecast(model, cycle_data, Split.TEST, 256).shape[1:] == (HORIZON, 3)
    assert TrainedModel(model, cycle_data.scaler).predict(windows).shape == (8, HORIZON, 3)


@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_cuda_fit_in_bfloat16_serves_on_the_cpu(kind: str, cycle_data: StreamDataLoader, tmp_path: Path) -> None:
    """Mixed precision (the default) on CUDA: finite losses, a model that learns, a validation loss in
    bfloat16 close to float32's, and a checkpoint that loads on the CPU and forecasts as on the GPU."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cuda = torch.device("cuda")
    config = TrainingConfig(models=(SMALL[kind],), window=24, horizon=HORIZON, max_epochs=10, device="cuda")
    assert not uses_bfloat16(cuda, dataclasses.replace(config, mixed_precision=False))
    with seeded(0):
        model = build_model(SMALL[kind], ForecastShape(window=24, horizon=HORIZON))
    result = fit(model, cycle_data, config)
    assert result.bfloat16 == torch.cuda.is_bf16_supported(including_emulation=False)
    assert all(math.isfinite(loss) for _, train_loss, val_loss in result.history for loss in (train_loss, val_loss))
    assert result.best_val_loss < 0.5 * result.naive_val_loss
    in_float32 = validation_loss(model, cycle_data, config, cuda)
    assert validation_loss(model, cycle_data, config, cuda, bfloat16=result.bfloat16) == pytest.approx(
        in_float32, rel=0.02
    )

    on_gpu = TrainedModel(model, cycle_data.scaler)
    on_gpu.save(tmp_path / "model.pt")
    on_cpu = TrainedModel.load(tmp_path / "model.pt")
    assert all(p.device.type == "cpu" for p in on_cpu.model.parameters())
    windows = cycle_data.windows[cycle_data.starts[Split.TEST][:200], :24]
    expected, scales = on_cpu.predict_scaled(windows)  # [B, H, T], [B, T]
    # Both in float32 (CUDA's convolutions may use TF32): in each window's scale, far within bfloat16's 2^-8.
    assert np.abs((on_gpu.predict(windows) - expected) / scales[:, None, :]).max() < 0.01


def test_cuda_batches_are_the_cpu_batches(cycle_data: StreamDataLoader) -> None:
    """Gathered and scaled on the GPU from the rows moved there once: the CPU's batches, bit for bit,
    in the same shuffled order."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for seed in (None, 5):
        on_cpu = cycle_data.batches(
            Split.TRAIN, batch_size=64, rng=None if seed is None else np.random.default_rng(seed)
        )
        on_gpu = cycle_data.batches(
            Split.TRAIN, batch_size=64, rng=None if seed is None else np.random.default_rng(seed), device="cuda"
        )
        for cpu_batch, gpu_batch in zip(on_cpu, on_gpu, strict=True):
            for mine, theirs in zip(cpu_batch, gpu_batch, strict=True):
                assert theirs.device.type == "cuda" and torch.equal(mine, theirs.cpu())


@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_default_sizes_and_shapes(kind: str, tmp_path: Path) -> None:
    """The shipped defaults build, map [B, L, F] to [B, H, T], and round-trip through a checkpoint."""
    config_class = MODEL_KINDS[kind][0]
    shape = ForecastShape(window=50, horizon=4)
    torch.manual_seed(0)
    model = build_model(config_class(), shape).eval()
    x = torch.randn(5, 50, shape.n_features)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (5, 4, 3)
    save_checkpoint(tmp_path / "m.pt", model, metrics={"latency_ms.mae": 1.0})
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert checkpoint.kind == kind and checkpoint.config == config_class() and checkpoint.shape == shape
    with torch.no_grad():
        assert torch.equal(checkpoint.build()(x), out)


def test_tcn_convolves_only_its_receptive_field_with_the_same_output_and_gradients() -> None:
    shape = ForecastShape(window=96, horizon=3, n_features=2, target_channels=(0,))
    model = TCNModel(TCNConfig(num_channels=(8, 8, 8), dropout=0.0), shape)
    assert model.receptive_field == model.config.receptive_field(96) == 29
    x = torch.randn(4, 96, 2, dtype=torch.float64)
    model.double()
    lengths: list[int] = []
    model.blocks.register_forward_hook(lambda _m, inputs, _out: lengths.append(inputs[0].shape[-1]))
    cropped = model(x)
    assert lengths == [29]  # the convolutions ran over the last 29 steps only
    full = model.head(model.blocks(x.transpose(1, 2))[:, :, -1]).view(-1, 3, 1)  # all 96
    torch.testing.assert_close(cropped, full)
    grad_cropped = torch.autograd.grad(cropped.sum(), list(model.parameters()))
    grad_full = torch.autograd.grad(
        model.head(model.blocks(x.transpose(1, 2))[:, :, -1]).sum(), list(model.parameters())
    )
    for mine, theirs in zip(grad_cropped, grad_full, strict=True):
        torch.testing.assert_close(mine, theirs)
    # A step before the receptive field changes nothing; the field's first step does.
    earlier, first = x.clone(), x.clone()
    earlier[:, 96 - 30] += 100.0
    first[:, 96 - 29] += 100.0
    assert torch.equal(model(earlier), cropped) and not torch.allclose(model(first), cropped)


def test_tcn_levels_cover_the_window_unless_fixed() -> None:
    """By default the fewest blocks whose receptive field covers the window: the forecast reads every
    step it is given. Fixed levels (what a search varies) and explicit widths (old checkpoints) stay."""
    default = TCNConfig()
    assert [len(default.block_channels(window)) for window in (10, 29, 30, 50, 61, 62, 96)] == [2, 3, 4, 4, 4, 5, 5]
    assert all(default.receptive_field(window) >= window for window in range(1, 500))
    assert default.block_channels(50) == (64, 64, 64, 64) and default.receptive_field(50) == 61
    assert TCNConfig(levels=2, channels=16).block_channels(96) == (16, 16)
    assert TCNConfig(num_channels=(64, 64, 64)).receptive_field(50) == 29  # as checkpoints before said
    shape = ForecastShape(window=50, horizon=1, n_features=2, target_channels=(0,))
    model = TCNModel(TCNConfig(channels=4, dropout=0.0), shape)
    x = torch.randn(2, 50, 2)
    first = x.clone()
    first[:, 0] += 100.0  # the window's first step reaches the forecast
    assert len(model.blocks) == 4 and not torch.allclose(model(first), model(x))


def test_nbeats_bases_are_exact_and_not_collinear() -> None:
    """Trend rows are exactly the polynomials of the shared time axis; seasonality rows are orthogonal
    over the window (harmonics capped at L/2 - 1, so a short window gets no aliased rows)."""
    from swarmlearn.models._nbeats import _Block, harmonics

    config = NBEATSConfig(layer_width=8, num_layers=1)
    for window in (6, 10, 24, 96):
        shape = ForecastShape(window=window, horizon=4, n_features=1, target_channels=(0,))
        trend = _Block(models.StackType.TREND, config, shape)
        times = torch.arange(-window + 1, 5, dtype=torch.float32) / window
        expected = torch.stack([times**p for p in range(config.trend_degree + 1)])
        assert torch.equal(trend.backcast_basis, expected[:, :window]) and torch.equal(
            trend.forecast_basis, expected[:, window:]
        )
        season = _Block(models.StackType.SEASONALITY, config, shape).backcast_basis.double()  # [1 + 2K, L]
        assert harmonics(config, window) == max(1, min(8, window // 2 - 1))
        assert season.shape[0] == 1 + 2 * harmonics(config, window)
        gram = season @ season.T
        off_diagonal = gram - torch.diag(torch.diag(gram))
        assert off_diagonal.abs().max() < 1e-4 * gram.diag().max()
        assert torch.linalg.matrix_rank(season) == season.shape[0]


def test_documented_defaults() -> None:
    assert (LSTMConfig().hidden_size, LSTMConfig().num_layers, LSTMConfig().dropout) == (128, 2, 0.2)
    tcn = TCNConfig()
    assert (tcn.channels, tcn.levels, tcn.kernel_size, tcn.dropout, tcn.num_channels) == (64, 0, 3, 0.2, ())
    nbeats = NBEATSConfig()
    assert [s.value for s in nbeats.stack_types] == ["trend", "seasonality", "generic"]
    assert (nbeats.num_blocks, nbeats.num_layers, nbeats.layer_width) == (4, 4, 256)


def test_config_from_dict_validates() -> None:
    assert config_from_dict("tcn", {"num_channels": [8, 8]}) == TCNConfig(num_channels=(8, 8))
    nbeats = config_from_dict("nbeats", {"stack_types": ["generic"]})
    assert isinstance(nbeats, NBEATSConfig) and nbeats.stack_types == (models.StackType.GENERIC,)
    with pytest.raises(ValueError, match="unknown model kind"):
        config_from_dict("transformer", {})
    with pytest.raises(ValueError, match="no field hidden"):
        config_from_dict("lstm", {"hidden": 3})
    with pytest.raises(ValueError, match="invalid lstm"):
        config_from_dict("lstm", {"dropout": 1.5})


def test_an_ensemble_forecasts_the_median_of_its_members_each_trained_on_its_own_loss(tmp_path: Path) -> None:
    config = config_from_dict("ensemble", {"lstm": {"hidden_size": 8}, "tcn": {"num_channels": [4, 4]}})
    assert isinstance(config, EnsembleConfig)
    assert config.lstm == LSTMConfig(hidden_size=8, num_layers=1)  # over the ensemble's defaults for it
    assert config.nbeats == EnsembleConfig().nbeats
    shape = ForecastShape(window=16, horizon=2)
    torch.manual_seed(0)
    model = build_model(config, shape)
    assert isinstance(model, EnsembleModel) and list(model.members) == ["lstm", "tcn", "nbeats"]
    x, y = torch.randn(6, 16, shape.n_features), torch.randn(6, 2, 3)
    model.eval()
    with torch.no_grad():
        each = torch.stack([member(x) for member in model.members.values()])
        assert torch.equal(model(x), each.median(dim=0).values)
        # The median ignores one member gone wild (the mean would not).
        model.members["tcn"].head.bias.fill_(1e6)  # type: ignore[union-attr,operator]
        wild = torch.stack([member(x) for member in model.members.values()])
        assert torch.equal(model(x), wild.median(dim=0).values) and model(x).abs().max() < 1e3
        loss = torch.nn.functional.mse_loss
        expected = sum(loss(member(x), y) for member in model.members.values())
        assert torch.allclose(model.training_loss(x, y, loss), expected)  # type: ignore[arg-type]

    pair = build_model(EnsembleConfig(members=("lstm", "nbeats")), shape).eval()
    with torch.no_grad():
        assert torch.allclose(pair(x), (pair.members["lstm"](x) + pair.members["nbeats"](x)) / 2)

    save_checkpoint(tmp_path / "e.pt", model)
    assert load_checkpoint(tmp_path / "e.pt").config == config  # nested configs round-trip through JSON
    with pytest.raises(ValueError, match="two or three of lstm, tcn, nbeats"):
        config_from_dict("ensemble", {"members": ["lstm"]})
    with pytest.raises(ValueError, match="lstm has no field width"):
        config_from_dict("ensemble", {"lstm": {"width": 3}})


def test_an_ensemble_learns_its_combination_from_the_validation_windows() -> None:
    shape = ForecastShape(window=16, horizon=2)
    torch.manual_seed(0)
    model = build_model(SMALL["ensemble"], shape).eval()
    assert isinstance(model, EnsembleModel) and not model.weights.any()  # not learned yet: the median
    x = torch.randn(200, 16, shape.n_features)
    with torch.no_grad():
        each = torch.stack([member(x) for member in model.members.values()])  # [M, B, H, T]
    # Validation targets that the TCN member forecasts within noise, the others not: it gets the weight.
    y = each[1] + 0.01 * torch.randn_like(each[1])
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 200, 64)]
    assert model.after_training(batches, torch.nn.L1Loss())
    weights = model.weights
    assert weights.shape == (3, 3) and torch.allclose(weights.sum(dim=1), torch.ones(3))
    assert (weights >= 0).all() and (weights[:, 1] > 0.9).all(), weights
    with torch.no_grad():
        assert torch.allclose(model(x), torch.einsum("tm,mbht->bht", weights, each), atol=1e-6)
        assert (model(x) - y).abs().mean() < 0.5 * (each.median(dim=0).values - y).abs().mean()
    # Where the targets are another member's, that one gets it: learned from the data, not fixed.
    y = each[2] + 0.01 * torch.randn_like(each[2])
    assert model.after_training([(x, y)], torch.nn.L1Loss()) and (model.weights[:, 2] > 0.9).all()

    median = build_model(dataclasses.replace(SMALL["ensemble"], combination="median"), shape).eval()
    assert not median.after_training(batches, torch.nn.L1Loss()) and not median.weights.any()
    with pytest.raises(ValueError, match="combination must be one of weighted, median"):
        config_from_dict("ensemble", {"combination": "mean"})


def test_after_training_reads_every_kth_validation_window_up_to_the_limit(
    cycle_data: StreamDataLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = next(cycle_data.batches(Split.VALIDATION, batch_size=10_000))
    count = len(every.x)
    assert count > 40
    for limit in (count, 40, 7):
        monkeypatch.setattr(_loop, "AFTER_TRAINING_WINDOWS", limit)
        stride = -(-count // limit)
        parts = list(_loop._thinned(cycle_data, torch.device("cpu"), batch_size=9))  # batches the stride straddles
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        assert len(x) <= limit and torch.equal(x, every.x[::stride]) and torch.equal(y, every.y[::stride])


def test_fit_gives_the_ensemble_weight_to_the_member_that_is_best_on_validation(
    cycle_data: StreamDataLoader, tmp_path: Path
) -> None:
    ensemble_config = SMALL["ensemble"]
    assert isinstance(ensemble_config, EnsembleConfig)
    shape = ForecastShape(window=24, horizon=HORIZON)
    config = TrainingConfig(models=(ensemble_config,), window=24, horizon=HORIZON, max_epochs=25, seed=3)
    with seeded(3):
        tcn = build_model(ensemble_config.tcn, shape)
    fit(tcn, cycle_data, config)  # a trained TCN; the other members stay at their initial weights
    with seeded(3):
        model = build_model(ensemble_config, shape)
    assert isinstance(model, EnsembleModel)
    model.members["tcn"].load_state_dict(tcn.state_dict())
    no_steps = dataclasses.replace(config, max_steps=0)
    result = fit(model, cycle_data, no_steps, initial_state=model.state_dict())
    assert (model.weights[:, 1] > 0.8).all(), model.weights  # learned in fit, from the validation windows
    device = torch.device("cpu")
    assert result.best_val_loss == pytest.approx(validation_loss(model, cycle_data, no_steps, device))
    median = dataclasses.replace(no_steps, models=(dataclasses.replace(ensemble_config, combination="median"),))
    unweighted = build_model(median.models[0], shape)
    unweighted.load_state_dict({**model.state_dict(), "weights": torch.zeros_like(model.weights)})
    assert result.best_val_loss < 0.8 * validation_loss(unweighted, cycle_data, median, device)

    # Kept in the checkpoint and served from it.
    trained = TrainedModel(model, cycle_data.scaler)
    trained.save(tmp_path / "e.pt")
    restored = TrainedModel.load(tmp_path / "e.pt")
    assert isinstance(restored.model, EnsembleModel) and torch.equal(restored.model.weights, model.weights)
    windows = cycle_data.windows[cycle_data.starts[Split.TEST][:50], :24]
    assert np.array_equal(restored.predict(windows), trained.predict(windows))

    # A checkpoint from before the weights (no "weights" in its state dict) loads and serves the median.
    old = torch.load(tmp_path / "e.pt", weights_only=True)
    del old["state_dict"]["weights"]
    torch.save(old, tmp_path / "old.pt")
    before = TrainedModel.load(tmp_path / "old.pt")
    assert isinstance(before.model, EnsembleModel) and not before.model.weights.any()
    x = torch.from_numpy(cycle_data.windows[cycle_data.starts[Split.TEST][:50], :24].copy())
    with torch.no_grad():
        members = torch.stack([member(x) for member in before.model.members.values()])
        assert torch.equal(before.model(x), members.median(dim=0).values)


def test_checkpoint_bytes_land_as_the_same_checkpoint(tmp_path: Path) -> None:
    shape = ForecastShape(window=8, horizon=2, n_features=3, target_channels=(0,))
    model = build_model(TCNConfig(num_channels=(4,)), shape)
    save_checkpoint(tmp_path / "there.pt", model, metrics={"latency_ms.mae": 2.0})
    (tmp_path / "here").mkdir()
    models.write_checkpoint_bytes(tmp_path / "here" / "m.pt", (tmp_path / "there.pt").read_bytes())
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == ["m.pt"]  # no temporary file left
    landed = load_checkpoint(tmp_path / "here" / "m.pt")
    x = torch.randn(2, 8, 3)
    with torch.no_grad():
        assert landed.metrics == {"latency_ms.mae": 2.0} and torch.equal(landed.build()(x), model.eval()(x))


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a swarmlearn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_the_daemon_process_does_not_import_torch() -> None:
    """torch costs seconds of start-up and hundreds of MB; only training and Predict's models need it."""
    code = "import sys, swarmlearn.server, swarmlearn.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)

"""Training throughput per device: the same models, windows and seed on the CPU and on CUDA (the GPU path).

    python benchmarks/training_devices.py [--devices cpu,cuda] [--models lstm,tcn,nbeats] [--batch-sizes 64]
                                          [--agents 8] [--events-per-agent 2000] [--epochs 2] [--threads N]

The synthetic swarm (``swarmlearn.synthetic``: ``--agents`` agents, ``--events-per-agent`` events each) windowed
as a training job does (``StreamDataLoader``, L = 50, H = 1, per-window scaling), then for each model at its
default size, batch size and device one ``fit`` of ``--epochs`` epochs (no early stopping) from the same seed,
on a loader of its own, so each cell pays its windows' one-time set-up (centers and scales, the copy to the
device) as a training job does. On CUDA each cell runs twice, with ``mixed_precision`` (bfloat16 autocast where
the GPU computes in bfloat16) and without, after a warm-up fit of a few steps (CUDA's context and kernel
choices are not the steady state).

One table: model, device, precision, batch, training windows/s (training steps only, as ``fit`` reports it),
seconds per epoch (the fit's wall time over its epochs: set-up and validation included) and the last epoch's
training and validation loss (scaled MAE; the same model and seed, so the devices' columns should be close).
``--devices cuda`` without a CUDA device stops at once with an error.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence

import torch

from swarmlearn.events import Event
from swarmlearn.models import MODEL_KINDS, ForecastShape, build_model, config_from_dict
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import StreamDataLoader, TrainingConfig, TrainResult, fit, seeded

SEED = 1
WINDOW = 50


def train(events: Sequence[Event], kind: str, device: str, batch_size: int, epochs: int, **extra: bool) -> TrainResult:
    """One fit of ``kind`` at its default size on a loader of its own; ``extra``: more ``TrainingConfig`` fields."""
    config = TrainingConfig(
        models=(config_from_dict(kind),),
        window=WINDOW,
        batch_size=batch_size,
        max_epochs=epochs,
        patience=epochs,  # no early stopping
        seed=SEED,
        device=device,
        **extra,
    )
    data = StreamDataLoader(events, config)
    with seeded(SEED):
        model = build_model(config.models[0], ForecastShape(window=WINDOW, horizon=1))
    return fit(model, data, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--models", default="lstm,tcn,nbeats")
    parser.add_argument("--batch-sizes", default="64", help="comma-separated")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--events-per-agent", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads on the CPU (default: torch's)")
    args = parser.parse_args()
    devices = [d for d in args.devices.split(",") if d]
    kinds = [k for k in args.models.split(",") if k]
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODEL_KINDS)}")
    if any(torch.device(d).type == "cuda" for d in devices) and not torch.cuda.is_available():
        parser.error(f"--devices {args.devices}: torch {torch.__version__} sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    events = list(generate_swarm(agents=args.agents, events_per_agent=args.events_per_agent, seed=SEED))
    gpu = next((torch.cuda.get_device_name(d) for d in devices if torch.device(d).type == "cuda"), "none")
    print(
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"GPU {gpu}, python {platform.python_version()}, torch {torch.__version__}; {len(events)} events of "
        f"{args.agents} agents, L = {WINDOW}, H = 1, {args.epochs} epochs, seed {SEED}; load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print("| model | device | precision | batch | windows/s | s/epoch | train loss | val loss |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for batch_size in batch_sizes:
            for device in devices:
                precisions = [True, False] if torch.device(device).type == "cuda" else [None]
                for mixed in precisions:
                    extra = {} if mixed is None else {"mixed_precision": mixed}
                    if mixed is not None:  # warm up CUDA: context, kernels, allocator
                        train(events[: 300 * args.agents], kind, device, batch_size, 1, **extra)
                    start = time.perf_counter()
                    result = train(events, kind, device, batch_size, args.epochs, **extra)
                    seconds = time.perf_counter() - start
                    # getattr: absent before the GPU path, whose CPU side-by-side runs this script on both.
                    precision = "bf16 autocast" if getattr(result, "bfloat16", False) else "fp32"
                    _, train_loss, val_loss = result.history[-1]
                    print(
                        f"| {kind} | {device} | {precision} | {batch_size} | {result.windows_per_second:,.0f} | "
                        f"{seconds / max(result.epochs, 1):.2f} | {train_loss:.4f} | {val_loss:.4f} |",
                        flush=True,
                    )
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

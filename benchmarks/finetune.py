"""Fine-tuning against retraining, on real streams (issue 15, item 4).

    python benchmarks/finetune.py [--data-dir DIR] [--agents 8] [--events 2000] [--kind lstm] [--seeds 3]

The scheduled retraining as the daemon does it, on ``--agents`` streams of
``shared/data/vm_noise_pg_westus2`` (the first ``--events`` of each, as events through the daemon's own
decoder): a champion is trained from scratch on the first 60 % of every stream; then, with 80 % of
every stream known, three ways to make its successor are trained on the same data and judged on the
same test windows (the latest 15 % of what is known, which the champion never saw):

- ``retrain``: what a training job does without ``fine_tune``: start from the champion's weights and
  train the full budget (``max_epochs``, early stopping on validation) at the full learning rate;
- ``fine-tune``: ``fine_tune``: the champion's weights, at most ``fine_tune_epochs`` epochs at
  ``learning_rate x fine_tune_lr_scale``;
- ``scratch``: a new model, the full budget;
- and the ``champion`` itself, untouched, on those test windows.

Printed: per way, the test MAE of latency and throughput, the geometric mean of their MASE,
the epochs run and the seconds, as the median over ``--seeds`` seeds, and each way's ratio to the
champion.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(data_dir: Path, agents: int, events: int) -> list[list[object]]:
    """Per agent, its events (domain ``Event``s) in time order."""
    import replay

    from swarmlearn.server._convert import decode_batch

    streams = replay.vm_streams(data_dir, agents, events)
    return [[e for _, e in decode_batch(s.events, len(s.events))[0]] for s in streams]


def judge(model: Any, data: Any, config: Any) -> tuple[float, float, float]:
    """Latency's and throughput's test MAE, and the geometric mean of their MASE (the VM streams have
    no failures, so success has no MASE)."""
    from swarmlearn.training import Split, evaluate, forecast

    predicted = forecast(model, data, Split.TEST, config.eval_batch_size)
    targets = ("latency_ms", "tokens_per_second", "success_rate")
    truth = data.targets(Split.TEST)
    evaluation = evaluate(truth, predicted, targets=targets, naive_scale=data.naive_scale, thresholds={})
    lat, tps = (evaluation.targets[t] for t in targets[:2])
    return lat.mae, tps.mae, (lat.mase * tps.mase) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SWARMLEARN_SHARED_DATA", DEFAULT_DATA)))
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--kind", default="lstm")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=30)
    args = parser.parse_args()

    import torch

    from swarmlearn.training import StreamDataLoader, TrainingConfig, TrainingPipeline

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    streams = load(args.data_dir, args.agents, args.events)
    known = [e for s in streams for e in s[: len(s) * 4 // 5]]
    first = [e for s in streams for e in s[: len(s) * 3 // 5]]
    print(f"# fine-tune vs retrain: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"torch {torch.__version__}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"# {len(streams)} VM streams, {len(first)} events for the champion, {len(known)} known at the retraining")
    rows: dict[str, list[tuple[float, float, float, int, float]]] = {}
    for seed in range(args.seeds):
        config = TrainingConfig.for_job(
            args.kind, 1, {"training": {"window": 20, "seed": seed}}, max_epochs=args.max_epochs
        )
        pipeline = TrainingPipeline(config)
        champion = pipeline.train(StreamDataLoader(first, config), config.models[0]).model
        data = StreamDataLoader(known, config, scaler=champion.scaler)

        rows.setdefault("champion", []).append((*judge(champion.model, data, config), 0, 0.0))
        for name, way, warm in (
            ("retrain", config, champion.state_dict()),
            ("fine-tune", config.fine_tuning(), champion.state_dict()),
            ("scratch", config, None),
        ):
            started = time.perf_counter()
            report = TrainingPipeline(way).train(data, way.models[0], initial_state=warm)
            seconds = time.perf_counter() - started
            rows.setdefault(name, []).append(
                (*judge(report.model.model, data, config), report.training.epochs, seconds)
            )
    base = [statistics.median(v[i] for v in rows["champion"]) for i in range(3)]
    print()
    print("| way | latency MAE | tokens/s MAE | gm MASE | / champion (lat, tps, gm) | epochs | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        med = [statistics.median(v[i] for v in values) for i in range(5)]
        ratios = ", ".join(f"{med[i] / base[i]:.3f}" for i in range(3))
        print(f"| {name} | {med[0]:.4f} | {med[1]:.1f} | {med[2]:.3f} | {ratios} | {med[3]:.0f} | {med[4]:.1f} |")


if __name__ == "__main__":
    main()

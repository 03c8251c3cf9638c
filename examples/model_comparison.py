"""LSTM, TCN and N-BEATS at their default sizes on the same synthetic swarm and windows: accuracy per
target beside the naive forecast, training throughput and single-window predict latency.

    python examples/model_comparison.py

About 40-55 s on a 2-core CPU: each model gets a budget of 300 optimizer steps (as the reference
runs of EVALUATION.md), with early stopping on the validation loss.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from swarmlearn.features import event_features
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import TrainedModel, TrainingConfig, TrainingPipeline


def predict_latency_ms(model: TrainedModel, window: np.ndarray, calls: int = 200) -> tuple[float, float]:
    """Median and 99th percentile of one ``predict`` call on one window (scaling included), in ms."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict(window)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (calls - 1))]


def main() -> None:
    events = list(generate_swarm(agents=6, events_per_agent=700, seed=3))
    config = TrainingConfig(max_steps=300, max_epochs=30, patience=3)
    print(f"{len(events)} events of 6 agents, window {config.window}, horizon {config.horizon}")
    result = TrainingPipeline(config).run(events)
    print(f"windows {result.windows}\n")

    planner = [e for e in events if e.agent_id == "planner"]
    one_window = np.asarray([event_features(e) for e in planner[-config.window :]], dtype=np.float32)  # [L, F]
    reports = list(result.reports.values())
    for report in reports:
        training = report.training
        parameters = sum(p.numel() for p in report.model.model.parameters())
        p50, p99 = predict_latency_ms(report.model, one_window)
        print(
            f"{report.kind:6s} {parameters / 1e6:5.2f} M parameters: {training.seconds:5.1f} s for "
            f"{training.steps} steps ({training.stop_reason}), {training.windows_per_second:6,.0f} training windows/s; "
            f"predict one window p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )

    print("\ntest MASE per target (lower is better), the naive forecast on the same windows last:")
    print(f"  {'':20s}" + "".join(f"{r.kind:>9s}" for r in reports) + f"{'naive':>9s}")
    for target, naive in result.naive_test.targets.items():
        cells = "".join(f"{r.test.targets[target].mase:9.3f}" for r in reports)
        print(f"  {target:20s}{cells}{naive.mase:9.3f}")
    cells = "".join(f"{r.test.geometric_mase():9.3f}" for r in reports)
    print(f"  {'geometric mean':20s}{cells}{result.naive_test.geometric_mase():9.3f}")
    print("accuracy, |error| below the threshold:")
    for target, threshold in config.thresholds.items():
        cells = "".join(f"{r.test.targets[target].accuracy or 0:9.1%}" for r in reports)
        label = f"{target} < {threshold:g}"
        print(f"  {label:20s}{cells}{result.naive_test.targets[target].accuracy or 0:9.1%}")
    print(f"\nchosen on the validation split: {result.best.kind}")


if __name__ == "__main__":
    main()

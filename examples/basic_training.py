"""Train an LSTM forecaster on a synthetic swarm, compare it with the naive forecast, save it, reload
it and forecast an agent's next events.

    python examples/basic_training.py

About 15-30 s on a 2-core CPU.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from swarmlearn.models import LSTMConfig
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import Progress, TrainedModel, TrainingConfig, TrainingPipeline


def show(progress: Progress) -> None:
    print(
        f"  {progress.kind} epoch {progress.epoch:2d}/{progress.max_epochs}: "
        f"train {progress.train_loss:.4f}  validation {progress.val_loss:.4f}  best {progress.best_val_loss:.4f}"
    )


def main() -> None:
    events = list(generate_swarm(agents=6, events_per_agent=800, seed=7))
    print(f"{len(events)} events of 6 agents; forecasting the next 3 events of each from its last 50")
    config = TrainingConfig(models=(LSTMConfig(hidden_size=64),), horizon=3, max_epochs=20, patience=4)
    started = time.perf_counter()
    result = TrainingPipeline(config).run(events, progress=show)
    report = result.reports["lstm"]
    print(
        f"trained in {time.perf_counter() - started:.1f} s ({report.training.stop_reason}, best epoch "
        f"{report.training.best_epoch}, {report.training.windows_per_second:,.0f} windows/s); windows {result.windows}"
    )

    print("\ntest split, per target (MAE, MASE, R², accuracy), model against naive on the same windows:")
    for target, mine in report.test.targets.items():
        naive = result.naive_test.targets[target]
        accuracy = f"{mine.accuracy:.1%} vs {naive.accuracy:.1%}" if mine.accuracy is not None else "-"
        print(
            f"  {target:18s} MAE {mine.mae:9.4g} vs {naive.mae:9.4g}   MASE {mine.mase:.3f} vs {naive.mase:.3f}   "
            f"R² {mine.r2:6.3f} vs {naive.r2:6.3f}   accuracy {accuracy}"
        )

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lstm.pt"
        result.best.save(path)
        model = TrainedModel.load(path)
        print(f"\nsaved and reloaded {path.name} ({path.stat().st_size / 1e6:.1f} MB)")
    coder = [e for e in events if e.agent_id == "coder"]
    forecast = model.predict_events(coder)  # [H, T], original units
    print("coder's next 3 events (latency ms, tokens/s, success rate):")
    for step, (latency, tokens, success) in enumerate(forecast, start=1):
        print(f"  step {step}: {latency:7.1f} ms  {tokens:5.1f} tok/s  {success:.3f}")


if __name__ == "__main__":
    main()

"""Running statistics of one agent.

What GetAgentStats reports beside the experts: per performance metric the running mean, standard
deviation and EWMA, over the values the agent's events taught (latency and throughput from successful
outcomes, success from outcomes, memory and CPU from any event that carried them: see ``_learner``);
p50/p95/p99 of latency and throughput (River's P² ``stats.Quantile``: constant memory, no window); the
error rate (share of outcomes with a ``success_rate`` below ``FAILURE_BELOW``), all-time and recent;
the inter-arrival time (between consecutive events of the agent in log order, never negative), all-time
and recent; and the features of the last event, what it carried of them. Statistics without data are
left out (never NaN). Means, variances and EWMAs are plain floats updated in place (Welford's method):
about half the cost of River's ``Var`` and ``EWMean`` calls for the five metrics.
"""

from __future__ import annotations

import math

from river import stats

from swarmlearn.events import FAILURE_BELOW, METRICS, Event, EventType
from swarmlearn.features import FEATURE_NAMES, event_features
from swarmlearn.online._config import OnlineConfig

QUANTILE_METRICS: tuple[str, ...] = ("latency_ms", "tokens_per_second")
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


class RunningStats:
    __slots__ = (
        "alpha", "count", "errors", "events", "ewma", "gap_sum", "last_event", "last_timestamp", "mean", "outcomes",
        "quantiles", "recent_errors", "recent_gap", "square",
    )  # fmt: skip

    def __init__(self, config: OnlineConfig) -> None:
        self.alpha = config.ewma_alpha
        size = len(METRICS)
        self.count = [0] * size
        self.mean = [0.0] * size
        self.square = [0.0] * size
        self.ewma = [0.0] * size
        self.quantiles = [[stats.Quantile(q) for _, q in QUANTILES] for _ in QUANTILE_METRICS]
        self.events = 0
        self.outcomes = 0
        self.errors = 0
        self.recent_errors = 0.0
        self.gap_sum = 0.0
        self.recent_gap = 0.0
        self.last_timestamp: float | None = None
        self.last_event: Event | None = None

    def update(self, event: Event, targets: tuple[float | None, ...]) -> None:
        """``targets``: latency, throughput and success as this event teaches them (None where not)."""
        latency, throughput, success = targets
        alpha = self.alpha
        count, mean, square, ewma = self.count, self.mean, self.square, self.ewma
        for i, value in enumerate((latency, throughput, event.memory_usage_mb, event.cpu_usage_percent, success)):
            if value is not None:
                n = count[i] = count[i] + 1
                delta = value - mean[i]
                mean[i] += delta / n
                square[i] += delta * (value - mean[i])
                ewma[i] = value if n == 1 else ewma[i] + alpha * (value - ewma[i])
        for estimators, value in zip(self.quantiles, (latency, throughput), strict=True):
            if value is not None:
                for estimator in estimators:
                    estimator.update(value)
        self.events += 1
        if success is not None:
            failed = 1.0 if success < FAILURE_BELOW else 0.0
            self.outcomes += 1
            self.errors += int(failed)
            self.recent_errors = (
                failed if self.outcomes == 1 else self.recent_errors + alpha * (failed - self.recent_errors)
            )
        timestamp = event.timestamp
        if self.last_timestamp is not None:
            gap = max(0.0, timestamp - self.last_timestamp)
            self.gap_sum += gap
            self.recent_gap = gap if self.events == 2 else self.recent_gap + alpha * (gap - self.recent_gap)
        self.last_timestamp = timestamp
        self.last_event = event

    def __getstate__(self) -> dict[str, object]:
        # A snapshot holds the last event as plain values: its type as a number, no attributes (the
        # snapshot's unpickler admits only learner classes, and a mappingproxy cannot be pickled).
        state = {name: getattr(self, name) for name in self.__slots__}
        if self.last_event is not None:
            state["last_event"] = (*self.last_event[:3], int(self.last_event[3]), *self.last_event[4:13])
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        last = state["last_event"]
        if isinstance(last, tuple) and not isinstance(last, Event):
            state["last_event"] = Event(*last[:3], EventType(last[3]), *last[4:])  # type: ignore[arg-type, call-arg]
        for name, value in state.items():
            setattr(self, name, value)

    def features(self) -> dict[str, float]:
        """Everything by name: ``<metric>.mean|std|ewma``, ``<metric>.p50|p95|p99``, ``error_rate[.ewma]``,
        ``inter_arrival_s.mean|ewma``, ``last.<feature>``. Statistics without data yet are left out."""
        out: dict[str, float] = {}
        if self.last_event is None:
            return out
        for i, name in enumerate(METRICS):
            if self.count[i]:
                out[f"{name}.mean"] = self.mean[i]
                n = self.count[i]
                out[f"{name}.std"] = math.sqrt(self.square[i] / (n - 1)) if n > 1 else 0.0  # the sample's
                out[f"{name}.ewma"] = self.ewma[i]
        for name, estimators in zip(QUANTILE_METRICS, self.quantiles, strict=True):
            if self.count[METRICS.index(name)]:
                for (label, _), estimator in zip(QUANTILES, estimators, strict=True):
                    out[f"{name}.{label}"] = float(estimator.get())
        if self.outcomes:
            out["error_rate"] = self.errors / self.outcomes
            out["error_rate.ewma"] = self.recent_errors
        if self.events > 1:
            out["inter_arrival_s.mean"] = self.gap_sum / (self.events - 1)
            out["inter_arrival_s.ewma"] = self.recent_gap
        last = event_features(self.last_event)  # made here, on request, not for every event
        out.update(
            (f"last.{name}", value) for name, value in zip(FEATURE_NAMES, last, strict=True) if not math.isnan(value)
        )
        return out

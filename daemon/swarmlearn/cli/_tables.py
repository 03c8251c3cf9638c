"""The command line's tables: what an agent's stats, baselines and forecasts look like on a terminal."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from swarmlearn.names import TARGETS
from swarmlearn_client import AgentStats, Forecast, Job, ModelVersion, PromptCandidate, PromptRanking


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.1f}"


def agents_table(agents: Sequence[AgentStats]) -> Table:
    table = Table(title="agents")
    for column in (
        "agent",
        "events",
        "prompt events",
        "mean latency ms",
        "mean tokens/s",
        "mean success",
        "last event",
    ):
        table.add_column(
            column, justify="left" if column in ("agent", "last event") else "right", no_wrap=column == "agent"
        )
    for a in agents:
        m = a.mean_metrics
        last = a.last_event_time.strftime("%Y-%m-%d %H:%M") if a.last_event_time else "-"
        table.add_row(
            a.agent_id,
            str(a.event_count),
            str(a.prompt_event_count),
            _number(m.latency_ms, 1),
            _number(m.tokens_per_second, 1),
            _number(m.success_rate),
            last,
        )
    return table


def baselines_table(agents: Sequence[AgentStats]) -> Table:
    """Per agent and target: the expert with the largest weight (and its weight), the error of what
    was answered (the aggregate), the naive error, the share of observations inside the 80 %
    intervals, and drifts. Errors are progressive validation: every forecast scored before its value
    was learned."""
    table = Table(title="online forecasts (MAE of each forecast, scored before its value was learned)")
    for column in ("agent", "target", "top expert", "MAE", "naive MAE", "vs naive", "in 80%", "drifts", "last drift"):
        table.add_column(
            column, justify="left" if column in ("agent", "target", "top expert", "last drift") else "right"
        )
    for a in agents:
        drift = {d.target: d for d in a.drift}
        for target in TARGETS:
            mine = {b.model_kind: b for b in a.baselines if b.target == target}
            best = next((b for b in mine.values() if b.best), None)
            naive = mine.get("online:naive")
            if best is None:
                continue
            answered = a.answered_mae.get(target)
            ratio = "-"
            if answered is not None and naive is not None and naive.running_mae:
                ratio = f"{answered / naive.running_mae:.2f}"
            d = drift.get(target)
            last = d.last_drift_time.strftime("%Y-%m-%d %H:%M") if d and d.last_drift_time else "-"
            table.add_row(
                a.agent_id,
                target,
                f"{best.model_kind.removeprefix('online:')} ({_number(best.weight, 2)})",
                _number(answered),
                _number(naive.running_mae if naive else None),
                ratio,
                _number(a.interval_coverage.get(target)),
                str(d.drift_count if d else 0),
                last,
            )
    return table


def baseline_detail_table(stats: AgentStats) -> Table:
    title = f"online experts of {stats.agent_id} and their weights (as of log sequence {stats.online_sequence})"
    table = Table(title=title)
    for column in ("target", "expert", "weight", "MAE", "scored"):
        table.add_column(column, justify="left" if column in ("target", "expert") else "right")
    for b in stats.baselines:
        table.add_row(b.target, b.model_kind, _number(b.weight, 3), _number(b.running_mae), str(b.scored))
    return table


def features_table(stats: AgentStats) -> Table:
    table = Table(title=f"online statistics of {stats.agent_id}", show_header=False)
    table.add_column("name")
    table.add_column("value", justify="right")
    for name in sorted(stats.features):
        if not name.startswith("last."):
            table.add_row(name, _number(stats.features[name], 4))
    return table


def forecast_table(forecast: Forecast) -> Table:
    table = Table(title=f"forecast for {forecast.agent_id} (as of log sequence {forecast.as_of_sequence})")
    for column in ("target", "step", "value", "interval", "model", "MAE"):
        table.add_column(column, justify="left" if column in ("target", "model", "interval") else "right")
    for f in forecast.forecasts:
        if not f.points:
            table.add_row(f.target, "-", "-", "not observed yet", f.model_kind, "-")
        for p in f.points:
            table.add_row(
                f.target if p.step == 1 else "",
                str(p.step),
                _number(p.value),
                f"[{_number(p.lower)}, {_number(p.upper)}]",
                f.model_kind if p.step == 1 else "",
                _number(f.running_mae) if p.step == 1 else "",
            )
    return table


def ranking_table(ranking: PromptRanking, candidates: Sequence[PromptCandidate]) -> Table:
    scope = "the swarm's models (agent unknown or young)" if ranking.used_global_model else "the agent's models"
    title = f"prompts for {ranking.agent_id}, best first; answered by {scope}"
    if ranking.selected_variant:
        title += f"; use variant {ranking.selected_variant!r} next"
    table = Table(title=title)
    for column in ("#", "prompt", "variant", "score", "±", "quality", "success", "latency ms", "response tokens"):
        table.add_column(column, justify="left" if column in ("prompt", "variant") else "right")
    for rank, r in enumerate(ranking.ranked, start=1):
        text = candidates[r.index].text
        table.add_row(
            str(rank),
            text if len(text) <= 60 else text[:57] + "...",
            r.variant,
            f"{r.score:.3f}",
            f"{r.uncertainty:.3f}",
            f"{r.predicted_quality:.3f}",
            f"{r.predicted_success:.3f}",
            f"{r.predicted_latency_ms:,.0f}",
            f"{r.predicted_response_tokens:,.0f}",
        )
    return table


def prompt_learning_table(rows: Sequence[Mapping[str, Any]], prompts: Sequence[str]) -> Table:
    table = Table(title=f"prompt scores for coder as events arrive: good = {prompts[0]!r}, bad = {prompts[1]!r}")
    for column in ("events learned", "good quality", "bad quality", "good score", "bad score", "good first"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['events']:,}",
            f"{row['good_quality']:.3f}",
            f"{row['bad_quality']:.3f}",
            f"{row['good_score']:.3f}",
            f"{row['bad_score']:.3f}",
            "yes" if row["good_ranked_first"] else "no",
        )
    return table


def jobs_table(jobs: Sequence[Job]) -> Table:
    table = Table(title="jobs, newest first")
    for column in ("job", "kind", "state", "scope", "model", "progress", "val loss", "made", "started"):
        table.add_column(column, justify="right" if column in ("progress", "val loss") else "left")
    for j in jobs:
        p = j.progress
        started = j.started_time.strftime("%Y-%m-%d %H:%M:%S") if j.started_time else "-"
        if j.kind == "tuning":
            done, loss = f"trial {p.trials_done}/{p.total_trials}", _number(p.best_objective if p.trials_done else None)
        else:
            done, loss = f"epoch {p.epoch}/{p.total_epochs}", f"{p.val_loss:.4f}" if p.epoch else "-"
        table.add_row(
            j.job_id, j.kind, j.state, j.scope or "(swarm)", j.model_kind, done, loss, j.model_version or "-", started
        )  # fmt: skip
    return table


def trials_table(job: Job) -> Table:
    """A tuning job's trials, best first; the parameters as columns."""
    table = Table(title=f"trials of {job.job_id} (lower is better)")
    names = sorted({name for t in job.trials for name in t.params})
    for column in ("trial", "status", "objective", "epochs", *names):
        table.add_column(column, justify="left" if column == "status" else "right")
    ranked = sorted(job.trials, key=lambda t: (t.objective is None, t.objective or 0.0, t.index))
    for t in ranked:
        values = [_param(t.params.get(name)) for name in names]
        table.add_row(str(t.index), t.status, _number(t.objective), str(t.epochs), *values)
    return table


def _param(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def models_table(models: Sequence[ModelVersion]) -> Table:
    table = Table(title="model registry (test-split errors of the run that made each)")
    for column in ("scope", "model", "version", "champion", "latency MAE", "tokens/s MAE", "success MAE", "job"):
        table.add_column(column, justify="left" if column in ("scope", "model", "job") else "right")
    for m in models:
        table.add_row(
            m.scope or "(swarm)", m.model_kind, str(m.version), "yes" if m.champion else "",
            _number(m.metrics.get("latency_ms.mae")), _number(m.metrics.get("tokens_per_second.mae")),
            _number(m.metrics.get("success_rate.mae")), m.job_id,
        )  # fmt: skip
    return table

"""Commands that talk to a running daemon over gRPC, through swarmlearn_client only (the token file
is read as the daemon reads it)."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from swarmlearn.cli._output import _jsonable, _print_json, err, out
from swarmlearn.cli._settings import _settings
from swarmlearn.cli._tables import (
    agents_table,
    baseline_detail_table,
    baselines_table,
    features_table,
    forecast_table,
    jobs_table,
    models_table,
    ranking_table,
    trials_table,
)
from swarmlearn.config import SettingsError
from swarmlearn.importer import LineError, read_jsonl
from swarmlearn.server import Role, SecurityError, parse_tokens
from swarmlearn_client import (
    AgentStats,
    BatchAck,
    Client,
    IngestSummary,
    ObjectiveWeights,
    PromptCandidate,
    Rejection,
    SwarmLearnError,
)


def _target(args: argparse.Namespace) -> str:
    return str(args.target or _settings(args).listen)


def _token(args: argparse.Namespace) -> str | None:
    """--token-file, else the daemon's own token file from the same settings, if readable: its
    first admin token, else its first token (the file's format is the daemon's)."""
    path = args.token_file or _settings(args).auth_token_file
    if path is None:
        return None
    source = f"--token-file {path}" if args.token_file else f"auth_token_file {path}"
    try:
        tokens = parse_tokens(Path(path).read_text(), source)
    except OSError as exc:
        if args.token_file:
            raise SettingsError(f"{source}: {exc.strerror}") from None
        return None  # the daemon's file may be readable by its user only
    except SecurityError as exc:
        raise SettingsError(str(exc)) from None
    return next((token for token, role in tokens.items() if role is Role.ADMIN), next(iter(tokens)))


def _client(args: argparse.Namespace) -> Client:
    credentials = None
    if args.ca or args.cert:
        try:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(args.ca).read_bytes() if args.ca else None,
                private_key=Path(args.key).read_bytes() if args.key else None,
                certificate_chain=Path(args.cert).read_bytes() if args.cert else None,
            )
        except OSError as exc:
            raise SettingsError(f"TLS material {exc.filename}: {exc.strerror}") from None
    return Client(_target(args), timeout=args.timeout, credentials=credentials, token=_token(args))


# -- health / status --------------------------------------------------------------------------


def cmd_health(args: argparse.Namespace) -> int:
    target = _target(args)
    try:
        with _client(args) as client:
            status = client.health()
    except SwarmLearnError as exc:
        status = f"UNREACHABLE ({exc.code.name}: {exc.details})"
    if args.json:
        _print_json({"target": target, "status": status})
    else:
        out.print(f"{target}: {status}")
    return 0 if status == "SERVING" else 1


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status()
    if args.json:
        _print_json(status)
        return 0
    table = Table(title=f"swarmlearn {status.version} on {status.listen}", show_header=False)
    protection = "mutual TLS" if status.client_certificates_required else "TLS" if status.tls else "plaintext"
    rows = [
        ("uptime", f"{status.uptime_s:,.0f} s"),
        ("protection", protection + (", bearer tokens" if status.token_auth else "")),
        ("data directory", status.data_dir),
        ("events stored", f"{status.events_stored:,}"),
        ("log sequence", f"{status.durable_sequence:,}"),
        ("event log size", f"{status.event_log_bytes / 1e6:,.1f} MB"),
        ("agents", f"{status.agent_count:,}"),
        ("open ingest streams", str(status.ingest_streams)),
        ("online learning", _online_summary(status)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    return 0


def _online_summary(status: Any) -> str:
    if status.online_workers == 0:
        return "off (online_workers = 0)"
    state = "running" if status.online_running else "starting or restarting"
    behind = status.durable_sequence - status.online_sequence
    return (
        f"{state}, {status.online_workers} baseline processes, at sequence {status.online_sequence:,}"
        f" ({behind:,} behind), {status.online_agents:,} agents, {status.online_restarts} restarts"
    )


# -- ingest -----------------------------------------------------------------------------------


_SHOWN_REJECTIONS = 100


class _Rejections:
    """Keeps the first rejections of a stream's acks, for the report."""

    def __init__(self) -> None:
        self.first: list[Rejection] = []

    def __call__(self, ack: BatchAck) -> None:
        if len(self.first) < _SHOWN_REJECTIONS:
            self.first.extend(ack.rejected[: _SHOWN_REJECTIONS - len(self.first)])


def _summary_dict(
    summary: IngestSummary, rejections: Sequence[Rejection], line_errors: Sequence[LineError]
) -> dict[str, Any]:
    return {
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected + len(line_errors),
        "rejections": [_jsonable(r) for r in rejections],
        "unparsable_lines": [_jsonable(e) for e in line_errors[:_SHOWN_REJECTIONS]],
        "batches": summary.batches,
        "durable_sequence": summary.durable_sequence,
        "reconnects": summary.reconnects,
    }


def cmd_ingest(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        err.print(f"error: {path} is not a file")
        return 1
    line_errors: list[LineError] = []
    progress = Progress(
        TextColumn("ingest"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=err, disable=args.json
    )
    # surrogateescape: a line with bytes that are not UTF-8 is reported, not a crash.
    with path.open(encoding="utf-8", errors="surrogateescape") as handle, progress, _client(args) as client:
        task = progress.add_task("ingest", total=path.stat().st_size)

        def lines() -> Any:
            for line in handle:
                progress.advance(task, len(line.encode(errors="surrogateescape")))
                yield line

        rejections = _Rejections()
        with client.ingest_stream(batch_size=args.batch_size, on_ack=rejections) as stream:
            for item in read_jsonl(lines()):
                if isinstance(item, LineError):
                    line_errors.append(item)
                else:
                    stream.send(item)
        summary = stream.summary
    report = _summary_dict(summary, rejections.first, line_errors)
    if args.json:
        _print_json(report)
        return 0
    out.print(
        f"accepted {report['accepted']}, duplicates {report['duplicates']}, rejected {report['rejected']} "
        f"({summary.batches} batches, log at sequence {summary.durable_sequence})"
    )
    for rejection in rejections.first[:10]:
        out.print(f"  rejected event {rejection.event_id!r}: {rejection.field}: {rejection.reason}")
    for line_error in line_errors[:10]:
        out.print(f"  line {line_error.line}: {line_error.reason}")
    return 0


# -- agents / stats ---------------------------------------------------------------------------


def _all_agents(client: Client) -> list[AgentStats]:
    agents: list[AgentStats] = []
    token = ""
    while True:
        page = client.list_agents(page_size=1000, page_token=token)
        agents.extend(page.agents)
        token = page.next_page_token
        if not token:
            return agents


def cmd_agents(args: argparse.Namespace) -> int:
    with _client(args) as client:
        agents = _all_agents(client)
    if args.json:
        _print_json({"agents": agents})
    else:
        out.print(agents_table(agents))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _client(args) as client:
        stats = client.get_agent_stats(args.agent)
    if args.json:
        _print_json(stats)
        return 0
    out.print(agents_table([stats]))
    first = stats.first_event_time.isoformat() if stats.first_event_time else "-"
    out.print(f"first event {first}")
    if not stats.baselines:
        out.print("the online learner has not reached this agent yet (or online learning is off)")
        return 0
    out.print(baselines_table([stats]))
    out.print(baseline_detail_table(stats))
    out.print(features_table(stats))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    with _client(args) as client:
        forecast = client.predict(
            args.agent, horizon=args.horizon, targets=args.targets or (), coverage=args.coverage or 0.0
        )
    if args.json:
        _print_json(forecast)
    else:
        out.print(forecast_table(forecast))
    return 0


def _wait_learned(client: Client, sequence: int, *, quiet: bool, timeout: float = 120.0) -> bool:
    """Wait (with a progress bar) until the online learner has applied the log up to ``sequence``."""
    started = time.monotonic()
    with Progress(
        TextColumn("online learning"), BarColumn(), TextColumn("{task.completed}/{task.total} learned"),
        console=err, disable=quiet,
    ) as progress:  # fmt: skip
        task = progress.add_task("learn", total=sequence)
        while time.monotonic() - started < timeout:
            status = client.status()
            if status.online_workers == 0:  # online learning is off
                return False
            progress.update(task, completed=min(status.online_sequence, sequence))
            if status.online_sequence >= sequence:
                return True
            time.sleep(0.1)
    return False


# -- prompts ----------------------------------------------------------------------------------


def _read_candidates(path: Path) -> list[PromptCandidate]:
    """One candidate per line: plain text, or a JSON object with ``text`` and optionally ``variant``,
    ``prompt_tokens``, ``expected_response_tokens``. Blank lines are skipped."""
    candidates = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SettingsError(f"candidates file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            where = f"candidates file {path}, line {number}"
            try:
                raw = json.loads(line)
                text, variant = raw["text"], raw.get("variant", "")
            except (ValueError, KeyError, TypeError) as exc:
                raise SettingsError(f"{where}: not a candidate ({exc})") from None
            if not isinstance(text, str) or not isinstance(variant, str):
                raise SettingsError(f"{where}: text and variant must be strings")
            counts = [raw.get(name) for name in ("prompt_tokens", "expected_response_tokens")]
            if any(c is not None and (type(c) is not int or c < 0) for c in counts):
                raise SettingsError(f"{where}: token counts must be whole numbers >= 0")
            candidates.append(PromptCandidate(text, variant, *counts))
        else:
            candidates.append(PromptCandidate(text=line))
    return candidates


def _weights(values: Sequence[str] | None) -> ObjectiveWeights | None:
    if not values:
        return None
    parsed: dict[str, float] = {}
    for item in values:
        name, _, number = item.partition("=")
        if name not in ("quality", "success", "latency", "cost") or not number:
            raise SettingsError(f"--weight {item!r}: use quality=, success=, latency= or cost= and a number")
        try:
            parsed[name] = float(number)
        except ValueError:
            raise SettingsError(f"--weight {item!r}: {number!r} is not a number") from None
    return ObjectiveWeights(**parsed)


def cmd_prompts(args: argparse.Namespace) -> int:
    candidates = _read_candidates(args.candidates)
    with _client(args) as client:
        ranking = client.score_prompts(args.agent, candidates, weights=_weights(args.weight), select=args.select)
    if args.json:
        _print_json(ranking)
    else:
        out.print(ranking_table(ranking, candidates))
    return 0


# -- training jobs and models -----------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.start_training(
            model_kind=args.model,
            scope=args.scope,
            max_epochs=args.epochs or 0,
            horizon=args.horizon or 0,
            config_json=args.model_config or "",
        )
        if args.detach:
            final = job
        else:
            with Progress(
                TextColumn(f"training {args.model} ({job.job_id})"), BarColumn(),
                TextColumn("epoch {task.completed}/{task.total}"), TextColumn("{task.description}"),
                TimeElapsedColumn(), console=err, disable=args.json,
            ) as progress:  # fmt: skip
                task = progress.add_task("", total=None)
                final = job
                for final in client.watch_job(job.job_id):
                    p = final.progress
                    losses = f"train {p.train_loss:.4f}  val {p.val_loss:.4f}" if p.epoch else final.state
                    progress.update(task, completed=p.epoch, total=p.total_epochs or None, description=losses)
    if args.json:
        _print_json(final)
    else:
        out.print(jobs_table([final]))
        if final.note:
            out.print(final.note)
        if final.error:
            err.print(f"error: {final.error}")
    return 0 if final.state in ("succeeded", "pending", "running") else 1


def cmd_tune(args: argparse.Namespace) -> int:
    space = args.space.read_text() if args.space else ""
    with _client(args) as client:
        job = client.start_tuning(
            model_kind=args.model,
            method=args.method,
            scope=args.scope,
            max_trials=args.trials or 0,
            concurrency=args.concurrency or 0,
            search_space_json=space,
            objective=args.objective,
        )
        final = job
        if not args.detach:
            with Progress(
                TextColumn(f"tuning {args.model}, {args.method} ({job.job_id})"), BarColumn(),
                TextColumn("trial {task.completed}/{task.total}"), TextColumn("{task.description}"),
                TimeElapsedColumn(), console=err, disable=args.json,
            ) as progress:  # fmt: skip
                task = progress.add_task("", total=job.progress.total_trials or None)
                for final in client.watch_job(job.job_id):
                    p = final.progress
                    known = p.trials_done and not math.isnan(p.best_objective)
                    best = f"best {p.best_objective:.4f}" if known else ""
                    progress.update(task, completed=p.trials_done, total=p.total_trials or None, description=best)
    if args.json:
        _print_json(final)
    else:
        if final.trials:
            out.print(trials_table(final))
        out.print(jobs_table([final]))
        if final.note:
            out.print(final.note)
        if final.config_json:
            out.print(f"best configuration: {final.config_json}")
        if final.error:
            err.print(f"error: {final.error}")
    return 0 if final.state in ("succeeded", "pending", "running") else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.cancel:
            client.cancel_job(args.cancel)
        jobs = client.list_jobs(limit=args.limit)
    if args.json:
        _print_json({"jobs": jobs})
    else:
        out.print(jobs_table(jobs))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.promote:
            kind, _, version = args.promote.partition(":")
            if not version.isdigit():
                raise SettingsError(f"--promote {args.promote!r}: use KIND:VERSION, e.g. lstm:3")
            client.promote_model(scope=args.scope, model_kind=kind, version=int(version))
        if args.rollback:
            client.rollback_model(scope=args.scope)
        models = client.list_models(scope=args.scope)
    if args.json:
        _print_json({"models": models})
    else:
        out.print(models_table(models))
    return 0

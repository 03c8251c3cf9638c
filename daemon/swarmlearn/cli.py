"""``swarmlearn`` command line: serve the daemon, or talk to one.

Every command that talks to a daemon takes ``--target`` (default: ``listen`` from the same
settings the daemon would load) and every command that reports takes ``--json``. Errors go to
stderr with exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from swarmlearn._tables import (
    agents_table,
    baseline_detail_table,
    baselines_table,
    features_table,
    forecast_table,
    jobs_table,
    models_table,
    prompt_learning_table,
    ranking_table,
    trials_table,
)
from swarmlearn.config import Settings, SettingsError, field_names, load_settings
from swarmlearn.importer import LineError, event_to_proto, read_jsonl
from swarmlearn.server import Daemon, DataDirLocked, SecurityError, configure_logging, serve
from swarmlearn.store import BackupError, BackupManifest, backup, restore
from swarmlearn.synthetic import generate_swarm
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

err = Console(stderr=True)
out = Console()


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    overrides = {name: value for name, value in flags.items() if name in field_names()}
    return load_settings(config_file=args.config, overrides=overrides)


def _target(args: argparse.Namespace) -> str:
    return str(args.target or _settings(args).listen)


def _token(args: argparse.Namespace) -> str | None:
    """--token-file, else the daemon's own token file from the same settings, if readable."""
    path = args.token_file or _settings(args).auth_token_file
    if path is None:
        return None
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        if args.token_file:
            raise SettingsError(f"--token-file {path}: {exc.strerror}") from None
        return None  # the daemon's file may be readable by its user only
    return next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), None)


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


def _jsonable(value: Any) -> Any:
    """``value`` as JSON types; non-finite floats (a job without a best objective is NaN on the
    wire) become None, since strict JSON parsers refuse NaN and Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2, allow_nan=False) + "\n")


# -- serve / health ---------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        listen=args.listen,
        data_dir=args.data_dir,
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_listen=args.metrics_listen,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        auth_token_file=args.auth_token_file,
        allow_insecure=True if args.insecure else None,
    )
    configure_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(serve(settings))
    except SecurityError as exc:  # a configuration problem: exit 2, which systemd does not retry
        logging.getLogger("swarmlearn").error("cannot start: %s", exc)
        return 2
    except (DataDirLocked, OSError, RuntimeError) as exc:  # a taken address is an OSError naming its setting
        logging.getLogger("swarmlearn").error("cannot start: %s", exc)
        return 1


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


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or _settings(args).data_dir)


def cmd_backup(args: argparse.Namespace) -> int:
    return _manifest_command(
        args, lambda: backup(_data_dir(args), args.dest), "backed up {events:,} events of {agents:,} agents to {where}"
    )


def cmd_restore(args: argparse.Namespace) -> int:
    return _manifest_command(
        args, lambda: restore(args.src, _data_dir(args), force=args.force), "restored {events:,} events into {where}"
    )


def _manifest_command(args: argparse.Namespace, run: Callable[[], BackupManifest], message: str) -> int:
    try:
        manifest = run()
    except BackupError as exc:
        err.print(f"error: {exc}")
        return 1
    if args.json:
        _print_json(manifest)
    else:
        where = args.dest if args.command == "backup" else _data_dir(args)
        out.print(message.format(events=manifest.event_count, agents=manifest.agent_count, where=where))
    return 0


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


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    daemon: Daemon | None = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if args.target is None:
        if args.data_dir is None:
            scratch = tempfile.TemporaryDirectory(prefix="swarmlearn-demo-")
        data_dir = Path(args.data_dir or scratch.name)  # type: ignore[union-attr]
        daemon = Daemon(_settings(args, listen="127.0.0.1:0", data_dir=data_dir, metrics_listen=""))
        args.target = daemon.start()
        err.print(f"started a daemon on {args.target}, data in {data_dir}")
    try:
        total = args.agents * args.events
        events = [
            event_to_proto(e) for e in generate_swarm(agents=args.agents, events_per_agent=args.events, seed=args.seed)
        ]
        learning: list[dict[str, Any]] = []
        with _client(args) as client:
            with Progress(
                TextColumn("streaming synthetic swarm"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} acked"),
                TimeElapsedColumn(),
                console=err,
                disable=args.json,
            ) as progress:
                task = progress.add_task("demo", total=total)

                def on_ack(ack: BatchAck) -> None:
                    progress.advance(task, ack.accepted + ack.duplicates + len(ack.rejected))

                # In quarters: after each, how the prompt models rank a good and a bad prompt so far.
                accepted = duplicates = rejected = 0
                quarter = -(-len(events) // 4)
                for start in range(0, len(events), quarter):
                    part = client.ingest(events[start : start + quarter], batch_size=500, on_ack=on_ack)
                    accepted, duplicates, rejected = (
                        accepted + part.accepted, duplicates + part.duplicates, rejected + part.rejected
                    )  # fmt: skip
                    if _wait_learned(client, part.durable_sequence, quiet=True):
                        learning.append(_prompt_checkpoint(client, start + len(events[start : start + quarter])))
            learned = _wait_learned(client, client.status().durable_sequence, quiet=args.json)
            agents = _all_agents(client)
        totals = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
        if args.json:
            _print_json({"ingest": totals, "agents": agents, "learned": learned, "prompt_learning": learning})
        else:
            out.print(f"ingested: accepted {accepted}, duplicates {duplicates}, rejected {rejected}")
            out.print(agents_table(agents))
            if learned:
                out.print(baselines_table(agents))
            else:
                out.print("the online learner did not catch up in time; `swarmlearn stats AGENT` shows it later")
            if learning:
                out.print(prompt_learning_table(learning, _DEMO_PROMPTS))
    finally:
        if daemon is not None:
            daemon.stop()
        if scratch is not None:
            scratch.cleanup()
    return 0


_DEMO_PROMPTS = (
    "verify the result step-by-step with examples and constraints, concise",
    "whatever, asap, maybe fix the code etc",
)


def _prompt_checkpoint(client: Client, events: int) -> dict[str, Any]:
    ranking = client.score_prompts("coder", _DEMO_PROMPTS)
    by_index = {r.index: r for r in ranking.ranked}
    return {
        "events": events,
        "good_quality": by_index[0].predicted_quality,
        "bad_quality": by_index[1].predicted_quality,
        "good_score": by_index[0].score,
        "bad_score": by_index[1].score,
        "good_ranked_first": ranking.ranked[0].index == 0,
        "used_global_model": ranking.used_global_model,
    }


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


# -- parser -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarmlearn", description="Online-learning sidecar for LLM-agent swarms.")
    parser.add_argument("--config", type=Path, help="TOML settings file (also SWARMLEARN_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, *, remote: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if remote:
            sub.add_argument("--target", help="daemon address, host:port or unix:PATH (default: listen setting)")
            sub.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
            sub.add_argument("--json", action="store_true", help="print one JSON document on stdout")
            sub.add_argument("--token-file", type=Path, help="bearer token file (default: the auth_token_file setting)")
            sub.add_argument("--ca", type=Path, help="PEM CA of the daemon's certificate (turns on TLS)")
            sub.add_argument("--cert", type=Path, help="PEM client certificate, for mutual TLS")
            sub.add_argument("--key", type=Path, help="PEM private key of --cert")
        return sub

    serve_cmd = command("serve", cmd_serve, "run the daemon until SIGTERM/SIGINT", remote=False)
    serve_cmd.add_argument("--listen", help="host:port or unix:PATH (default 127.0.0.1:50051)")
    serve_cmd.add_argument("--data-dir", type=Path, help="data directory (default ./var/swarmlearn)")
    serve_cmd.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    serve_cmd.add_argument("--log-format", choices=("plain", "json"))
    serve_cmd.add_argument("--metrics-listen", help="Prometheus endpoint host:port ('' disables)")
    serve_cmd.add_argument("--tls-cert", type=Path, help="PEM certificate chain (turns on TLS)")
    serve_cmd.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve_cmd.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA")
    serve_cmd.add_argument("--auth-token-file", type=Path, help="bearer tokens, one per line")
    serve_cmd.add_argument("--insecure", action="store_true", help="allow a non-loopback address without TLS/token")

    command("health", cmd_health, "exit 0 if the daemon reports SERVING, 1 otherwise")
    command("status", cmd_status, "version, uptime, exposure and event log of the daemon")

    backup_cmd = command(
        "backup", cmd_backup, "consistent copy of the data directory, safe while serving", remote=False
    )
    backup_cmd.add_argument("dest", type=Path, help="new (or empty) directory for the backup")
    backup_cmd.add_argument("--data-dir", type=Path, help="data directory (default: the data_dir setting)")
    backup_cmd.add_argument("--json", action="store_true", help="print the manifest as JSON")
    restore_cmd = command("restore", cmd_restore, "put a backup in place (the daemon must be stopped)", remote=False)
    restore_cmd.add_argument("src", type=Path, help="a directory written by `swarmlearn backup`")
    restore_cmd.add_argument("--data-dir", type=Path, help="data directory (default: the data_dir setting)")
    restore_cmd.add_argument("--force", action="store_true", help="replace an existing log (kept aside, not deleted)")
    restore_cmd.add_argument("--json", action="store_true", help="print the manifest as JSON")

    ingest_cmd = command("ingest", cmd_ingest, "stream a JSON-lines file of events (seed or protobuf JSON form)")
    ingest_cmd.add_argument("file", help="path of the .jsonl file")
    ingest_cmd.add_argument("--batch-size", type=int, default=1000)

    command("agents", cmd_agents, "list the agents the daemon knows")
    stats_cmd = command("stats", cmd_stats, "what the daemon knows about one agent: counts, baselines, drift")
    stats_cmd.add_argument("agent", help="agent id")
    predict_cmd = command("predict", cmd_predict, "forecast an agent's next events, with intervals")
    predict_cmd.add_argument("agent", help="agent id")
    predict_cmd.add_argument("--horizon", type=int, default=1, help="events ahead (default 1)")
    predict_cmd.add_argument("--coverage", type=float, help="nominal interval coverage in (0, 1) (default: daemon's)")
    predict_cmd.add_argument("--targets", nargs="+", choices=("latency_ms", "tokens_per_second", "success_rate"))

    prompts_cmd = command("prompts", cmd_prompts, "rank candidate prompts for an agent (best first)")
    prompts_cmd.add_argument("agent", help="agent id")
    prompts_cmd.add_argument(
        "--candidates", type=Path, required=True, help="file: one prompt per line, or JSON lines with text, variant"
    )
    prompts_cmd.add_argument("--weight", nargs="+", metavar="NAME=W", help="objective weights, e.g. latency=2 cost=0")
    prompts_cmd.add_argument("--select", action="store_true", help="also pick the prompt variant to use next")

    train_cmd = command("train", cmd_train, "train a forecaster in the background and follow it (progress bar)")
    train_cmd.add_argument("--model", choices=("lstm", "tcn", "nbeats", "ensemble"), default="lstm")
    train_cmd.add_argument("--scope", default="", help="an agent id; default: one model for every agent")
    train_cmd.add_argument("--epochs", type=int, help="most epochs (default: the daemon's, 30)")
    train_cmd.add_argument("--horizon", type=int, help="events forecast at once (default 1)")
    train_cmd.add_argument(
        "--model-config", metavar="JSON", help='model settings, e.g. {"hidden_size": 64, "training": {"window": 30}}'
    )
    train_cmd.add_argument("--detach", action="store_true", help="start the job and return")
    tune_cmd = command("tune", cmd_tune, "search hyperparameters with Ax in the background (progress, trials table)")
    tune_cmd.add_argument("--model", choices=("lstm", "tcn", "nbeats", "ensemble"), default="lstm")
    tune_cmd.add_argument("--method", choices=("bayesian", "random", "grid", "hyperband"), default="bayesian")
    tune_cmd.add_argument("--scope", default="", help="an agent id; default: the model for every agent")
    tune_cmd.add_argument("--trials", type=int, help="configurations to evaluate (default 20; a grid: all)")
    tune_cmd.add_argument("--concurrency", type=int, help="trials at once (default: the daemon's)")
    tune_cmd.add_argument("--space", type=Path, help="search space JSON file (default: the model's default space)")
    tune_cmd.add_argument("--objective", choices=("val_mase", "val_mse"), default="val_mase")
    tune_cmd.add_argument("--detach", action="store_true", help="start the job and return")
    jobs_cmd = command("jobs", cmd_jobs, "list background jobs, newest first")
    jobs_cmd.add_argument("--cancel", metavar="JOB_ID", help="cancel this job first")
    jobs_cmd.add_argument("--limit", type=int, default=20)
    models_cmd = command("models", cmd_models, "the model registry: versions, champions")
    models_cmd.add_argument("--scope", default="", help="an agent id, or the swarm's models (default)")
    models_cmd.add_argument("--promote", metavar="KIND:VERSION", help="make this version the scope's champion")
    models_cmd.add_argument("--rollback", action="store_true", help="return to the scope's previous champion")

    demo_cmd = command("demo", cmd_demo, "stream a synthetic swarm into a daemon (started here unless --target)")
    demo_cmd.add_argument("--agents", type=int, default=6)
    demo_cmd.add_argument("--events", type=int, default=1440, help="events per agent (default: a day at 1/min)")
    demo_cmd.add_argument("--seed", type=int, default=0)
    demo_cmd.add_argument("--data-dir", type=Path, help="keep the demo daemon's data here (default: a temp dir)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        err.print(f"error: {exc}")
        return 2
    except SwarmLearnError as exc:
        err.print(f"error: {exc.code.name}: {exc.details}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

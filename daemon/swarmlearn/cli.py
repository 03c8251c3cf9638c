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
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from swarmlearn.config import Settings, SettingsError, field_names, load_settings
from swarmlearn.importer import LineError, event_to_proto, read_jsonl
from swarmlearn.server import Daemon, DataDirLocked, serve
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client import AgentStats, BatchAck, Client, IngestSummary, Rejection, SwarmLearnError

err = Console(stderr=True)
out = Console()


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    overrides = {name: value for name, value in flags.items() if name in field_names()}
    return load_settings(config_file=args.config, overrides=overrides)


def _target(args: argparse.Namespace) -> str:
    return str(args.target or _settings(args).listen)


def _jsonable(value: Any) -> Any:
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
    sys.stdout.write(json.dumps(_jsonable(value), indent=2) + "\n")


# -- serve / health ---------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, listen=args.listen, data_dir=args.data_dir, log_level=args.log_level)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(settings))
    except DataDirLocked as exc:
        err.print(f"error: {exc}")
        return 1


def cmd_health(args: argparse.Namespace) -> int:
    target = _target(args)
    try:
        with Client(target, timeout=args.timeout) as client:
            status = client.health()
    except SwarmLearnError as exc:
        status = f"UNREACHABLE ({exc.code.name}: {exc.details})"
    if args.json:
        _print_json({"target": target, "status": status})
    else:
        out.print(f"{target}: {status}")
    return 0 if status == "SERVING" else 1


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
    with path.open(encoding="utf-8") as handle, progress, Client(_target(args), timeout=args.timeout) as client:
        task = progress.add_task("ingest", total=path.stat().st_size)

        def lines() -> Any:
            for line in handle:
                progress.advance(task, len(line.encode()))
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


def _agents_table(agents: Sequence[AgentStats]) -> Table:
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
        last = a.last_event_time.strftime("%Y-%m-%d %H:%M:%S") if a.last_event_time else "-"
        table.add_row(
            a.agent_id,
            str(a.event_count),
            str(a.prompt_event_count),
            f"{m.latency_ms:,.1f}",
            f"{m.tokens_per_second:,.1f}",
            f"{m.success_rate:.3f}",
            last,
        )
    return table


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
    with Client(_target(args), timeout=args.timeout) as client:
        agents = _all_agents(client)
    if args.json:
        _print_json({"agents": agents})
    else:
        out.print(_agents_table(agents))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with Client(_target(args), timeout=args.timeout) as client:
        stats = client.get_agent_stats(args.agent)
    if args.json:
        _print_json(stats)
    else:
        out.print(_agents_table([stats]))
        first = stats.first_event_time.isoformat() if stats.first_event_time else "-"
        out.print(f"first event {first}")
    return 0


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    daemon: Daemon | None = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    target = args.target
    if target is None:
        if args.data_dir is None:
            scratch = tempfile.TemporaryDirectory(prefix="swarmlearn-demo-")
        data_dir = Path(args.data_dir or scratch.name)  # type: ignore[union-attr]
        daemon = Daemon(_settings(args, listen="127.0.0.1:0", data_dir=data_dir))
        target = daemon.start()
        err.print(f"started a daemon on {target}, data in {data_dir}")
    try:
        total = args.agents * args.events
        with Client(target, timeout=args.timeout) as client:
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

                with client.ingest_stream(batch_size=500, on_ack=on_ack) as stream:
                    for event in generate_swarm(agents=args.agents, events_per_agent=args.events, seed=args.seed):
                        stream.send(event_to_proto(event))
            agents = _all_agents(client)
        summary = stream.summary
        if args.json:
            _print_json({"ingest": _summary_dict(summary, [], []), "agents": agents})
        else:
            out.print(
                f"ingested: accepted {summary.accepted}, duplicates {summary.duplicates}, rejected {summary.rejected}"
            )
            out.print(_agents_table(agents))
    finally:
        if daemon is not None:
            daemon.stop()
        if scratch is not None:
            scratch.cleanup()
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
        return sub

    serve_cmd = command("serve", cmd_serve, "run the daemon until SIGTERM/SIGINT", remote=False)
    serve_cmd.add_argument("--listen", help="host:port or unix:PATH (default 127.0.0.1:50051)")
    serve_cmd.add_argument("--data-dir", type=Path, help="data directory (default ./var/swarmlearn)")
    serve_cmd.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    command("health", cmd_health, "exit 0 if the daemon reports SERVING, 1 otherwise")

    ingest_cmd = command("ingest", cmd_ingest, "stream a JSON-lines file of events (seed or protobuf JSON form)")
    ingest_cmd.add_argument("file", help="path of the .jsonl file")
    ingest_cmd.add_argument("--batch-size", type=int, default=1000)

    command("agents", cmd_agents, "list the agents the daemon knows")
    stats_cmd = command("stats", cmd_stats, "what the daemon knows about one agent")
    stats_cmd.add_argument("agent", help="agent id")

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

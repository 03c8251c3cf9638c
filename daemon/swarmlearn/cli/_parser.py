"""The argparse tree: one subcommand per command, the daemon-facing ones with the connection flags."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from swarmlearn.cli._demo import cmd_demo
from swarmlearn.cli._local import cmd_backup, cmd_restore, cmd_serve
from swarmlearn.cli._output import err
from swarmlearn.cli._remote import (
    cmd_agents,
    cmd_health,
    cmd_ingest,
    cmd_jobs,
    cmd_models,
    cmd_predict,
    cmd_prompts,
    cmd_stats,
    cmd_status,
    cmd_train,
    cmd_tune,
)
from swarmlearn.config import SettingsError
from swarmlearn.names import MODEL_KINDS, TUNING_METHODS
from swarmlearn_client import SwarmLearnError


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
    serve_cmd.add_argument(
        "--auth-token-file", type=Path, help="bearer tokens, one per line: TOKEN or ROLE TOKEN (agent, admin)"
    )
    serve_cmd.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without client authentication (not recommended)",
    )

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
    train_cmd.add_argument("--model", choices=MODEL_KINDS, default="lstm")
    train_cmd.add_argument("--scope", default="", help="an agent id; default: one model for every agent")
    train_cmd.add_argument("--epochs", type=int, help="most epochs (default: the daemon's, 30)")
    train_cmd.add_argument("--horizon", type=int, help="events forecast at once (default 1)")
    train_cmd.add_argument(
        "--model-config", metavar="JSON", help='model settings, e.g. {"hidden_size": 64, "training": {"window": 30}}'
    )
    train_cmd.add_argument("--detach", action="store_true", help="start the job and return")
    tune_cmd = command("tune", cmd_tune, "search hyperparameters with Ax in the background (progress, trials table)")
    tune_cmd.add_argument("--model", choices=MODEL_KINDS, default="lstm")
    tune_cmd.add_argument("--method", choices=TUNING_METHODS, default="bayesian")
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

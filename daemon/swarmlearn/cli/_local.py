"""Commands that work here, not through a daemon: serve one, back up and restore its data directory."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from swarmlearn.cli._output import _print_json, err, out
from swarmlearn.cli._settings import _settings
from swarmlearn.server import DataDirLocked, SecurityError, configure_logging, serve
from swarmlearn.store import BackupError, BackupManifest, backup, restore


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

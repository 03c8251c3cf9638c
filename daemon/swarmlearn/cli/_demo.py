"""``swarmlearn demo``: stream a synthetic swarm into a daemon (started here unless ``--target``) and
show what it learned."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from swarmlearn.cli._output import _print_json, err, out
from swarmlearn.cli._remote import _all_agents, _client, _wait_learned
from swarmlearn.cli._settings import _settings
from swarmlearn.cli._tables import agents_table, baselines_table, prompt_learning_table
from swarmlearn.importer import event_to_proto
from swarmlearn.server import Daemon
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client import BatchAck, Client


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
